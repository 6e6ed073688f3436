// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets} (plus "__metadata__"), then the raw little-endian tensor bytes.
// We write float32 only; the reader accepts F32 and checks every offset against the file before trusting it.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

#include "kernels/base/result.hpp"

namespace gwtf::model {

// Tensors are written as contiguous float32 in the order given (names must be unique). Returns "" or the error.
std::string write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
Result<SafetensorsFile, std::string> read_safetensors(const std::string& path);

}  // namespace gwtf::model
