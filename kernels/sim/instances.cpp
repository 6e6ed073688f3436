#include "kernels/sim/instances.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include "kernels/flow/cost_model.hpp"
#include "kernels/model/preset.hpp"

namespace gwtf::sim {

extern const char* const kRegionsCsv;  // data/regions.csv, embedded by CMake (regions_csv.cpp)
extern const char* const kCitiesCsv;   // data/cities-dtfm.csv

using namespace gwtf::flow;

RegionTable RegionTable::parse(std::string_view csv, double same_latency_s, double same_bw_Bps) {
  RegionTable t;
  std::map<std::string, size_t> index;
  struct Row {
    std::string a, b;
    double lat_ms, bw_gib;
  };
  std::vector<Row> rows;
  std::istringstream in{std::string(csv)};
  std::string line;
  bool header = true;
  double unit = 1u << 30;  // bytes/s per unit of the bandwidth column
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header) {  // a,b,latency_ms,bandwidth_gib_s | bandwidth_gbit_s
      header = false;
      if (line.find("gbit") != std::string::npos) unit = 1e9 / 8;
      continue;
    }
    std::istringstream fields(line);
    Row r;
    std::string lat, bw;
    if (!std::getline(fields, r.a, ',') || !std::getline(fields, r.b, ',') || !std::getline(fields, lat, ',') ||
        !std::getline(fields, bw, ','))
      throw std::runtime_error("region table: malformed line '" + line + "'");
    r.lat_ms = std::stod(lat);
    r.bw_gib = std::stod(bw);
    rows.push_back(r);
    for (const auto& name : {r.a, r.b})
      if (!index.count(name)) {
        index[name] = t.names.size();
        t.names.push_back(name);
      }
  }
  const size_t n = t.names.size();
  t.latency_s.assign(n, std::vector<double>(n, same_latency_s));
  t.bandwidth_Bps.assign(n, std::vector<double>(n, same_bw_Bps));
  for (const auto& r : rows) {
    const size_t i = index[r.a], j = index[r.b];
    t.latency_s[i][j] = t.latency_s[j][i] = r.lat_ms / 1000.0;
    t.bandwidth_Bps[i][j] = t.bandwidth_Bps[j][i] = r.bw_gib * unit;
  }
  return t;
}

const RegionTable& RegionTable::builtin() {
  static const RegionTable table = parse(kRegionsCsv);
  return table;
}

const RegionTable& RegionTable::cities() {
  static const RegionTable table = parse(kCitiesCsv, 0.005, 2e9 / 8);
  return table;
}

double link_factor(const InstanceOptions& o, NodeId a, NodeId b) {
  if (o.link_spread <= 1) return 1;
  uint64_t x = (std::min(a, b) * 0x9e3779b97f4a7c15ull) ^ (std::max(a, b) + 0x632be59bd9b4e019ull) ^ o.link_seed;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;  // splitmix64's finalizer
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53;
  return 1.0 / (1 + (o.link_spread - 1) * u);  // in [1/spread, 1]
}

InstanceGenerator::InstanceGenerator(InstanceOptions options, uint64_t seed) : o_(std::move(options)), rng_(seed) {
  if (o_.stages < 1 || o_.holders < 1 || o_.nodes < o_.holders + o_.stages)
    throw std::invalid_argument("instance needs at least 1 holder, 1 stage and one relay per stage");
  if (o_.geo) {
    const auto shape = model::preset(o_.preset);
    if (!shape) throw std::invalid_argument("unknown model preset '" + o_.preset + "'");
    boundary_bytes_ = static_cast<double>(model::boundary_bytes(*shape, o_.microbatch_size, 2));
    const double block = model::block_forward_flops(*shape, model::Arch::kLlama, o_.microbatch_size);
    stage_compute_s_.push_back(3 * 2.0 * static_cast<double>(o_.microbatch_size * shape->seq_len * shape->d_model *
                                                             shape->vocab) / o_.device_flops);
    stage_parameters_.push_back(2.0 * static_cast<double>(shape->vocab * shape->d_model));  // embedding and head
    for (int s = 0; s < o_.stages; ++s) {
      const int64_t layers = shape->layers / o_.stages + (s < shape->layers % o_.stages ? 1 : 0);
      stage_compute_s_.push_back(3 * block * static_cast<double>(layers) / o_.device_flops);
      stage_parameters_.push_back(static_cast<double>(layers * model::block_parameters(*shape, model::Arch::kLlama)));
    }
  }
}

