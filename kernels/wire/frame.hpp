// Frames: the encoded form of one Envelope (schema/gwtf.capnp) as a flat byte vector.
//
// encode_frame writes a Message into a fresh byte vector; tensor payloads are copied exactly once (the bytes are
// attached to the message builder as external data and written straight into the vector).
// decode_frame validates everything a peer could get wrong or forge and returns a WireError value, never throws:
// sizes, segment table, version, swarm, kind, dtype, rank, dimensions, overflow, data length. Tensor payloads of
// the result point into the frame (zero copy); the Message keeps the frame alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/wire/error.hpp"
#include "kernels/wire/message.hpp"

namespace gwtf::wire {

inline constexpr uint16_t kProtocolVersion = 1;  // == schema protocolVersion, checked in frame.cpp

struct DecodeOptions {
  uint64_t swarm_id = 0;                         // frames of other swarms are refused
  size_t max_frame_bytes = size_t{1} << 30;      // 1 GiB; a stage boundary tensor is far below
  size_t max_rank = 8;
};

// Header's version field is ignored: frames always carry kProtocolVersion.
std::vector<char> encode_frame(const Header& header, const Body& body);

Result<Message, WireError> decode_frame(std::vector<char>&& frame, const DecodeOptions& options);

}  // namespace gwtf::wire
