// The centralized optimum on the same graph the decentralized protocol routes on (DESIGN §4): node splitting
// for capacities, min-cost max-flow by successive shortest paths (Dijkstra with potentials), then a path
// decomposition whose largest path is lowered by the same min-max pairing the nodes use, and a lower bound on the
// best achievable max path cost for that flow value.
#pragma once

#include <vector>

#include "kernels/flow/instance.hpp"

namespace gwtf::flow {

struct OracleResult {
  uint32_t flow_value = 0;
  double total_cost = 0;              // minimum over all flows of maximum value
  double max_path_cost = 0;           // of the decomposition below
  double max_path_lower_bound = 0;    // no flow of this value has a smaller max path cost
  double shortest_path_cost = 0;      // the cheapest single source-to-sink path
  std::vector<std::vector<NodeId>> paths;  // holder, relay stage 1..S, holder
};

OracleResult solve_oracle(const Instance& instance);

// Lowers the largest path cost of a decomposition by re-pairing prefixes and suffixes at every relay, until no
// relay can lower it (the nodes' local rule, applied centrally). Path costs come from `instance`.
void balance_paths(const Instance& instance, std::vector<std::vector<NodeId>>& paths);

double path_cost(const Instance& instance, const std::vector<NodeId>& path);

}  // namespace gwtf::flow
