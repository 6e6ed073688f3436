#include "kernels/sim/flow_experiment.hpp"

#include <cmath>
#include <map>
#include <set>

#include "kernels/flow/oracle.hpp"
#include "kernels/flow/stage_choice.hpp"
#include "kernels/sim/flow_sim.hpp"

namespace gwtf::sim {

using namespace gwtf::flow;

namespace {

// Runs `rounds` rounds, measuring after each; returns the outcome of the phase (without the oracle's figures).
FlowOutcome run_phase(FlowSim& sim, int rounds, std::string& violation) {
  FlowOutcome o;
  const uint64_t messages0 = sim.messages_sent();
  FlowStats last;
  for (int r = 1; r <= rounds; ++r) {
    if (!sim.run_rounds(1)) {
      violation = sim.violation();
      break;
    }
    const FlowStats now = sim.measure();
    if (r == 1 || now.flow_value != last.flow_value ||
        std::fabs(now.total_cost - last.total_cost) > 1e-9 * (1 + last.total_cost))
      o.rounds = r;
    last = now;
  }
  o.flow_value = last.flow_value;
  o.total_cost = last.total_cost;
  o.max_path_cost = last.max_path_cost;
  o.messages = sim.messages_sent() - messages0;
  const double node_rounds = static_cast<double>(sim.instance().nodes.size()) * rounds;
  o.messages_per_node_round = node_rounds > 0 ? static_cast<double>(o.messages) / node_rounds : 0;
  return o;
}

void add_oracle(const Instance& inst, FlowOutcome& o) {
  const OracleResult r = solve_oracle(inst);
  o.oracle_flow_value = r.flow_value;
  o.oracle_total_cost = r.total_cost;
  o.oracle_max_path_cost = r.max_path_cost;
  o.oracle_max_path_lower_bound = r.max_path_lower_bound;
}

}  // namespace

FlowExperimentResult run_flow_experiment(const FlowExperimentOptions& options) {
  Rng rng(options.seed);
  InstanceGenerator gen(options.instance, rng.next_u64());
  FlowSimConfig cfg;
  cfg.params = options.params;
  cfg.loss = options.loss;
  cfg.check_every_event = options.check_invariants;
  FlowSim sim(gen.make(), cfg, rng.next_u64());
  FlowExperimentResult result;
  result.nodes = static_cast<int>(sim.instance().nodes.size());
  result.before = run_phase(sim, options.rounds, result.violation);
  add_oracle(sim.instance(), result.before);

  if (result.violation.empty() && (options.kill_fraction > 0 || options.joins > 0)) {
    // Kill relays at random, never the last one of a stage.
    std::vector<const NodeSpec*> relays;
    std::map<Stage, int> alive;
    for (const auto& n : sim.instance().nodes)
      if (n.stage != 0) {
        relays.push_back(&n);
        ++alive[n.stage];
      }
    const auto kills = static_cast<size_t>(std::lround(options.kill_fraction * static_cast<double>(relays.size())));
    std::vector<NodeId> victims;
    for (size_t i = 0; i < relays.size() && victims.size() < kills; ++i) {
      std::swap(relays[i], relays[i + rng.below(relays.size() - i)]);
      if (alive[relays[i]->stage] > 1) {
        --alive[relays[i]->stage];
        victims.push_back(relays[i]->id);
      }
    }
    for (NodeId v : victims) sim.crash(v);
    result.killed = static_cast<int>(victims.size());
    // Joiners pick the stage that limits the flow, from the capacities and flows they can see.
    for (int j = 0; j < options.joins; ++j) {
      std::vector<StageLoad> loads(sim.instance().relay_stages);
      for (Stage s = 1; s <= sim.instance().relay_stages; ++s) loads[s - 1].stage = s;
      for (const auto& n : sim.instance().nodes)
        if (n.stage != 0) loads[n.stage - 1].capacity += n.capacity;
      const uint32_t flows = sim.measure().flow_value;  // every flow crosses every stage once
      for (auto& l : loads) l.flows = flows;
      auto [spec, links] = gen.joiner(sim.instance(), choose_stage(loads));
      sim.join(spec, links);
      ++result.joined;
    }
    result.after_churn = run_phase(sim, options.churn_rounds, result.violation);
    add_oracle(sim.instance(), *result.after_churn);
  }
  if (result.violation.empty() && options.quiesce) {
    if (!sim.quiesce(static_cast<int>(options.params.idle_timeout) + 10)) result.violation = sim.violation();
    else result.violation = sim.check_invariants(true);
  }
  result.trace_hash = sim.trace_hash();
  return result;
}

}  // namespace gwtf::sim
