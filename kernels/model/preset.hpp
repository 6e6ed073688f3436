// Model shapes by preset name, and the sizes derived from them (parameters, boundary-tensor bytes, FLOPs).
// Header-only and LibTorch-free: the simulator's cost model and the flow layer's capacity model use these
// figures for paper-scale models that are never trained here; kernels/model builds the real modules from the
// same shapes.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gwtf::model {

enum class Arch : uint8_t { kGpt, kLlama };

struct ModelShape {
  std::string_view name;
  int64_t d_model;
  int64_t layers;
  int64_t heads;
  int64_t seq_len;
  int64_t vocab;
  int64_t ffn_hidden;  // GPT: 4d; LLaMa: SwiGLU width (~8d/3, rounded)
};

inline constexpr ModelShape kPresets[] = {
    {"tiny", 128, 4, 4, 128, 256, 512},
    {"small", 256, 6, 8, 256, 256, 1024},
    {"124m", 768, 12, 12, 1024, 50257, 3072},    // GPT-2 small
    {"500m", 1280, 24, 20, 1024, 32000, 3456},
    {"1.5b", 2048, 28, 16, 4096, 32000, 5504},   // SkipPipe's 1.5B width and context
};

inline std::optional<ModelShape> preset(std::string_view name) {
  for (const auto& p : kPresets)
    if (p.name == name) return p;
  return std::nullopt;
}

// Bytes of the activation (or its gradient) crossing a stage boundary for one microbatch.
inline int64_t boundary_bytes(const ModelShape& m, int64_t microbatch_size, int64_t bytes_per_element) {
  return microbatch_size * m.seq_len * m.d_model * bytes_per_element;
}

// Forward FLOPs of one transformer block for one microbatch: the four d x d projections and the MLP
// (2 FLOPs per multiply-add), plus attention scores and their weighted sum.
inline double block_forward_flops(const ModelShape& m, Arch arch, int64_t microbatch_size) {
  const double tokens = static_cast<double>(microbatch_size * m.seq_len);
  const double d = static_cast<double>(m.d_model), f = static_cast<double>(m.ffn_hidden);
  const double mlp = arch == Arch::kLlama ? 3 * d * f : 2 * d * f;
  return tokens * (2 * (4 * d * d + mlp) + 4 * static_cast<double>(m.seq_len) * d);
}

inline int64_t block_parameters(const ModelShape& m, Arch arch) {
  const int64_t d = m.d_model, f = m.ffn_hidden;
  return arch == Arch::kLlama ? 4 * d * d + 3 * d * f + 2 * d : 4 * d * d + 2 * d * f + 9 * d + f;
}

}  // namespace gwtf::model
