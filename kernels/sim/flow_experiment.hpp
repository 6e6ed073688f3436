// One flow-routing experiment: generate an instance, run the decentralized protocol on it in the simulator,
// solve the same instance centrally, and compare — optionally again after killing relays and adding joiners.
// Shared by `gwtf-sim flow`, the flow tests and bench/flow.
#pragma once

#include <functional>

#include <cstdint>
#include <optional>
#include <string>

#include "kernels/flow/flow_node.hpp"
#include "kernels/sim/instances.hpp"

namespace gwtf::sim {

struct FlowExperimentOptions {
  InstanceOptions instance;
  uint64_t seed = 1;
  int rounds = 250;             // protocol rounds before measuring
  double kill_fraction = 0;     // of relays, after `rounds`; never a whole stage
  int joins = 0;                // relays added after the kills, each to the stage that limits the flow
  int churn_rounds = 200;       // rounds after churn before measuring again
  int settle_rounds = 30;       // then: no new moves, moves in flight and anti-entropy settle, and we measure
  double loss = 0;              // message loss probability
  bool check_invariants = false;  // after every event (slow; property tests)
  bool quiesce = false;         // settle, drain and check that no reservation dangles at the end
  flow::FlowParams params;
  // Called after every round (phase "routing" or "after churn"): a progress line for long runs. Optional.
  std::function<void(const char* phase, int round, int rounds, uint32_t flow_value)> progress;
};

struct FlowOutcome {
  uint32_t flow_value = 0, oracle_flow_value = 0;
  double total_cost = 0, oracle_total_cost = 0;
  double max_path_cost = 0, oracle_max_path_cost = 0, oracle_max_path_lower_bound = 0;
  int rounds = 0;               // the last round at which (flow value, total cost) changed
  int rounds_to_flow = 0;       // the first round that reached the final flow value (the prototype's measure)
  int rounds_to_1pct = 0;       // the first round with the final flow value and a cost within 1% of the final
  uint64_t messages = 0;        // sent in the phase
  double messages_per_node_round = 0;
  double step_seconds = 0;      // wall time inside the nodes' step() in the phase (FlowSim::step_seconds)
  uint32_t sink_excess = 0;     // flows beyond a holder's sink capacity when measured (FlowStats::sink_excess)
};

struct FlowExperimentResult {
  int nodes = 0;
  FlowOutcome before;
  std::optional<FlowOutcome> after_churn;
  int killed = 0, joined = 0;
  uint64_t trace_hash = 0;
  std::string violation;  // first broken invariant, empty when none
};

FlowExperimentResult run_flow_experiment(const FlowExperimentOptions& options);

}  // namespace gwtf::sim
