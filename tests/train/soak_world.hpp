// The randomized soak's world from a seed (tests/train/train_soak_test.cpp): 1-3 holders, 1-4 relay stages of 1-4
// replicas, 2-12 microbatches, 2-6 iterations, message loss on 30% of runs, recovery-buffer budgets on 30%, and a
// churn — crashes (never a whole stage), slow nodes presumed dead, graceful leaves, newcomers — placed at random
// times. Shared with the LibTorch suite, which
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
  auto churn = [rng, extra, leaves, stages, horizon](TrainSim& sim) mutable {
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
  };
  return {cfg, churn};
}

}  // namespace gwtf::sim::testing
