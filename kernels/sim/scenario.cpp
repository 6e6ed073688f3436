#include "kernels/sim/scenario.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "kernels/flow/cost_model.hpp"
#include "kernels/flow/oracle.hpp"
#include "kernels/sim/flow_sim.hpp"
#include "kernels/sim/instances.hpp"
#include "kernels/sim/swarm_sim.hpp"

namespace gwtf::sim {

namespace {

using flow::Instance;
using flow::NodeId;
using flow::NodeSpec;
using flow::kInfCost;
using Links = std::vector<std::pair<NodeId, double>>;

InstanceOptions instance_options(const Scenario& s, uint64_t seed) {
  InstanceOptions o;
  o.geo = true;
  o.nodes = s.holders + s.relays;
  o.stages = s.stages;
  o.holders = s.holders;
  o.preset = s.preset;
  o.microbatch_size = s.microbatch_size;
  o.device_flops = s.device_flops;
  o.max_slowdown = s.max_slowdown;
  o.table = s.table == "regions" ? &RegionTable::builtin() : &RegionTable::cities();
  o.link_spread = s.link_spread;
  o.link_seed = seed;
  return o;
}

// Everyone who will ever be in the swarm — the founders and every replacement the churn schedule brings — with
// their links at true cost. Node ids follow TrainSim's: holders 1..H, relays stage by stage, then joiners in the
// order they are scheduled.
struct Universe {
  Instance all;
  std::map<NodeId, Links> links;  // per node: every link it has (to anyone, dead or alive)
  std::set<NodeId> founders;
};

// The churn schedule: relay crashes (exponential times to failure) and the replacements that join their stage.
// A crash that would leave its stage without a replica that has served for a while is skipped (a stage with
// nobody left has nobody to give a newcomer its state: the run could not go on, under any policy).
struct Churn {
  struct Crash {
    NodeId node;
    double t;
  };
  struct Join {
    NodeId node;
    flow::Stage stage;
    double t;
  };
  std::vector<Crash> crashes;
  std::vector<Join> joins;
  uint64_t skipped = 0;
};

// The live part of the universe, as an instance the oracle and the flow layer work on.
class LiveSwarm {
 public:
  explicit LiveSwarm(const Universe& u) : u_(u) {
    live_.relay_stages = u.all.relay_stages;
    for (NodeId id : u.founders) add(id);
  }
  void add(NodeId id) {  // a node joins once: none of its links exists yet
    live_.add_node(*u_.all.node(id));
    for (const auto& [peer, cost] : u_.links.at(id))
      if (live_.node(peer)) live_.link(id, peer, cost);
  }
  void remove(NodeId id) {
    if (live_.node(id)) live_.remove_node(id);
  }
  const Instance& instance() const { return live_; }
  Links links_of(NodeId id) const {
    Links out;
    for (const auto& [peer, cost] : u_.links.at(id))
      if (live_.node(peer) && peer != id) out.push_back({peer, cost});
    return out;
  }

 private:
  const Universe& u_;
  Instance live_;
};

// Per node on a set of paths (holder, relay 1..S, holder): its next hops, once per path, cheapest first (by the
// path's cost from the node on; ties by id) — as the flow layer lists them (FlowNode::next_hops).
std::map<NodeId, std::vector<NodeId>> hops_of(const Instance& live, const std::vector<std::vector<NodeId>>& paths) {
  std::map<NodeId, std::map<NodeId, std::pair<double, int>>> by_node;  // node -> next -> (cheapest rest, paths)
  for (const auto& p : paths) {
    double rest = 0;
    for (size_t k = p.size() - 1; k-- > 0;) {
      rest += live.cost(p[k], p[k + 1]);
      auto& e = by_node[p[k]].try_emplace(p[k + 1], kInfCost, 0).first->second;
      e.first = std::min(e.first, rest);
      ++e.second;
    }
  }
  std::map<NodeId, std::vector<NodeId>> out;
  for (const auto& [n, nexts] : by_node) out[n] = flow::cheapest_first(nexts);
  return out;
}

// The flow value and max path cost of a policy's flow paths on the live swarm, beside the oracle's there.
PolicyRun::Sample quality(const Instance& live, const std::vector<std::vector<NodeId>>& paths) {
  PolicyRun::Sample s;
  s.flow_value = static_cast<uint32_t>(paths.size());
  for (const auto& p : paths) {
    double c = 0;
    for (size_t k = 0; k + 1 < p.size(); ++k) c += live.cost(p[k], p[k + 1]);
    s.max_path_cost = std::max(s.max_path_cost, c);
    s.total_cost += c;
  }
  const auto o = flow::solve_oracle(live);
  s.oracle_flow_value = o.flow_value;
  s.oracle_max_path_cost = o.max_path_cost;
  s.oracle_total_cost = o.total_cost;
  return s;
}

class OracleRouter : public Router {
 public:
  OracleRouter(const Universe& u, PolicyRun& run) : swarm_(u), run_(run) { solve(0); }
  std::map<NodeId, std::vector<NodeId>> route(double now) override {
    if (dirty_) solve(now);
    return hops_;
  }
  void crashed(NodeId node, double) override {
    swarm_.remove(node);
    dirty_ = true;
  }
  void joined(NodeId node, flow::Stage, double) override {
    swarm_.add(node);
    dirty_ = true;
  }

