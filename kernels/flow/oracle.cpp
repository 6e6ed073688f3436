#include "kernels/flow/oracle.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

namespace gwtf::flow {

namespace {

struct Edge {
  int to;
  int rev;       // index of the reverse edge in graph[to]
  int64_t cap;   // residual capacity
  double cost;
  bool original;
};

class Network {
 public:
  explicit Network(int n) : g_(static_cast<size_t>(n)) {}
  void add(int u, int v, int64_t cap, double cost) {
    g_[u].push_back(Edge{v, static_cast<int>(g_[v].size()), cap, cost, true});
    g_[v].push_back(Edge{u, static_cast<int>(g_[u].size()) - 1, 0, -cost, false});
  }
  std::vector<std::vector<Edge>>& graph() { return g_; }

  // Successive shortest paths from s to t; returns (flow, cost) and the cost of the first (cheapest) path.
  std::pair<int64_t, double> min_cost_max_flow(int s, int t, double* first_path_cost) {
    const size_t n = g_.size();
    std::vector<double> potential(n, 0.0), dist(n);
    std::vector<int> prev_node(n), prev_edge(n);
    int64_t flow = 0;
    double cost = 0;
    *first_path_cost = 0;
    for (;;) {
      std::fill(dist.begin(), dist.end(), kInfCost);
      dist[s] = 0;
      using Item = std::pair<double, int>;
      std::priority_queue<Item, std::vector<Item>, std::greater<Item>> pq;
      pq.push({0.0, s});
      while (!pq.empty()) {
        auto [d, u] = pq.top();
        pq.pop();
        if (d > dist[u]) continue;
        for (size_t i = 0; i < g_[u].size(); ++i) {
          const Edge& e = g_[u][i];
          if (e.cap <= 0) continue;
          const double rc = std::max(0.0, e.cost + potential[u] - potential[e.to]);
          if (dist[u] + rc < dist[e.to] - 1e-12) {
            dist[e.to] = dist[u] + rc;
            prev_node[e.to] = u;
            prev_edge[e.to] = static_cast<int>(i);
            pq.push({dist[e.to], e.to});
          }
        }
      }
      if (!std::isfinite(dist[t])) break;
      for (size_t v = 0; v < n; ++v)
        if (std::isfinite(dist[v])) potential[v] += dist[v];
      int64_t push = std::numeric_limits<int64_t>::max();
      for (int v = t; v != s; v = prev_node[v]) push = std::min(push, g_[prev_node[v]][prev_edge[v]].cap);
      double path = 0;
      for (int v = t; v != s; v = prev_node[v]) {
        Edge& e = g_[prev_node[v]][prev_edge[v]];
        e.cap -= push;
        g_[v][e.rev].cap += push;
        path += e.cost;
      }
      if (flow == 0) *first_path_cost = path;
      flow += push;
      cost += path * static_cast<double>(push);
    }
    return {flow, cost};
  }

