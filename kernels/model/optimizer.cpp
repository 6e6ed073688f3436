#include "kernels/model/optimizer.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <map>

namespace gwtf::model {

double learning_rate(const AdamWConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  const double span = static_cast<double>(std::max<int64_t>(1, c.total_steps - c.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  const double min_lr = c.lr * c.min_lr_ratio;
  return min_lr + 0.5 * (c.lr - min_lr) * (1 + std::cos(M_PI * progress));
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWConfig config) : c_(config) {
  for (auto& [name, p] : params)
    slots_.push_back(Slot{name, p, at::zeros_like(p), at::zeros_like(p), p.dim() >= 2});
}

double AdamW::step() {
  at::NoGradGuard no_grad;
  double sq = 0;
  for (const auto& s : slots_)
    if (s.param.grad().defined()) sq += s.param.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  const double scale = c_.clip_norm > 0 && norm > c_.clip_norm ? c_.clip_norm / (norm + 1e-6) : 1.0;
  const double lr = learning_rate(c_, steps_);
  ++steps_;
  const double bc1 = 1 - std::pow(c_.beta1, static_cast<double>(steps_));
  const double bc2 = 1 - std::pow(c_.beta2, static_cast<double>(steps_));
  for (auto& s : slots_) {
    if (!s.param.grad().defined()) continue;
    auto g = s.param.grad() * scale;
    s.m.mul_(c_.beta1).add_(g, 1 - c_.beta1);
    s.v.mul_(c_.beta2).addcmul_(g, g, 1 - c_.beta2);
    if (s.decay) s.param.mul_(1 - lr * c_.weight_decay);
    s.param.addcdiv_(s.m / bc1, (s.v / bc2).sqrt_().add_(c_.eps), -lr);
  }
  return norm;
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out{{"step", at::scalar_tensor(steps_, at::kLong)}};
  for (const auto& s : slots_) {
    out.push_back({s.name + ".m", s.m});
    out.push_back({s.name + ".v", s.v});
  }
  return out;
}

std::string AdamW::load_state(const std::vector<std::pair<std::string, at::Tensor>>& state) {
  std::map<std::string, at::Tensor> by_name(state.begin(), state.end());
  auto step = by_name.find("step");
  if (step == by_name.end()) return "optimizer state has no 'step'";
  for (const auto& s : slots_)
    for (const char* part : {".m", ".v"}) {
      auto it = by_name.find(s.name + part);
      if (it == by_name.end()) return "optimizer state lacks '" + s.name + part + "'";
      if (!it->second.sizes().equals(s.param.sizes()))
        return "optimizer state '" + s.name + part + "' has the wrong shape";
    }
  at::NoGradGuard no_grad;
  steps_ = step->second.item<int64_t>();
  for (auto& s : slots_) {
    s.m.copy_(by_name.at(s.name + ".m"));
    s.v.copy_(by_name.at(s.name + ".v"));
  }
  return "";
}

}  // namespace gwtf::model
