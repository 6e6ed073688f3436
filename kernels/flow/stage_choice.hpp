// Which stage a joining relay should serve (GWTF §4.4, thesis §3): the one that limits the flow. With complete
// links between adjacent stages the maximum flow is the smallest total capacity of a stage, so the joiner adds
// capacity there; among equals, the busiest (flows / capacity), then the lowest stage number.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/flow/types.hpp"

namespace gwtf::flow {

struct StageLoad {
  Stage stage = 1;
  uint64_t capacity = 0;  // sum over the stage's live relays
  uint64_t flows = 0;     // flows through the stage now
};

// `loads` has one entry per relay stage (1..S); stages with no live relay have capacity 0 and win.
Stage choose_stage(const std::vector<StageLoad>& loads);

}  // namespace gwtf::flow
