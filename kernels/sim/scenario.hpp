// gwtf-sim run's experiments (issue 7, DESIGN §7-8): a scenario — the world (regions, heterogeneous compute and
// links, a model preset's boundary size and compute), the swarm (data holders, relays over the stages), the run
// (microbatches, iterations) and the churn (a mean time to failure per relay; a replacement joins the dead
// relay's stage after a delay) — run on the training protocol's state machines (TrainSim) under a routing policy.
// Everything comes from one seed: the world and the churn schedule are the same for every policy of a run.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "kernels/base/result.hpp"
#include "kernels/sim/train_sim.hpp"

namespace gwtf::sim {

struct Scenario {
  std::string name = "custom";
  std::string table = "cities";  // cities (data/cities-dtfm.csv, 10 cities) | regions (data/regions.csv, 12)
  int holders = 2;
  int stages = 4;                // relay stages
  int relays = 24;               // founding relays, spread over the stages
  double max_slowdown = 4;       // compute speeds spread over 1x .. this (1: homogeneous)
  double link_spread = 1;        // link bandwidths: the regions' times a factor in [1/spread, 1]
  // Each node's network interface, Gbit/s, shared by its connections (kernels/sim/nic.hpp). 0: no limit, every
  // link at its own bandwidth however many a node uses at once (DT-FM's and GWTF's model).
  double nic_gbit_s = 0;
  std::string preset = "500m";   // model preset: boundary tensor size and compute per stage
  int microbatch_size = 4;
  double device_flops = 100e12;  // effective FLOP/s of the fastest device
  uint32_t microbatches = 32;    // per iteration
  uint32_t in_flight = 8;        // per data holder
  uint32_t buffer_budget = 0;    // relays: microbatches whose recovery buffers a node holds at most (0: no limit)
  bool compute_capacity = true;  // relays carry at most the flows their device keeps pace with, not only memory's
  int iterations = 20;
  double mttf_s = 0;             // mean time to failure of a relay (exponential); 0: no churn
  double join_after_s = 20;      // a replacement joins the dead relay's stage this long after a crash
  double detect_after_s = 2;     // crash -> survivors told (the runtime's heartbeat timeout)
  // What the rest of the wire weighs, per model parameter of a stage: its summed gradient in a reduce (bf16), and
  // its state as a newcomer downloads it (fp32 weights and Adam's two moments). 0: it weighs nothing.
  double gradient_bytes_per_parameter = 2;
  double state_bytes_per_parameter = 12;
};

// The built-in scenarios (docs/simulator.md): paper-geo (with churn none|medium|high), paper-geo-busy (more
// microbatches in flight), paper-homogeneous, paper-hetero-links, regions-12, scale.
std::vector<std::string> builtin_scenarios();
Result<Scenario, std::string> builtin_scenario(const std::string& name);
// Churn levels as a relay's mean time to failure, from its chance to fail within one ideal iteration: none,
// medium (1%), high (4%).
Result<double, std::string> churn_mttf(const std::string& level, double ideal_iteration);

// The policies on the same world, compute model and churn: gwtf (the flow protocol's state machines in lockstep
// with the training protocol), oracle (the centralized optimum recomputed the moment anything changes),
// round-robin (no routing: every live replica of the next stage in turn), greedy (each node to its cheapest live
// next-stage replica, no capacity), static (the oracle's schedule once; a dead hop stalls its work until its
// replacement) — all on the training protocol's state machines — and swarm (SWARM's trainer-driven pipeline,
// kernels/sim/swarm_sim).
std::vector<std::string> policies();

struct PolicyRun {
  std::string policy;
  TrainSimReport report;
  double time_to_train_s = 0;                // the last iteration committed
  double throughput_microbatches_per_s = 0;  // microbatches trained / time to train
  uint64_t crashes = 0, joins = 0;  // relays crashed during the run; newcomers that got their state and served
  // Drawn crashes left out: they would have left a stage with nobody serving. (The draw estimates when a newcomer
  // serves; with slow downloads it can be early, and in the run a crash also waits for another replica to hold
  // the stage's latest step: report.crash_seconds_deferred.)
  uint64_t crashes_skipped = 0;
  uint64_t lost_microbatches = 0, duplicated_microbatches = 0;  // from the simulator's own ledger checks
  // Routing quality over time (policies that route): at each sample, the flow value and max path cost the
  // policy's next hops give, beside the oracle's on the same live swarm.
  struct Sample {
    double t = 0;
    uint32_t flow_value = 0, oracle_flow_value = 0;
    double max_path_cost = 0, oracle_max_path_cost = 0;
    double total_cost = 0, oracle_total_cost = 0;
  };
  std::vector<Sample> routing;
};

// The ideal iteration time of a scenario (no churn, perfect balance): for the churn levels and the horizon.
double ideal_iteration_s(const Scenario& s);

// Runs `policy` on the scenario's world and churn drawn from `seed`. `progress` (optional) is called at every
// protocol tick with the simulated time and the iterations done; `trace` (optional) gets every message, task,
// crash and event of the training protocol's nodes, one per line (how a stall is read; not for swarm).
Result<PolicyRun, std::string> run_scenario(const Scenario& scenario, const std::string& policy, uint64_t seed,
                                            const std::function<void(double, uint64_t)>& progress = {},
                                            std::ostream* trace = nullptr);

}  // namespace gwtf::sim