 private:
  void solve(double now) {
    dirty_ = false;
    const auto o = flow::solve_oracle(swarm_.instance());
    hops_ = hops_of(swarm_.instance(), o.paths);
    for (const auto& n : swarm_.instance().nodes) hops_.emplace(n.id, std::vector<NodeId>{});
    run_.routing.push_back({now, o.flow_value, o.flow_value, o.max_path_cost, o.max_path_cost, o.total_cost,
                            o.total_cost});
  }
  LiveSwarm swarm_;
  PolicyRun& run_;
  std::map<NodeId, std::vector<NodeId>> hops_;
  bool dirty_ = true;
};

// DT-FM-like: the oracle's schedule once; nodes use only their scheduled hops (TrainParams::strict_hops), so a
// crash stalls the work routed through the dead node until its replacement takes its place in the schedule.
class StaticRouter : public Router {
 public:
  explicit StaticRouter(const Universe& u) : u_(u) {
    LiveSwarm swarm(u);
    hops_ = hops_of(swarm.instance(), flow::solve_oracle(swarm.instance()).paths);
  }
  std::map<NodeId, std::vector<NodeId>> route(double) override { return hops_; }
  void crashed(NodeId node, double) override { dead_.push_back(node); }
  void joined(NodeId node, flow::Stage stage, double) override {
    // The replacement restarts the first dead scheduled slot of its stage: it takes that node's place everywhere.
    for (auto it = dead_.begin(); it != dead_.end(); ++it)
      if (u_.all.node(*it)->stage == stage && scheduled(*it)) {
        const NodeId old = *it;
        dead_.erase(it);
        for (auto& [n, hops] : hops_)
          for (auto& h : hops)
            if (h == old) h = node;
        if (auto own = hops_.find(old); own != hops_.end()) {
          hops_[node] = own->second;
          hops_.erase(old);
        }
        return;
      }
  }
 private:
  bool scheduled(NodeId n) const {
    if (hops_.count(n)) return true;
    for (const auto& [k, hops] : hops_)
      if (std::find(hops.begin(), hops.end(), n) != hops.end()) return true;
    return false;
  }
  const Universe& u_;
  std::map<NodeId, std::vector<NodeId>> hops_;
  std::vector<NodeId> dead_;
};

// The thesis prototype's first fault-tolerant pipeline: each node sends everything to the next-stage replica with
// the lowest (smoothed) delay it knows alive — here the true edge cost, its best measurement — with no notion of
// capacity; a crash is known after the detection delay, and the protocol's recovery resends what was lost.
class GreedyRouter : public Router {
 public:
  GreedyRouter(const Universe& u, double detect_after) : swarm_(u), detect_after_(detect_after) {}
  std::map<NodeId, std::vector<NodeId>> route(double now) override {
    for (auto it = dying_.begin(); it != dying_.end();)
      if (it->second <= now) {
        swarm_.remove(it->first);
        it = dying_.erase(it);
      } else {
        ++it;
      }
    std::map<NodeId, std::vector<NodeId>> out;
    const auto& live = swarm_.instance();
    for (const auto& n : live.nodes) {
      const flow::Stage next = flow::next_stage(n.stage, live.relay_stages);
      if (next == 0) continue;  // the last stage sends to the microbatch's data holder
      NodeId best = 0;
      double cost = kInfCost;
      for (NodeId peer : live.neighbours(n.id)) {
        const auto* p = live.node(peer);
        if (p && p->stage == next && live.cost(n.id, peer) < cost) cost = live.cost(n.id, peer), best = peer;
      }
      out[n.id] = best ? std::vector<NodeId>{best} : std::vector<NodeId>{};
    }
    return out;
  }
  void crashed(NodeId node, double now) override { dying_[node] = now + detect_after_; }
  void joined(NodeId node, flow::Stage, double) override { swarm_.add(node); }

