#include "kernels/model/safetensors.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace gwtf::model {

namespace {

// The format is little-endian; so is every machine LibTorch runs on here (x86-64, aarch64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

}  // namespace

std::string write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!names.insert(name).second) return "tensor '" + name + "' is written twice";
    // contiguous(): the raw bytes of a transposed view have the right shape and scrambled values.
    auto c = t.detach().to(at::kFloat).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(c));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the reference writer does
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return "cannot write '" + tmp + "'";
    const uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), sizeof n);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : data)
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * sizeof(float)));
    if (!out.flush()) return "cannot write '" + tmp + "' (disk full?)";
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return ec ? "cannot rename '" + tmp + "' to '" + path + "': " + ec.message() : "";
}

Result<SafetensorsFile, std::string> read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err{"cannot read '" + path + "'"};
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  if (bytes.size() < sizeof n) return Err{"'" + path + "' is truncated: no header length"};
  std::memcpy(&n, bytes.data(), sizeof n);
  if (n > bytes.size() - sizeof n) return Err{"'" + path + "' is truncated: header of " + std::to_string(n) + " bytes"};
  const auto header = nlohmann::json::parse(bytes.begin() + sizeof n, bytes.begin() + static_cast<long>(sizeof n + n),
                                            nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return Err{"'" + path + "' has no JSON object as header"};
  const uint64_t data_begin = sizeof n + n, data_size = bytes.size() - data_begin;
  SafetensorsFile file;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [k, v] : entry.items())
        if (v.is_string()) file.metadata[k] = v.get<std::string>();
      continue;
    }
    const auto bad = [&](const std::string& why) { return Err{"'" + path + "': tensor '" + name + "' " + why}; };
    if (!entry.is_object() || entry.value("dtype", "") != "F32") return bad("is not F32");
    if (!entry.contains("shape") || !entry["shape"].is_array() || !entry.contains("data_offsets") ||
        !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      return bad("lacks a shape or data offsets");
    std::vector<int64_t> shape;
    int64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) return bad("has a bad shape");
      shape.push_back(d.get<int64_t>());
      numel *= shape.back();
    }
    const auto& off = entry["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) return bad("has bad data offsets");
    const auto b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size || e - b != static_cast<uint64_t>(numel) * sizeof(float))
      return bad("has data offsets outside the file or not matching its shape");
    auto t = at::empty(shape, at::kFloat);
    std::memcpy(t.data_ptr(), bytes.data() + data_begin + b, e - b);
    file.tensors.emplace(name, std::move(t));
  }
  return file;
}

}  // namespace gwtf::model
