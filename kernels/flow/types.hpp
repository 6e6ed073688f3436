// Identifiers shared by the flow layer, the simulator and the runtime.
#pragma once

#include <cstdint>
#include <limits>
#include <tuple>

namespace gwtf::flow {

using NodeId = uint64_t;
using HopId = uint64_t;  // unique among the out-hops one node ever created
using Stage = uint16_t;  // 0: data holders (source and sink of every flow); 1..S: relay stages

inline constexpr double kInfCost = std::numeric_limits<double>::infinity();

// An in-hop as its downstream end names it: who sent it, and the id the sender gave it.
struct HopKey {
  NodeId prev = 0;
  HopId id = 0;
  friend bool operator<(const HopKey& a, const HopKey& b) { return std::tie(a.prev, a.id) < std::tie(b.prev, b.id); }
  friend bool operator==(const HopKey& a, const HopKey& b) { return a.prev == b.prev && a.id == b.id; }
};

// The ring of stages: holders (0) -> 1 -> ... -> S -> holders (0).
inline Stage next_stage(Stage s, Stage relay_stages) { return s == relay_stages ? 0 : static_cast<Stage>(s + 1); }
inline Stage prev_stage(Stage s, Stage relay_stages) { return s == 0 ? relay_stages : static_cast<Stage>(s - 1); }

}  // namespace gwtf::flow
