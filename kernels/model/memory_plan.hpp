// What a relay holds in memory, and so how much work it can take (DESIGN §4: a node's capacity comes from its
// memory and its stage's per-microbatch footprint; issue 6: the recovery buffers' budget is part of it).
// fp32 training with AdamW. LibTorch-free: arithmetic on the stage plan.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/base/result.hpp"
#include "kernels/model/stage_plan.hpp"

namespace gwtf::model {

struct StageFootprint {
  // Whatever the load: weights, gradients and AdamW's two moments (16 bytes per parameter), and the copy of the
  // weights from before the last step that a replay runs on (4 more).
  uint64_t fixed_bytes = 0;
  // One microbatch between its forward and its backward: the autograd graph of the stage's blocks.
  uint64_t activation_bytes = 0;
  // One microbatch until its iteration commits: the recovery buffers (input received, output sent, gradient sent).
  uint64_t buffer_bytes = 0;
};

// The footprint of relay stage `stage` of `plan` for microbatches of `microbatch` sequences of `seq_len` tokens.
// Activations follow Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models" (2022),
// §4.1: s·b·h·(34 + 5·a·s/h) bytes per block in 16 bits, doubled for fp32 — an upper bound without recomputation
// (LibTorch's fused attention keeps less).
StageFootprint relay_footprint(const StagePlan& plan, int stage, int64_t microbatch, int64_t seq_len);
// The same for relay stage `stage` of an even cut (StagePlan::even) of `shape` into `relay_stages`, as a node runs.
Result<StageFootprint, std::string> relay_footprint(Arch arch, ModelShape shape, int relay_stages, int stage,
                                                    int64_t microbatch, int64_t seq_len, bool tied_head);

struct MemoryPlan {
  uint32_t capacity = 0;       // microbatches in flight through the node at once: the flow layer's node capacity
  uint32_t buffer_budget = 0;  // microbatches whose recovery buffers it keeps (TrainParams::buffer_budget)
};

// Capacity: as many microbatches in flight (activations and buffers each) as fit, at most `max_capacity`; the
// buffer budget: the memory left after them, in recovery buffers (so at least the capacity). An error names what
// `memory_bytes` lacks.
Result<MemoryPlan, std::string> plan_memory(uint64_t memory_bytes, const StageFootprint& footprint,
                                            uint32_t max_capacity);

}  // namespace gwtf::model
