// How a model is cut into pipeline stages (DESIGN §5): data holders run the embedding (start) and the final norm,
// head and loss (end); relay stage s runs a contiguous range of transformer blocks. A plan knows each stage's
// parameter count, boundary-tensor bytes and FLOPs per microbatch, which the simulator's cost model and the
// capacity model use. LibTorch-free.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/model/preset.hpp"

namespace gwtf::model {

struct StageSpec {
  int first_block = 0;  // [first_block, end_block)
  int end_block = 0;
  int64_t parameters = 0;
  int64_t boundary_bytes = 0;  // activation received (and gradient sent back) per microbatch
  double forward_flops = 0;    // per microbatch
};

struct StagePlan {
  Arch arch = Arch::kGpt;
  ModelShape shape{};
  std::vector<StageSpec> relays;  // relay stages 1..S (index 0 is stage 1)
  int64_t holder_parameters = 0;  // embedding (+ positions) + final norm + head
  double holder_forward_flops = 0;

  // Splits `layers` blocks over `stages` relay stages as evenly as possible (earlier stages take the remainder).
  static Result<StagePlan, std::string> even(Arch arch, const ModelShape& shape, int stages, int64_t microbatch,
                                             bool tied_head = true);
  // Explicit ranges: consecutive, non-empty, covering every block exactly once.
  static Result<StagePlan, std::string> ranges(Arch arch, const ModelShape& shape,
                                               const std::vector<std::pair<int, int>>& ranges, int64_t microbatch,
                                               bool tied_head = true);
};

}  // namespace gwtf::model