 private:
  std::vector<std::vector<Edge>> g_;
};

}  // namespace

double path_cost(const Instance& instance, const std::vector<NodeId>& path) {
  double c = 0;
  for (size_t i = 0; i + 1 < path.size(); ++i) c += instance.cost(path[i], path[i + 1]);
  return c;
}

void balance_paths(const Instance& instance, std::vector<std::vector<NodeId>>& paths) {
  for (int sweep = 0; sweep < 100; ++sweep) {
    bool changed = false;
    for (const auto& n : instance.nodes) {
      if (n.stage == 0) continue;
      const size_t pos = n.stage;  // a relay of stage s sits at index s of every path
      std::vector<size_t> through;
      for (size_t p = 0; p < paths.size(); ++p)
        if (paths[p].size() > pos && paths[p][pos] == n.id) through.push_back(p);
      if (through.size() < 2) continue;
      struct Part {
        double cost;
        std::vector<NodeId> nodes;
      };
      std::vector<Part> prefixes, suffixes;
      double before = 0;
      for (size_t p : through) {
        std::vector<NodeId> pre(paths[p].begin(), paths[p].begin() + static_cast<long>(pos) + 1);
        std::vector<NodeId> suf(paths[p].begin() + static_cast<long>(pos), paths[p].end());
        prefixes.push_back({path_cost(instance, pre), pre});
        suffixes.push_back({path_cost(instance, suf), suf});
        before = std::max(before, path_cost(instance, paths[p]));
      }
      std::sort(prefixes.begin(), prefixes.end(), [](const Part& a, const Part& b) { return a.cost < b.cost; });
      std::sort(suffixes.begin(), suffixes.end(), [](const Part& a, const Part& b) { return a.cost > b.cost; });
      double after = 0;
      for (size_t k = 0; k < through.size(); ++k) after = std::max(after, prefixes[k].cost + suffixes[k].cost);
      if (after >= before - 1e-9 * (1 + before)) continue;
      for (size_t k = 0; k < through.size(); ++k) {
        std::vector<NodeId> joined = prefixes[k].nodes;
        joined.insert(joined.end(), suffixes[k].nodes.begin() + 1, suffixes[k].nodes.end());
        paths[through[k]] = std::move(joined);
      }
      changed = true;
    }
    if (!changed) break;
  }
}

OracleResult solve_oracle(const Instance& instance) {
  // Vertex 0: super source, 1: super sink; instance node k: 2+2k (in), 3+2k (out).
  const int count = static_cast<int>(instance.nodes.size());
  Network net(2 + 2 * count);
  std::map<NodeId, int> index;
  for (int k = 0; k < count; ++k) index[instance.nodes[static_cast<size_t>(k)].id] = k;
  const int64_t kUnbounded = 1 << 30;
  for (int k = 0; k < count; ++k) {
    const NodeSpec& n = instance.nodes[static_cast<size_t>(k)];
    const int in = 2 + 2 * k, out = 3 + 2 * k;
    if (n.stage == 0) {
      net.add(0, out, n.capacity, 0.0);  // a holder as source ...
      net.add(in, 1, n.capacity, 0.0);   // ... and as sink
    } else {
      net.add(in, out, n.capacity, 0.0);
    }
    for (NodeId peer : instance.neighbours(n.id)) {
      const NodeSpec* m = instance.node(peer);
      if (!m || m->stage != next_stage(n.stage, instance.relay_stages)) continue;
      net.add(out, 2 + 2 * index.at(peer), kUnbounded, instance.cost(n.id, peer));
    }
  }
  OracleResult r;
  auto [flow, cost] = net.min_cost_max_flow(0, 1, &r.shortest_path_cost);
  r.flow_value = static_cast<uint32_t>(flow);
  r.total_cost = cost;

  // Decompose into unit paths: follow original edges that carry flow (cap below the original).
  auto& g = net.graph();
  std::vector<std::vector<int64_t>> carried(g.size());
  for (size_t u = 0; u < g.size(); ++u) {
    carried[u].resize(g[u].size(), 0);
    for (size_t i = 0; i < g[u].size(); ++i)
      if (g[u][i].original) carried[u][i] = g[g[u][i].to][g[u][i].rev].cap;  // reverse residual = flow
  }
  for (int64_t f = 0; f < flow; ++f) {
    std::vector<NodeId> path;
    int u = 0;
    while (u != 1) {
      size_t i = 0;
      while (i < g[u].size() && !(g[u][i].original && carried[u][i] > 0)) ++i;
      if (i == g[u].size()) break;  // cannot happen for a valid flow
      --carried[u][i];
      const int v = g[u][i].to;
      // Record each node once: at its in-vertex, or at its out-vertex when it is the source holder.
      if (v >= 2 && ((v - 2) % 2 == 0 || u == 0)) path.push_back(instance.nodes[static_cast<size_t>((v - 2) / 2)].id);
      u = v;
    }
    r.paths.push_back(std::move(path));
  }
  balance_paths(instance, r.paths);
  for (const auto& p : r.paths) r.max_path_cost = std::max(r.max_path_cost, path_cost(instance, p));
  // Any flow of this value costs at least the minimum in total, so its largest path is at least the mean; and no
  // path is cheaper than the cheapest one.
  r.max_path_lower_bound = flow > 0 ? std::max(r.total_cost / static_cast<double>(flow), r.shortest_path_cost) : 0.0;
  return r;
}

}  // namespace gwtf::flow
