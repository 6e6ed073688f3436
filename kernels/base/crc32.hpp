// CRC-32 (zlib's) over bytes: the checksum of state-transfer chunks. zlib is a Debian package (zlib1g-dev).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string_view>

namespace gwtf {

inline uint32_t crc32_of(std::string_view bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed large buffers in pieces.
  constexpr size_t kPiece = 1u << 30;
  for (size_t at = 0; at < bytes.size(); at += kPiece) {
    const size_t n = bytes.size() - at < kPiece ? bytes.size() - at : kPiece;
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace gwtf
