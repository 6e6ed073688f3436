// Instance generators for the flow layer's tests, the simulator and the benchmarks.
//
//  layered: like the GWTF author's prototype tests — relays spread over S stages, relay capacities 2-5, integer
//           edge costs 1-10, 1-3 data holders (capacity 10-20);
//  geo:     nodes placed uniformly at random in the regions of data/regions.csv, compute speeds 1x-4x, edge
//           costs from d_ij = (c_i+c_j)/2 + (λ_ij+λ_ji)/2 + 2·size/(β_ij+β_ji) with a model preset's boundary size.
// `degree` > 0 bounds each node's neighbours per adjacent stage (partial knowledge, for large swarms).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/base/rng.hpp"
#include "kernels/flow/instance.hpp"

namespace gwtf::sim {

// One-way latency and bandwidth between named regions (a CSV as in data/regions.csv: a,b,latency_ms,bandwidth
// with the bandwidth's unit in its header: bandwidth_gib_s or bandwidth_gbit_s).
struct RegionTable {
  std::vector<std::string> names;
  std::vector<std::vector<double>> latency_s;      // symmetric
  std::vector<std::vector<double>> bandwidth_Bps;  // symmetric
  static RegionTable parse(std::string_view csv, double same_latency_s = 0.001, double same_bw_Bps = 2.0 * (1u << 30));
  static const RegionTable& builtin();  // data/regions.csv (12 cloud regions), embedded at build time
  // data/cities-dtfm.csv: DT-FM's 10 cities (very probably the paper's 10 locations); within a city 5 ms, 2 Gbit/s.
  static const RegionTable& cities();
};

struct InstanceOptions {
  int nodes = 40;   // holders included
  int stages = 6;   // relay stages
  int holders = 2;
  int degree = 0;   // 0: everyone knows every node of the adjacent and same stages
  bool geo = false;
  // layered
  int min_capacity = 2, max_capacity = 5;
  int min_cost = 1, max_cost = 10;
  int min_holder_capacity = 10, max_holder_capacity = 20;
  // geo
  std::string preset = "500m";
  int microbatch_size = 4;
  double device_flops = 100e12;   // effective FLOP/s of the fastest device
  double max_slowdown = 4.0;      // compute speeds spread over 1x .. this
  uint64_t memory_bytes = 24ull << 30;
  const RegionTable* table = nullptr;  // geo: where nodes are placed (nullptr: RegionTable::builtin())
  // Heterogeneous links: each link's bandwidth is its regions' times a factor in [1/link_spread, 1], fixed per
  // pair of nodes (link_factor); 1: every link as its regions say.
  double link_spread = 1;
  uint64_t link_seed = 0;
};

// The bandwidth factor of the link between nodes a and b (symmetric, a pure function of the pair and the seed).
double link_factor(const InstanceOptions& o, flow::NodeId a, flow::NodeId b);

class InstanceGenerator {
 public:
  InstanceGenerator(InstanceOptions options, uint64_t seed);
  flow::Instance make();
  // A new node for `stage` of `instance`, with its links (as FlowSim::join takes them).
  std::pair<flow::NodeSpec, std::vector<std::pair<flow::NodeId, double>>> joiner(const flow::Instance& instance,
                                                                                 flow::Stage stage);
  const RegionTable& table() const { return o_.table ? *o_.table : RegionTable::builtin(); }
  double boundary_bytes() const { return boundary_bytes_; }  // geo: one activation or gradient
  double stage_compute_s(flow::Stage s) const { return stage_compute_s_.at(s); }  // geo: fwd+bwd at full speed
  double stage_parameters(flow::Stage s) const { return stage_parameters_.at(s); }  // geo: weights a stage holds
  const InstanceOptions& options() const { return o_; }

 private:
  flow::NodeSpec new_node(flow::Stage stage);
  double edge(const flow::NodeSpec& a, const flow::NodeSpec& b);
  std::vector<std::pair<flow::NodeId, double>> links_for(const flow::Instance& inst, const flow::NodeSpec& n);

  InstanceOptions o_;
  Rng rng_;
  flow::NodeId next_id_ = 1;
  double boundary_bytes_ = 0;
  std::vector<double> stage_compute_s_;  // per relay stage (index 0: holders' embedding + head)
  std::vector<double> stage_parameters_;  // the same
};

}  // namespace gwtf::sim
