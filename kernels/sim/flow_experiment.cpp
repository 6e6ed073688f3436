#include "kernels/sim/flow_experiment.hpp"

#include <cmath>
#include <vector>
#include <map>
#include <set>

#include "kernels/flow/oracle.hpp"
#include "kernels/flow/stage_choice.hpp"
#include "kernels/sim/flow_sim.hpp"

namespace gwtf::sim {

using namespace gwtf::flow;

namespace {

// Runs `rounds` rounds, recording (flow value, total cost) after each; then freezes the annealing, lets the
// moves in flight finish and anti-entropy settle (losses go on), and measures the routing the nodes hold.
// A measurement in the middle of a move would count a flow handed over but not yet installed as missing.
FlowOutcome run_phase(FlowSim& sim, int rounds, int settle_rounds, std::string& violation,
                      const FlowExperimentOptions& options, const char* phase) {
  FlowOutcome o;
  const uint64_t messages0 = sim.messages_sent();
  const double step0 = sim.step_seconds();
  std::vector<std::pair<uint32_t, double>> trace;
  for (int r = 1; r <= rounds && violation.empty(); ++r) {
    if (!sim.run_rounds(1)) violation = sim.violation();
    const FlowStats now = sim.measure();
    trace.push_back({now.flow_value, now.total_cost});
    if (options.progress) options.progress(phase, r, rounds, now.flow_value);
  }
  sim.set_frozen(true);
  if (violation.empty() && !sim.run_rounds(settle_rounds)) violation = sim.violation();
  sim.set_frozen(false);
  const FlowStats last = sim.measure();
  o.flow_value = last.flow_value;
  o.total_cost = last.total_cost;
  o.max_path_cost = last.max_path_cost;
  o.sink_excess = last.sink_excess;
  // Convergence, from the trace: the first round that reached the final flow value (the prototype's measure),
  // the first with it and a cost within 1% of the final one, and the last round at which anything changed.
  for (size_t r = 0; r < trace.size(); ++r) {
    const auto& [f, c] = trace[r];
    const int round = static_cast<int>(r) + 1;
    if (!o.rounds_to_flow && f >= last.flow_value) o.rounds_to_flow = round;
    if (!o.rounds_to_1pct && f >= last.flow_value && c <= 1.01 * last.total_cost) o.rounds_to_1pct = round;
    if (r == 0 || f != trace[r - 1].first || std::fabs(c - trace[r - 1].second) > 1e-9 * (1 + c)) o.rounds = round;
  }
  o.messages = sim.messages_sent() - messages0;
  o.step_seconds = sim.step_seconds() - step0;
  const double node_rounds = static_cast<double>(sim.instance().nodes.size()) * (rounds + settle_rounds);
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
  result.before = run_phase(sim, options.rounds, options.settle_rounds, result.violation, options, "routing");
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
    result.after_churn =
        run_phase(sim, options.churn_rounds, options.settle_rounds, result.violation, options, "after churn");
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
