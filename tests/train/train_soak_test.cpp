// Randomized soak of the training protocol: from a seed, random crashes of relays and holders (at least one node
// per stage survives), slow nodes presumed dead, message loss, newcomers joining relay stages. Every run must commit every iteration with a
// clean ledger. A failure prints the seed; GWTF_SOAK_SEED=S replays exactly that run, GWTF_SOAK_RUNS=N sets how
// many seeds (the short CI form runs 300; `scripts/soak` runs 15,000 from a random first seed).
#include "kernels/sim/train_sim.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace gwtf::sim {
namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

TrainSimReport soak_run(uint64_t seed) {
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
  TrainSim sim(cfg);
  // Failures: up to (replicas - 1) per stage, at random times within the first part of the run.
  const double horizon = static_cast<double>(cfg.params.iterations) * cfg.params.microbatches * 0.15 * stages;
  for (train::Stage s = 0; s <= stages; ++s) {
    auto nodes = sim.stage_nodes(s);
    const int victims = static_cast<int>(rng.below(nodes.size()));  // never all of a stage
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
  for (train::Stage s = 1; s <= stages; ++s)
    if (rng.chance(0.3)) sim.join_at(s, horizon * rng.uniform());
  return sim.run(10000);
}

// Seeds first .. first+runs-1. CI: seeds 1..300. scripts/soak: GWTF_SOAK_SCALE x 300 seeds from a random first
// seed (printed). GWTF_SOAK_SEED=S replays exactly one run.
TEST(TrainSoak, RandomChurnNeverLosesOrDoublesAMicrobatch) {
  uint64_t first = env_or("GWTF_SOAK_FIRST", 1);
  if (const char* f = std::getenv("GWTF_SOAK_FIRST"); f && std::string(f) == "random")
    first = std::random_device{}() % 1000000 + 1;
  if (std::getenv("GWTF_SOAK_SEED")) first = env_or("GWTF_SOAK_SEED", 1);
  const uint64_t runs =
      std::getenv("GWTF_SOAK_SEED") ? 1 : env_or("GWTF_SOAK_RUNS", 300) * env_or("GWTF_SOAK_SCALE", 1);
  std::printf("train soak: seeds %llu..%llu\n", static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(first + runs - 1));
  uint64_t failures = 0;
  for (uint64_t seed = first; seed < first + runs && failures < 5; ++seed) {
    const auto r = soak_run(seed);
    if (r.finished && r.violations.empty()) continue;
    ++failures;
    ADD_FAILURE() << "seed " << seed << " (replay: GWTF_SOAK_SEED=" << seed << "): "
                  << (r.finished ? "" : "did not finish by t=" + std::to_string(r.time) + "; ")
                  << (r.events.count("double-contribution") ? "a stage saw a double contribution; " : "")
                  << (r.violations.empty() ? "" : r.violations.front());
  }
}

}  // namespace
}  // namespace gwtf::sim
