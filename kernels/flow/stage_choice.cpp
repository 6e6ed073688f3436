#include "kernels/flow/stage_choice.hpp"

namespace gwtf::flow {

Stage choose_stage(const std::vector<StageLoad>& loads) {
  const StageLoad* best = nullptr;
  for (const auto& l : loads) {
    if (!best || l.capacity < best->capacity) {
      best = &l;
      continue;
    }
    if (l.capacity == best->capacity && l.capacity > 0 &&
        l.flows * best->capacity > best->flows * l.capacity) {  // higher utilisation, without division
      best = &l;
    }
  }
  return best ? best->stage : 1;
}

}  // namespace gwtf::flow
