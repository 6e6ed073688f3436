#include "kernels/flow/instance.hpp"

#include <algorithm>

namespace gwtf::flow {

namespace {
std::pair<NodeId, NodeId> key(NodeId a, NodeId b) { return a < b ? std::make_pair(a, b) : std::make_pair(b, a); }
const std::vector<NodeId> kNone;
}  // namespace

const NodeSpec* Instance::node(NodeId id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &nodes[it->second];
}

void Instance::add_node(const NodeSpec& n) {
  index_[n.id] = nodes.size();
  nodes.push_back(n);
  adj_[n.id];
}

void Instance::remove_node(NodeId id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  for (NodeId peer : adj_[id]) {
    auto& v = adj_[peer];
    v.erase(std::remove(v.begin(), v.end(), id), v.end());
    cost_.erase(key(id, peer));
  }
  adj_.erase(id);
  nodes.erase(nodes.begin() + static_cast<long>(it->second));
  index_.clear();
  for (size_t i = 0; i < nodes.size(); ++i) index_[nodes[i].id] = i;
}

void Instance::link(NodeId a, NodeId b, double c) {
  if (!cost_.count(key(a, b))) {
    adj_[a].push_back(b);
    adj_[b].push_back(a);
  }
  cost_[key(a, b)] = c;
}

double Instance::cost(NodeId a, NodeId b) const {
  auto it = cost_.find(key(a, b));
  return it == cost_.end() ? kInfCost : it->second;
}

const std::vector<NodeId>& Instance::neighbours(NodeId id) const {
  auto it = adj_.find(id);
  return it == adj_.end() ? kNone : it->second;
}

}  // namespace gwtf::flow
