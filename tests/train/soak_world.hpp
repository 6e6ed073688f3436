// The randomized soak's world from a seed (tests/train/train_soak_test.cpp): 1-3 holders, 1-4 relay stages of 1-4
// replicas, 2-12 microbatches, 2-6 iterations, message loss on 30% of runs, recovery-buffer budgets on 30%, and a
// churn — crashes (never a whole stage), slow nodes presumed dead, graceful leaves, newcomers — placed at random
// times, and compute faults (work failing twice, outputs the next stage refuses). Shared with the LibTorch suite, which
// replays a seed's world with real compute.
#pragma once

#include <functional>

#include "kernels/base/rng.hpp"
#include "kernels/sim/train_sim.hpp"

namespace gwtf::sim::testing {

struct SoakWorld {
  TrainSimConfig config;
  std::function<void(TrainSim&)> churn;  // places the crashes, slowdowns and joins on a sim of `config`
};

// `leaves`: also graceful leaves (a relay that is neither crashed nor its stage's last, with probability 0.2 per
// stage) and buffer budgets — what the soak gained after the seeds below were found.
inline SoakWorld soak_world(uint64_t seed, bool leaves = true) {
  Rng rng(seed);
  TrainSimConfig cfg;
  cfg.seed = seed;
  cfg.holders = static_cast<int>(rng.between(1, 3));
  const int stages = static_cast<int>(rng.between(1, 4));
  for (int s = 0; s < stages; ++s) cfg.replicas.push_back(static_cast<int>(rng.between(1, 4)));
  cfg.params.microbatches = static_cast<uint32_t>(rng.between(2, 12));
  cfg.params.iterations = static_cast<train::Iter>(rng.between(2, 6));
  cfg.params.max_in_flight = static_cast<uint32_t>(rng.between(1, 6));
  cfg.loss_rate = rng.chance(0.3) ? 0.05 : 0.0;
  cfg.forward_time = 0.05 + 0.1 * rng.uniform();
  // A second stream (so the rest of a seed's world is the same either way): graceful leaves and, on 30% of runs,
  // a recovery-buffer budget of 1 to all the microbatches of an iteration (tight ones force overflows).
  Rng extra(seed ^ 0x6c65617665ull);
  if (leaves && extra.chance(0.3))
    cfg.params.buffer_budget = static_cast<uint32_t>(extra.between(1, cfg.params.microbatches));
  // Failures: up to (replicas - 1) per stage, at random times within the first part of the run.
  const double horizon = static_cast<double>(cfg.params.iterations) * cfg.params.microbatches * 0.15 * stages;
  const uint64_t iterations = cfg.params.iterations, microbatches = cfg.params.microbatches;
  auto churn = [rng, extra, leaves, stages, horizon, seed, iterations, microbatches](TrainSim& sim) mutable {
    for (train::Stage s = 0; s <= static_cast<train::Stage>(stages); ++s) {
      auto nodes = sim.stage_nodes(s);
      const int victims = static_cast<int>(rng.below(nodes.size()));  // never all of a stage
      if (leaves && s != 0 && victims + 2 <= static_cast<int>(nodes.size()) && extra.chance(0.2))
        sim.leave_at(nodes[static_cast<size_t>(victims)], horizon * extra.uniform());
      for (int v = 0; v < victims; ++v) {
        const auto n = nodes[static_cast<size_t>(v)];
        const double t = horizon * rng.uniform();
        if (rng.chance(0.2) && s != 0) {
          sim.slow_down(n, 10);
          sim.presume_dead_at(n, t);
        } else {
          sim.crash_at(n, t);
        }
      }
    }
    // Joins: now and then a newcomer for a relay stage, at a random time (it may arrive while its donors die).
    for (train::Stage s = 1; s <= static_cast<train::Stage>(stages); ++s)
      if (rng.chance(0.3)) sim.join_at(s, horizon * rng.uniform());
    // Compute faults (a third stream), on 30% of runs: a relay's forward or backward failing twice (it gives the
    // microbatch back), or its output refused by every replica of the next stage (it gives it back in turn).
    Rng faults(seed ^ 0x6661756c7473ull);
    if (!leaves || !faults.chance(0.3)) return;
    for (int k = static_cast<int>(faults.between(1, 3)); k > 0; --k) {
      const auto s = static_cast<train::Stage>(faults.between(1, static_cast<uint64_t>(stages)));
      const auto nodes = sim.stage_nodes(s);
      const auto n = nodes[faults.below(nodes.size())];
      const auto iter = static_cast<train::Iter>(faults.below(iterations));
      const auto mb = static_cast<int64_t>(faults.below(microbatches));
      switch (faults.below(3)) {
        case 0: sim.poison(n, train::ComputeKind::kForward, iter, 2, mb); break;
        case 1: sim.poison(n, train::ComputeKind::kBackward, iter, 2, mb); break;
        default: sim.corrupt_output(n, train::ComputeKind::kForward, iter, 1, mb); break;
      }
    }
  };
  return {cfg, churn};
}

}  // namespace gwtf::sim::testing
