#include "actors/frame_io.hpp"

#include <spdlog/spdlog.h>

#include <utility>

namespace gwtf {

std::optional<wire::Message> open_frame(Frame& frame, const wire::DecodeOptions& options, FrameStats& stats,
                                        std::string_view from, wire::WireError* error) {
  auto decoded = wire::decode_frame(std::move(frame.bytes), options);
  if (!decoded) {
    ++stats.rejected;
    ++stats.rejected_by_code[static_cast<size_t>(decoded.error().code) % stats.rejected_by_code.size()];
    if (error) *error = decoded.error();
    else spdlog::warn("dropped a frame from {}: {}", from, decoded.error().message);
    return std::nullopt;
  }
  ++stats.accepted;
  return std::move(decoded).value();
}

}  // namespace gwtf
