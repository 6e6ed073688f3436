// AdamW with linear warm-up, cosine decay and gradient-norm clipping, for one stage's parameters.
//
// Clipping is per stage: in the swarm each stage reduces, clips and steps its own gradient, so the reference
// trainer clips per stage too (with one stage per block range, exactly as the swarm would) — the loss curves
// then agree to floating-point tolerance. Weight decay applies to matrices (dim >= 2), not to norms and biases.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gwtf::model {

struct AdamWConfig {
  double lr = 6e-4;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  int64_t warmup_steps = 100;
  int64_t total_steps = 5000;
  double min_lr_ratio = 0.1;  // the cosine decays to lr * min_lr_ratio at total_steps
  double clip_norm = 1.0;     // 0: no clipping
};

// Learning rate for step `step` (0-based): linear warm-up to lr, then cosine down to lr * min_lr_ratio.
double learning_rate(const AdamWConfig& c, int64_t step);

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWConfig config);

  // Clips the parameters' .grad() to clip_norm (jointly) and applies one update; returns the norm before clipping.
  double step();
  int64_t steps() const { return steps_; }

  // Optimizer state for checkpoints: "step" plus "<name>.m" / "<name>.v" for every parameter.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  // Restores what state() returned; an error string names what is missing or mis-shaped ("" on success).
  std::string load_state(const std::vector<std::pair<std::string, at::Tensor>>& state);

 private:
  struct Slot {
    std::string name;
    at::Tensor param, m, v;
    bool decay;
  };
  std::vector<Slot> slots_;
  AdamWConfig c_;
  int64_t steps_ = 0;
};

}  // namespace gwtf::model
