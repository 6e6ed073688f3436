// Helpers every actor uses to put messages on the wire and take them off it.
// open_frame never throws: a bad frame is counted, logged with its sender and the reason, and dropped.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "actors/frame.hpp"
#include "kernels/wire/frame.hpp"

namespace gwtf {

struct FrameStats {
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  std::array<uint64_t, 16> rejected_by_code{};  // indexed by wire::WireErrc
};

inline Frame make_frame(const wire::Header& header, const wire::Body& body) {
  return Frame{wire::encode_frame(header, body)};
}

template <class Self, class Dest>
void send_message(Self* self, const Dest& dest, const wire::Header& header, const wire::Body& body) {
  self->send(dest, make_frame(header, body));
}

// Takes the frame's bytes (no copy) and decodes them. `from` names the peer in the log line.
// `error`, when given, receives the error instead of the log (the caller logs it, rate-limited under a flood).
std::optional<wire::Message> open_frame(Frame& frame, const wire::DecodeOptions& options, FrameStats& stats,
                                        std::string_view from, wire::WireError* error = nullptr);

}  // namespace gwtf
