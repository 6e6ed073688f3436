#include "actors/frame_io.hpp"

#include <spdlog/spdlog.h>

#include <utility>

namespace gwtf {

std::optional<wire::Message> open_frame(Frame& frame, const wire::DecodeOptions& options, FrameStats& stats,
                                        std::string_view from, wire::WireErrc* why) {
  auto decoded = wire::decode_frame(std::move(frame.bytes), options);
  if (!decoded) {
    if (why) *why = decoded.error().code;
    ++stats.rejected;
    ++stats.rejected_by_code[static_cast<size_t>(decoded.error().code) % stats.rejected_by_code.size()];
    spdlog::warn("dropped a frame from {}: {}", from, decoded.error().message);
    return std::nullopt;
  }
  ++stats.accepted;
  return std::move(decoded).value();
}

}  // namespace gwtf
