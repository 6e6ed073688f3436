// A flow-routing instance: who is in which stage with what capacity, who can talk to whom, and at what edge cost.
// The oracle solves it centrally; the simulator runs FlowNodes on it; generators (kernels/sim) make them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/flow/types.hpp"

namespace gwtf::flow {

struct NodeSpec {
  NodeId id = 0;
  Stage stage = 0;        // 0: data holder
  uint32_t capacity = 0;
  double compute_s = 0;   // fwd+bwd time per microbatch (geo instances)
  int region = -1;        // index into the region table (geo instances)
};

class Instance {
 public:
  Stage relay_stages = 1;
  std::vector<NodeSpec> nodes;

  const NodeSpec* node(NodeId id) const;
  void add_node(const NodeSpec& n);
  void remove_node(NodeId id);  // and all its links

  // Links between adjacent stages carry a cost; same-stage links (for annealing) carry none.
  void link(NodeId a, NodeId b, double cost);
  double cost(NodeId a, NodeId b) const;  // kInfCost when not linked
  const std::vector<NodeId>& neighbours(NodeId id) const;


 private:
  std::map<std::pair<NodeId, NodeId>, double> cost_;
  std::map<NodeId, std::vector<NodeId>> adj_;
  std::map<NodeId, size_t> index_;
};

}  // namespace gwtf::flow
