// The SWARM baseline (Ryabinin et al., ICML 2023; ../shared/notes/anchors.md §1) on the same world, compute
// model and churn as gwtf-sim run's other policies. Each mechanism follows SWARM's paper or public code:
//  * hub-and-spoke: the trainer (our data holder) calls one server per stage and gets each output back; servers
//    never talk to each other (code: swarm/train_pipeline.py, TrainerModel.forward calls head, body, tail);
//  * stochastic wiring: per trainer and stage a min-heap keyed by cumulative expected runtime, a pick adding
//    task_size / EMA throughput of that server; backward tasks weigh 2.5x (code: moe/client/balancer.py,
//    ExpertBalancer, backward_task_size_multiplier); a newcomer enters at the current minimum;
//  * stateless backward: a backward call carries the stage's input and output gradient and re-runs the forward
//    inside (code: expert_backend.py::backward), so it may go to any replica;
//  * failures: a failed call bans the server and retries the same task on another replica of the stage
//    (balanced_expert.py, balancer.py::_ban_expert); a backward that fails replays the whole microbatch from the
//    first stage (DESIGN §7; the GWTF paper's reading of SWARM); gradients a server accumulated die with it;
//  * averaging: trainers stream samples; a stage steps once its live servers together accumulated the target
//    batch (an iteration's microbatches), averaging gradients and parameters with a butterfly all-reduce that
//    blocks the servers' runtime (optim/collaborative.py, CollaborativeOptimizer.step, target_batch_size;
//    averaging/allreduce.py); an iteration is done once every stage stepped; a newcomer downloads the stage's
//    state from one peer (load_state_from_peers);
//  * rebalancing, SWARM's Algorithm 1 (not in its public code, written here): every `rebalance_s`, a server of
//    the stage with the most throughput moves to the stage with the least when that raises the minimum, after
//    downloading the stage's state.
// SWARM gets its best parameters: failures are noticed after the same detection delay as the other policies (not
// its fixed 30 s / 75 s timeouts), newcomers are visible as soon as they serve (no 30 s DHT refresh).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/sim/train_sim.hpp"

namespace gwtf::sim {

struct SwarmWorld {
  int holders = 2;
  std::vector<std::pair<train::NodeId, train::Stage>> servers;  // founding relays (ids after the holders)
  struct Crash {
    train::NodeId node;
    double t;
  };
  struct Join {
    train::NodeId node;
    train::Stage stage;
    double t;
  };
  std::vector<Crash> crashes;
  std::vector<Join> joins;
  train::Stage stages = 1;
  uint32_t microbatches = 8, in_flight = 4;
  int iterations = 1;
  double forward_time = 0.1, holder_time = 0.02;  // nominal; a node's are times its slowdown
  double aggregate_time = 0.01;
  double detect_after = 2;   // a failed call is noticed after this
  double transfer_s = 10;    // a newcomer or a moved server downloads the stage's state (state_bytes empty)
  double rebalance_s = 30;   // Algorithm 1's period
  uint64_t tensor_bytes = 0;
  // Per stage (index 0: the trainers'): its gradient in an all-reduce and its state as a newcomer downloads it, in
  // bytes. Empty: an all-reduce weighs one tensor, a download takes transfer_s.
  std::vector<uint64_t> sum_bytes, state_bytes;
  std::function<double(train::NodeId, train::NodeId, uint64_t)> delay;
  double nic_Bps = 0;  // each node's interface rate, shared by its connections (0: no limit; nic.hpp)
  bool spare_last_server = false;  // as TrainSimConfig's: the one serving server of a stage dies once another serves
  std::function<double(train::NodeId)> slowdown;
  uint64_t seed = 1;
  std::function<void(double, uint64_t)> progress;
};

struct SwarmReport {
  bool finished = false;
  double time = 0;
  double wasted_fraction = 0, idle_fraction = 0, mean_recovery_latency = 0;
  double crash_lost_fraction = 0;  // of all work: contributions that died in a server's accumulator, and its tasks
  double crash_lost_in_reduce_fraction = 0;  // of it: accumulators that died while their stage averaged
  // Contributions computed and lost with their server before its stage averaged them: that sample's gradient
  // reached the other stages' steps, not this one's (SWARM fills the batch with other samples).
  uint64_t lost_contributions = 0;
  uint64_t crash_seconds_deferred = 0;  // seconds scheduled crashes waited (spare_last_server)
  // A sample applied more than once at a stage (a failed backward replays the whole microbatch).
  uint64_t duplicated_contributions = 0;
  uint64_t replays = 0, retries = 0, moves = 0, messages = 0;
  std::vector<double> committed_at;       // per iteration
};

SwarmReport run_swarm(const SwarmWorld& world, double time_limit);

}  // namespace gwtf::sim