NodeSpec InstanceGenerator::new_node(Stage stage) {
  NodeSpec n;
  n.id = next_id_++;
  n.stage = stage;
  if (!o_.geo) {
    n.capacity = static_cast<uint32_t>(stage == 0 ? rng_.between(o_.min_holder_capacity, o_.max_holder_capacity)
                                                  : rng_.between(o_.min_capacity, o_.max_capacity));
    return n;
  }
  n.region = static_cast<int>(rng_.below(table().names.size()));
  const double slowdown = 1 + (o_.max_slowdown - 1) * rng_.uniform();
  n.compute_s = stage_compute_s_.at(stage) * slowdown;
  // Memory 0.5x-1.5x the nominal; a microbatch holds its activations (about 12 boundary tensors per block
  // without recomputation, a coarse figure) plus three boundary tensors of recovery buffers.
  const auto shape = *model::preset(o_.preset);
  const int64_t layers = stage == 0 ? 1 : shape.layers / o_.stages;
  const auto memory = static_cast<uint64_t>(static_cast<double>(o_.memory_bytes) * (0.5 + rng_.uniform()));
  const auto fixed = static_cast<uint64_t>(16 * layers * model::block_parameters(shape, model::Arch::kLlama));
  const auto per_mb = static_cast<uint64_t>(boundary_bytes_ * static_cast<double>(12 * layers + 3));
  n.capacity = std::max<uint32_t>(1, capacity_from_memory(memory, fixed, per_mb, 16));
  return n;
}

double InstanceGenerator::edge(const NodeSpec& a, const NodeSpec& b) {
  if (!o_.geo) return static_cast<double>(rng_.between(o_.min_cost, o_.max_cost));
  const auto& t = table();
  const double lat = t.latency_s[a.region][b.region];
  const double bw = t.bandwidth_Bps[a.region][b.region] * link_factor(o_, a.id, b.id);
  return edge_cost(a.compute_s, b.compute_s, lat, lat, bw, bw, boundary_bytes_);
}

std::vector<std::pair<NodeId, double>> InstanceGenerator::links_for(const Instance& inst, const NodeSpec& n) {
  std::vector<std::pair<NodeId, double>> links;
  const Stage S = inst.relay_stages;
  std::vector<Stage> stages{prev_stage(n.stage, S), n.stage};
  if (next_stage(n.stage, S) != stages[0]) stages.push_back(next_stage(n.stage, S));  // S == 1: prev == next
  for (Stage s : stages) {
    std::vector<const NodeSpec*> pool;
    for (const auto& m : inst.nodes)
      if (m.stage == s && m.id != n.id) pool.push_back(&m);
    if (o_.degree > 0 && pool.size() > static_cast<size_t>(o_.degree)) {
      for (size_t i = 0; i < static_cast<size_t>(o_.degree); ++i)
        std::swap(pool[i], pool[i + rng_.below(pool.size() - i)]);
      pool.resize(static_cast<size_t>(o_.degree));
    }
    for (const auto* m : pool) links.push_back({m->id, s == n.stage ? kInfCost : edge(n, *m)});
  }
  return links;
}

Instance InstanceGenerator::make() {
  Instance inst;
  inst.relay_stages = static_cast<Stage>(o_.stages);
  for (int h = 0; h < o_.holders; ++h) inst.add_node(new_node(0));
  const int relays = o_.nodes - o_.holders;
  std::vector<int> per_stage(static_cast<size_t>(o_.stages), relays / o_.stages);
  for (int r = 0; r < relays % o_.stages; ++r) ++per_stage[rng_.below(per_stage.size())];
  for (int s = 0; s < o_.stages; ++s)
    for (int k = 0; k < per_stage[static_cast<size_t>(s)]; ++k) inst.add_node(new_node(static_cast<Stage>(s + 1)));
  // Links: each node draws its own (degree-bounded) neighbour sets; a link exists if either end drew it.
  const std::vector<NodeSpec> nodes = inst.nodes;
  for (const auto& n : nodes)
    for (const auto& [peer, cost] : links_for(inst, n))
      if (std::isinf(inst.cost(n.id, peer)) || n.stage == inst.node(peer)->stage) {
        bool known = false;
        for (NodeId x : inst.neighbours(n.id)) known = known || x == peer;
        if (!known) inst.link(n.id, peer, cost);
      }
  return inst;
}

std::pair<NodeSpec, std::vector<std::pair<NodeId, double>>> InstanceGenerator::joiner(const Instance& instance,
                                                                                        Stage stage) {
  NodeSpec n = new_node(stage);
  // Ids must stay unique across joins into an instance that may have been made by another generator.
  for (const auto& m : instance.nodes) n.id = std::max(n.id, m.id + 1);
  next_id_ = n.id + 1;
  return {n, links_for(instance, n)};
}

}  // namespace gwtf::sim
