// Frame: the one payload type CAF carries between gwtf nodes — an encoded Envelope (schema/gwtf.capnp).
// CAF 0.17 serializes a std::vector<char> member with one memcpy, and a message arriving from the network is
// unique, so a handler taking Frame& may move the bytes into the decoder without a copy.
#pragma once

#include <caf/meta/type_name.hpp>

#include <vector>

namespace gwtf {

struct Frame {
  std::vector<char> bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Frame& x) {
  return f(caf::meta::type_name("gwtf.frame"), x.bytes);
}

}  // namespace gwtf
