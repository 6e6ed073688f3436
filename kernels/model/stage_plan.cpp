#include "kernels/model/stage_plan.hpp"

namespace gwtf::model {

Result<StagePlan, std::string> StagePlan::even(Arch arch, const ModelShape& shape, int stages, int64_t microbatch,
                                               bool tied_head) {
  if (stages < 1 || stages > shape.layers)
    return Err{"cannot cut " + std::to_string(shape.layers) + " blocks into " + std::to_string(stages) + " stages"};
  std::vector<std::pair<int, int>> r;
  int first = 0;
  for (int s = 0; s < stages; ++s) {
    const int n = static_cast<int>(shape.layers / stages + (s < shape.layers % stages ? 1 : 0));
    r.push_back({first, first + n});
    first += n;
  }
  return ranges(arch, shape, r, microbatch, tied_head);
}

Result<StagePlan, std::string> StagePlan::ranges(Arch arch, const ModelShape& shape,
                                                 const std::vector<std::pair<int, int>>& ranges, int64_t microbatch,
                                                 bool tied_head) {
  StagePlan p;
  p.arch = arch;
  p.shape = shape;
  int expect = 0;
  for (const auto& [a, b] : ranges) {
    if (a != expect || b <= a)
      return Err{"stage ranges must be consecutive and non-empty; got [" + std::to_string(a) + ", " +
                 std::to_string(b) + ") where block " + std::to_string(expect) + " was expected next"};
    StageSpec s;
    s.first_block = a;
    s.end_block = b;
    s.parameters = (b - a) * block_parameters(shape, arch);
    s.boundary_bytes = boundary_bytes(shape, microbatch, 4);
    s.forward_flops = (b - a) * block_forward_flops(shape, arch, microbatch);
    p.relays.push_back(s);
    expect = b;
  }
  if (expect != shape.layers)
    return Err{"stage ranges cover " + std::to_string(expect) + " of " + std::to_string(shape.layers) + " blocks"};
  const int64_t d = shape.d_model, v = shape.vocab;
  const int64_t positions = arch == Arch::kGpt ? shape.seq_len * d : 0;
  const int64_t final_norm = arch == Arch::kGpt ? 2 * d : d;
  p.holder_parameters = v * d + positions + final_norm + (tied_head ? 0 : v * d);
  p.holder_forward_flops = 2.0 * static_cast<double>(microbatch * shape.seq_len * d * v);
  return p;
}

}  // namespace gwtf::model