 private:
  LiveSwarm swarm_;
  double detect_after_;
  std::map<NodeId, double> dying_;  // crashed, known dead from then
};

// The flow protocol's state machines (FlowSim) in lockstep with the training protocol: at each tick the flow
// layer runs up to the same time and its next hops go to the training nodes, as the runtime's flow actor does.
// Flow messages travel with the world's latencies; they do not share bandwidth with the tensors (small).
class FlowRouter : public Router {
 public:
  FlowRouter(const Universe& u, const FlowSimConfig& cfg, uint64_t seed, PolicyRun& run, double sample_every)
      : swarm_(u), u_(u), flows_(swarm_.instance(), cfg, seed), run_(run), sample_every_(sample_every) {}
  std::map<NodeId, std::vector<NodeId>> route(double now) override {
    flows_.run_until(now);
    std::map<NodeId, std::vector<NodeId>> hops;
    for (const auto& n : swarm_.instance().nodes)
      if (const auto* f = flows_.node(n.id)) hops[n.id] = f->next_hops();
    if (now >= next_sample_) {
      next_sample_ = now + sample_every_;
      auto q = quality(swarm_.instance(), flows_.measure().paths);
      q.t = now;
      run_.routing.push_back(q);
    }
    return hops;
  }
  void crashed(NodeId node, double now) override {
    flows_.run_until(now);
    flows_.crash(node);
    swarm_.remove(node);
  }
  void joined(NodeId node, flow::Stage, double now) override {
    flows_.run_until(now);
    const Links links = swarm_.links_of(node);
    swarm_.add(node);
    flows_.join(*u_.all.node(node), links);
  }

