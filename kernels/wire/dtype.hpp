// Element types that travel on the wire (schema/gwtf.capnp DType), with their sizes and names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gwtf::wire {

enum class DType : uint16_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kFloat64 = 3,
  kInt64 = 4,
  kInt32 = 5,
  kInt16 = 6,
  kInt8 = 7,
  kUInt8 = 8,
  kBool = 9,
};
inline constexpr uint16_t kDTypeCount = 10;

// Raw value from the wire -> DType, or nothing when no such dtype exists.
inline std::optional<DType> dtype_from_raw(uint16_t raw) {
  if (raw >= kDTypeCount) return std::nullopt;
  return static_cast<DType>(raw);
}

inline constexpr size_t element_size(DType d) {
  switch (d) {
    case DType::kFloat64:
    case DType::kInt64: return 8;
    case DType::kFloat32:
    case DType::kInt32: return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16: return 2;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool: return 1;
  }
  return 0;
}

inline constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat64: return "float64";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kInt16: return "int16";
    case DType::kInt8: return "int8";
    case DType::kUInt8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "?";
}

}  // namespace gwtf::wire
