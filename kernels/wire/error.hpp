// Why a frame was refused. Every decode failure is one of these, with a message naming the offending value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gwtf::wire {

enum class WireErrc : uint8_t {
  kFrameTooLarge,     // frame longer than DecodeOptions::max_frame_bytes
  kTruncated,         // fewer bytes than the segment table declares (or not even a segment table)
  kTrailingBytes,     // more bytes than the segment table declares
  kMalformed,         // Cap'n Proto structure invalid (out-of-bounds pointer, bad segment table, limits)
  kWrongVersion,      // protocol version differs from ours
  kWrongSwarm,        // swarm id differs from ours
  kUnknownKind,       // union discriminant this build does not know
  kUnknownDType,      // tensor dtype this build does not know
  kRankTooLarge,      // more dimensions than DecodeOptions::max_rank
  kNegativeDimension, // a dimension < 0
  kShapeOverflow,     // product of dimensions times element size overflows 64 bits
  kSizeMismatch,      // data length != numel * element size
  kInvalidValue,      // a field outside its domain: NaN or negative cost, unknown enum value, oversized list
};

std::string_view errc_name(WireErrc c);

struct WireError {
  WireErrc code;
  std::string message;
};

}  // namespace gwtf::wire