 private:
  LiveSwarm swarm_;
  const Universe& u_;
  FlowSim flows_;
  PolicyRun& run_;
  double sample_every_, next_sample_ = 0;
};

double exponential(Rng& rng, double mean) { return -mean * std::log(1 - rng.uniform()); }

// A newcomer's state download, roughly (the churn schedule counts it before a joiner serves; SWARM's newcomers
// and moved servers take as long).
double transfer_estimate_s(const Scenario& s) { return 5 * s.detect_after_s; }

Churn draw_churn(const Scenario& s, const Instance& founders, InstanceGenerator& gen, Universe& u, Rng& rng,
                 double horizon) {
  Churn c;
  if (s.mttf_s <= 0) return c;
  struct Life {
    NodeId id;
    flow::Stage stage;
    double from, until;  // serving from (a joiner: after its state transfer, estimated) until its crash
  };
  std::vector<Life> lives;
  for (const auto& n : founders.nodes)
    if (n.stage != 0) lives.push_back({n.id, n.stage, 0, horizon});
  const double transfer = transfer_estimate_s(s);
  // Served for a while: a founder, or a joiner serving for join_after_s already. A joiner's state is of the
  // iteration it joined at; a replica that has only just started may not hold what a redo of an older iteration
  // needs (with every older replica of the stage gone, such a redo could never run, under any policy).
  auto settled = [&](const Life& l, double t) {
    return l.until > t && (l.from == 0 || l.from + s.join_after_s <= t);
  };
  // Candidate failures in time order; each crash brings a replacement, which may fail in turn.
  std::multimap<double, size_t> next;  // failure time -> index in lives
  for (size_t k = 0; k < lives.size(); ++k) next.emplace(lives[k].from + exponential(rng, s.mttf_s), k);
  while (!next.empty() && next.begin()->first < horizon) {
    const auto [t, k] = *next.begin();
    next.erase(next.begin());
    const flow::Stage stage = lives[k].stage;
    int others = 0;
    for (size_t j = 0; j < lives.size(); ++j)
      if (j != k && lives[j].stage == stage && settled(lives[j], t)) ++others;
    if (others == 0) {
      ++c.skipped;
      next.emplace(t + exponential(rng, s.mttf_s), k);  // it lives on; it may fail later
      continue;
    }
    lives[k].until = t;
    c.crashes.push_back({lives[k].id, t});
    auto [spec, links] = gen.joiner(u.all, stage);
    u.all.add_node(spec);
    for (const auto& [peer, cost] : links) u.all.link(spec.id, peer, cost);
    u.links[spec.id] = links;
    for (const auto& [peer, cost] : links) u.links[peer].push_back({spec.id, cost});
    c.joins.push_back({spec.id, stage, t + s.join_after_s});
    lives.push_back({spec.id, stage, t + s.join_after_s + transfer, horizon});
    next.emplace(t + s.join_after_s + exponential(rng, s.mttf_s), lives.size() - 1);
  }
  return c;
}

// Relays carry no more flows than their device keeps pace with (flow::capacity_from_compute), for every policy
// that routes by capacity (gwtf, oracle, static). The round trip: a microbatch's forward and backward over the
// mean path of the founding swarm's min-cost flow; each flow brings the microbatches the holders keep in flight
// over the flows the founders carry (at least one). A runtime would measure both; here they are constants of the
// world. (2x the cheapest path instead of the mean path capped relays that latency-bound runs needed: regions-12
// seed 1 101 -> 132 s.)
void cap_relays_by_compute(const Scenario& s, const Instance& founders, Instance& all) {
  const auto o = flow::solve_oracle(founders);
  if (o.flow_value == 0) return;
  const double round_trip = 2 * o.total_cost / o.flow_value;
  const double per_flow = static_cast<double>(s.holders) * s.in_flight / o.flow_value;
  for (auto& n : all.nodes)
    if (n.stage != 0) n.capacity = std::min(n.capacity, flow::capacity_from_compute(n.compute_s, round_trip, per_flow));
}

// Per stage (index 0: the holders' embedding and head): its parameters times `per_parameter` bytes.
std::vector<uint64_t> stage_bytes(const Scenario& s, const InstanceGenerator& gen, double per_parameter) {
  std::vector<uint64_t> out;
  for (int st = 0; st <= s.stages; ++st)
    out.push_back(static_cast<uint64_t>(per_parameter * gen.stage_parameters(static_cast<flow::Stage>(st))));
  return out;
}

}  // namespace

std::vector<std::string> builtin_scenarios() {
  return {"paper-geo",          "paper-geo-medium",  "paper-geo-none",     "paper-geo-busy", "paper-geo-pipeline",
          "paper-geo-2gbit",    "paper-geo-1gbit",   "paper-homogeneous", "paper-hetero-links", "regions-12",
          "scale"};
}

double ideal_iteration_s(const Scenario& s) {
  InstanceGenerator gen(instance_options(s, 1), 1);
  const double m = s.max_slowdown;
  const double mean_speed = m > 1 ? std::log(m) / (m - 1) : 1.0;  // E[1/x], x uniform in [1, m]
  const double per_stage = static_cast<double>(s.relays) / s.stages;
  // Compute bound: the slowest stage's replicas together.
  double slowest = 0, pipeline = 0;
  for (int st = 1; st <= s.stages; ++st) {
    const double c = gen.stage_compute_s(static_cast<flow::Stage>(st));
    slowest = std::max(slowest, c / (per_stage * mean_speed));
    pipeline += c / mean_speed;
  }
  // Latency bound: each holder keeps `in_flight` microbatches in the pipeline, and one takes a round trip of
  // 2(S+1) mean hops (latency and a tensor over the mean bandwidth between two random locations) plus its compute.
  const auto& t = gen.table();
  double lat = 0, inv_bw = 0;
  const size_t n = t.names.size();
  for (size_t a = 0; a < n; ++a)
    for (size_t b = 0; b < n; ++b) {
      lat += t.latency_s[a][b];
      inv_bw += 1 / t.bandwidth_Bps[a][b];
    }
  lat /= static_cast<double>(n * n);
  inv_bw /= static_cast<double>(n * n);
  inv_bw *= (1 + std::max(1.0, s.link_spread)) / 2;  // a link's factor is 1/(1 + (spread-1)u): E[1/factor]
  const double round_trip = 2.0 * (s.stages + 1) * (lat + gen.boundary_bytes() * inv_bw) + pipeline +
                            gen.stage_compute_s(0);
  const double in_flight = static_cast<double>(s.holders) * s.in_flight;
  // Then the stages reduce their gradients, at best as a butterfly all-reduce (each of a stage's replicas owns a
  // share: two transfers of it over the mean bandwidth; through an interface of limited rate, each replica sends
  // all but its own share twice through it).
  double largest = 0;
  for (int st = 1; st <= s.stages; ++st)
    largest = std::max(largest, s.gradient_bytes_per_parameter * gen.stage_parameters(static_cast<flow::Stage>(st)));
  double reduce = 2 * (lat + largest / per_stage * inv_bw);
  if (s.nic_gbit_s > 0)
    reduce = std::max(reduce, 2 * (lat + largest * (per_stage - 1) / per_stage / (s.nic_gbit_s * 1e9 / 8)));
  return std::max(slowest * s.microbatches, round_trip * s.microbatches / in_flight) + reduce;
}

Result<double, std::string> churn_mttf(const std::string& level, double ideal_iteration) {
  if (level == "none") return 0.0;
  if (level == "medium") return ideal_iteration / 0.01;  // a relay fails with probability ~1% per iteration
  if (level == "high") return ideal_iteration / 0.04;    // ~4% per iteration: 24 relays, ~1 crash per iteration
  return Err{"unknown churn level '" + level + "' (none, medium, high)"};
}

Result<Scenario, std::string> builtin_scenario(const std::string& name) {
  Scenario s;
  s.name = name;
  // The paper's setting: heterogeneous clients over 10 locations, a LLaMa-like 500M-class model.
  s.table = "cities";
  s.holders = 2;
  s.stages = 4;
  s.relays = 24;
  s.max_slowdown = 4;
  std::string churn = "high";
  if (name == "paper-geo") {
  } else if (name == "paper-geo-medium") {
    churn = "medium";
  } else if (name == "paper-geo-none") {
    churn = "none";
  } else if (name == "paper-geo-busy") {
    s.microbatches = 96;  // a busier pipeline: 96 microbatches in flight keep the relays computing
    s.in_flight = 48;
    s.iterations = 8;
  } else if (name == "paper-geo-pipeline") {
    // The pipeline alone: reduces and state downloads weigh nothing on the wire (what the paper's figures most
    // likely measure; ../shared/notes/paper.md has no aggregation model), for comparing with them.
    s.gradient_bytes_per_parameter = 0;
    s.state_bytes_per_parameter = 0;
  } else if (name == "paper-geo-2gbit") {
    // Every node's interface 2 Gbit/s, shared by its connections (kernels/sim/nic.hpp): fan-out pays.
    s.nic_gbit_s = 2;
  } else if (name == "paper-geo-1gbit") {
    // 1 Gbit/s: a 238 MB result takes seconds, longer than the retransmission timer (docs/simulator.md).
    s.nic_gbit_s = 1;
  } else if (name == "paper-homogeneous") {
    s.max_slowdown = 1;
  } else if (name == "paper-hetero-links") {
    s.link_spread = 10;
  } else if (name == "regions-12") {
    s.table = "regions";  // Mb/s-scale links: communication dominates
  } else if (name == "scale") {
    s.holders = 8;
    s.stages = 8;
    s.relays = 1000;
    s.microbatches = 256;
    s.in_flight = 32;
    s.iterations = 5;
  } else {
    std::string known;
    for (const auto& n : builtin_scenarios()) known += (known.empty() ? "" : ", ") + n;
    return Err{"unknown scenario '" + name + "' (built in: " + known + "; or a TOML file)"};
  }
  auto mttf = churn_mttf(churn, ideal_iteration_s(s));
  s.mttf_s = mttf.value();
  return s;
}

std::vector<std::string> policies() { return {"gwtf", "oracle", "round-robin", "greedy", "static", "swarm"}; }

Result<PolicyRun, std::string> run_scenario(const Scenario& s, const std::string& policy, uint64_t seed,
                                            const std::function<void(double, uint64_t)>& progress,
                                            std::ostream* trace) {
  const auto known = policies();
  if (std::find(known.begin(), known.end(), policy) == known.end()) {
    std::string list;
    for (const auto& p : known) list += (list.empty() ? "" : ", ") + p;
    return Err{"policy '" + policy + "' is not implemented (available: " + list + ")"};
  }
  if (s.holders < 1 || s.stages < 1 || s.relays < s.stages || s.iterations < 1 || s.microbatches < 1)
    return Err{std::string("scenario needs at least 1 holder, 1 stage, a relay per stage, 1 iteration and 1 microbatch")};
  if (s.table != "cities" && s.table != "regions") return Err{"unknown table '" + s.table + "' (cities or regions)"};
  const InstanceOptions io = instance_options(s, seed);
  InstanceGenerator gen(io, seed);
  Universe u;
  u.all = gen.make();
  for (const auto& n : u.all.nodes) {
    u.founders.insert(n.id);
    for (NodeId peer : u.all.neighbours(n.id)) u.links[n.id].push_back({peer, u.all.cost(n.id, peer)});
  }
  const Instance founders = u.all;
  Rng churn_rng(seed ^ 0xc4u);
  const double ideal = ideal_iteration_s(s);
  const double horizon = 20 * ideal * s.iterations + 60;
  const Churn churn = draw_churn(s, founders, gen, u, churn_rng, horizon);
  if (s.compute_capacity) cap_relays_by_compute(s, founders, u.all);

  // The world every policy runs in: message delays between places, and each node's compute slowdown.
  const RegionTable& table = gen.table();
  const Instance* all = &u.all;
  const auto delay = [all, &table, io](train::NodeId a, train::NodeId b, uint64_t bytes) {
    const auto* na = all->node(a);
    const auto* nb = all->node(b);
    if (!na || !nb) return 0.1;
    const double bw = table.bandwidth_Bps[na->region][nb->region] * link_factor(io, a, b);
    return table.latency_s[na->region][nb->region] + static_cast<double>(bytes) / bw;
  };
  const auto slowdown = [all, &gen](train::NodeId n) {
    const auto* spec = all->node(n);
    return spec ? spec->compute_s / gen.stage_compute_s(spec->stage) : 1.0;
  };

  PolicyRun run;
  run.policy = policy;
  run.crashes_skipped = churn.skipped;
  auto crashes_by = [&](double t) {
    return static_cast<uint64_t>(std::count_if(churn.crashes.begin(), churn.crashes.end(),
                                               [t](const Churn::Crash& c) { return c.t <= t; }));
  };
  if (policy == "swarm") {
    SwarmWorld w;
    w.holders = s.holders;
    for (const auto& n : founders.nodes)
      if (n.stage > 0) w.servers.push_back({n.id, n.stage});
    for (const auto& c : churn.crashes) w.crashes.push_back({c.node, c.t});
    for (const auto& j : churn.joins) w.joins.push_back({j.node, j.stage, j.t});
    w.stages = static_cast<train::Stage>(s.stages);
    w.microbatches = s.microbatches;
    w.in_flight = s.in_flight;
    w.iterations = s.iterations;
    w.forward_time = gen.stage_compute_s(1) / 3;
    w.holder_time = gen.stage_compute_s(0) / 3;
    w.detect_after = s.detect_after_s;
    w.transfer_s = transfer_estimate_s(s);
    w.rebalance_s = 10;
    w.tensor_bytes = static_cast<uint64_t>(gen.boundary_bytes());
    w.sum_bytes = stage_bytes(s, gen, 2 * s.gradient_bytes_per_parameter);  // gradients and parameters
    w.state_bytes = stage_bytes(s, gen, s.state_bytes_per_parameter);
    w.delay = delay;
    w.nic_Bps = s.nic_gbit_s * 1e9 / 8;
    w.spare_last_server = true;
    w.slowdown = slowdown;
    w.seed = seed;
    w.progress = progress;
    const SwarmReport r = run_swarm(w, horizon);
    run.report.finished = r.finished;
    run.report.time = r.time;
    run.report.wasted_fraction = r.wasted_fraction;
    run.report.crash_lost_fraction = r.crash_lost_fraction;
    run.report.crash_lost_in_reduce_fraction = r.crash_lost_in_reduce_fraction;
    run.report.idle_fraction = r.idle_fraction;
    run.report.mean_recovery_latency = r.mean_recovery_latency;
    run.report.messages = r.messages;
    run.report.crash_seconds_deferred = r.crash_seconds_deferred;
    for (size_t i = 0; i < r.committed_at.size(); ++i) run.report.iterations[i].committed_at = r.committed_at[i];
    run.crashes = crashes_by(r.time);
    run.joins = static_cast<uint64_t>(std::count_if(churn.joins.begin(), churn.joins.end(),
                                                    [&](const Churn::Join& j) { return j.t + w.transfer_s <= r.time; }));
    run.time_to_train_s = r.time;
    const double trained = static_cast<double>(s.microbatches) * static_cast<double>(r.committed_at.size());
    run.throughput_microbatches_per_s = r.time > 0 ? trained / r.time : 0;
    run.lost_microbatches = r.lost_contributions;
    run.duplicated_microbatches = r.duplicated_contributions;
    return run;
  }
  TrainSimConfig cfg;
  cfg.seed = seed;
  cfg.holders = s.holders;
  std::vector<int> per_stage(static_cast<size_t>(s.stages), 0);
  for (const auto& n : founders.nodes)
    if (n.stage > 0) ++per_stage[n.stage - 1];
  cfg.replicas = per_stage;
  cfg.params.microbatches = s.microbatches;
  cfg.params.iterations = static_cast<train::Iter>(s.iterations);
  cfg.params.max_in_flight = s.in_flight;
  cfg.params.buffer_budget = s.buffer_budget;
  cfg.params.retransmit_after = 5;  // over the slowest link's round trip with a tensor on it
  cfg.forward_time = gen.stage_compute_s(1) / 3;  // fwd + bwd = 3 forwards; per node: its slowdown
  cfg.holder_time = gen.stage_compute_s(0) / 3;
  cfg.detect_after = s.detect_after_s;
  cfg.tensor_bytes = static_cast<uint64_t>(gen.boundary_bytes());
  cfg.sum_bytes = stage_bytes(s, gen, s.gradient_bytes_per_parameter);
  cfg.state_wire_bytes = stage_bytes(s, gen, s.state_bytes_per_parameter);
  cfg.delay = delay;
  cfg.nic_Bps = s.nic_gbit_s * 1e9 / 8;
  cfg.slowdown = slowdown;
  cfg.progress = progress ? std::function<void(double, train::Iter)>(progress) : nullptr;

  std::unique_ptr<Router> router;
  const double sample_every = std::max(1.0, ideal / 2);
  if (policy == "oracle") {
    router = std::make_unique<OracleRouter>(u, run);
  } else if (policy == "greedy") {
    router = std::make_unique<GreedyRouter>(u, s.detect_after_s);
  } else if (policy == "static") {
    router = std::make_unique<StaticRouter>(u);
    cfg.params.strict_hops = true;
  } else if (policy == "gwtf") {
    FlowSimConfig fc;
    fc.params.period = 0.5;  // the runtime's flow period
    fc.detection_delay = s.detect_after_s / fc.params.period;
    fc.delay = [delay](NodeId a, NodeId b, size_t bytes) { return delay(a, b, bytes); };
    router = std::make_unique<FlowRouter>(u, fc, seed, run, sample_every);
  }
  cfg.router = router.get();

  cfg.trace = trace;
  cfg.spare_last_server = true;
  TrainSim sim(cfg);
  for (const auto& c : churn.crashes) sim.crash_at(c.node, c.t);
  for (const auto& j : churn.joins) {
    const NodeId id = sim.join_at(j.stage, j.t);
    if (id != j.node) return Err{std::string("internal: joiner ids of the world and the simulator differ")};
  }
  run.report = sim.run(horizon);
  run.crashes = crashes_by(run.report.time);
  run.joins = run.report.joins.size();
  // Trained: every iteration once all live nodes finished (the last commit may go unannounced as they stop),
  // else the committed ones, over the time the run took.
  run.time_to_train_s = run.report.time;
  const double trained =
      static_cast<double>(s.microbatches) *
      (run.report.finished ? static_cast<double>(s.iterations)
                           : static_cast<double>(std::count_if(run.report.iterations.begin(), run.report.iterations.end(),
                                                               [](const auto& it) { return it.second.committed_at >= 0; })));
  run.throughput_microbatches_per_s = run.time_to_train_s > 0 ? trained / run.time_to_train_s : 0;
  run.lost_microbatches = run.report.lost_contributions;
  run.duplicated_microbatches = run.report.duplicated_contributions;
  return run;
}

}  // namespace gwtf::sim
