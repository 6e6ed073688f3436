#include "kernels/model/memory_plan.hpp"

#include <algorithm>
#include <cstdio>

namespace gwtf::model {

StageFootprint relay_footprint(const StagePlan& plan, int stage, int64_t microbatch, int64_t seq_len) {
  const StageSpec& spec = plan.relays.at(static_cast<size_t>(stage - 1));
  const double s = static_cast<double>(seq_len), b = static_cast<double>(microbatch);
  const double h = static_cast<double>(plan.shape.d_model), a = static_cast<double>(plan.shape.heads);
  const double per_block = 2 * s * b * h * (34 + 5 * a * s / h);
  const auto boundary = static_cast<uint64_t>(s * b * h * 4);
  return {20 * static_cast<uint64_t>(spec.parameters),
          static_cast<uint64_t>(per_block * (spec.end_block - spec.first_block)), 3 * boundary};
}

Result<StageFootprint, std::string> relay_footprint(Arch arch, ModelShape shape, int relay_stages, int stage,
                                                    int64_t microbatch, int64_t seq_len, bool tied_head) {
  shape.seq_len = seq_len;
  auto plan = StagePlan::even(arch, shape, relay_stages, microbatch, tied_head);
  if (!plan) return Err{plan.error()};
  if (stage < 1 || stage > relay_stages) return Err{"no relay stage " + std::to_string(stage)};
  return relay_footprint(plan.value(), stage, microbatch, seq_len);
}

namespace {
std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}
}  // namespace

Result<MemoryPlan, std::string> plan_memory(uint64_t memory_bytes, const StageFootprint& f, uint32_t max_capacity) {
  const uint64_t per_microbatch = f.activation_bytes + f.buffer_bytes;
  const uint64_t least = f.fixed_bytes + per_microbatch;
  if (memory_bytes < least || per_microbatch == 0 || f.buffer_bytes == 0)
    return Err{"a memory of " + mib(memory_bytes) + " cannot hold this stage: it needs " + mib(f.fixed_bytes) +
               " for the weights, gradients and optimizer state and " + mib(per_microbatch) +
               " per microbatch in flight (at least " + mib(least) + ")"};
  const uint64_t room = memory_bytes - f.fixed_bytes;
  const auto capacity = static_cast<uint32_t>(std::min<uint64_t>(std::max<uint32_t>(max_capacity, 1), room / per_microbatch));
  const uint64_t budget = (room - capacity * f.activation_bytes) / f.buffer_bytes;
  return MemoryPlan{capacity, static_cast<uint32_t>(std::min<uint64_t>(budget, 1000000))};
}

}  // namespace gwtf::model
