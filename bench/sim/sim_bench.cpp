// bench/sim: how fast gwtf-sim run simulates, and how that grows with the swarm. For each size (relays; 8 stages,
// microbatches and data holders growing with it, high churn) and each policy: simulated seconds per wall-clock
// second, and wall seconds per trained microbatch, all measured in this run (the machines are shared and noisy:
// compare the ratios between sizes, not the absolute figures across runs).
//
// Usage: sim_bench [--sizes 100,1000] [--policies round-robin,oracle,gwtf] [--iterations 2] [--seed 1]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/base/split.hpp"
#include "kernels/sim/scenario.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> sizes{"100", "1000"}, policies{"round-robin", "oracle", "gwtf"};
  int iterations = 2;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "sim_bench: %s needs a value\n", flag.c_str());
      return 2;
    }
    const std::string value = argv[++i];
    if (flag == "--sizes") sizes = gwtf::split_list(value);
    else if (flag == "--policies") policies = gwtf::split_list(value);
    else if (flag == "--iterations") iterations = std::stoi(value);
    else if (flag == "--seed") seed = std::stoull(value);
    else {
      std::fprintf(stderr, "sim_bench: unknown flag %s (--sizes, --policies, --iterations, --seed)\n", flag.c_str());
      return 2;
    }
  }
  std::printf("%8s %-12s %12s %10s %14s %16s %8s\n", "relays", "policy", "simulated s", "wall s", "sim s / wall s",
              "wall ms / mb", "crashes");
  for (const auto& size : sizes) {
    gwtf::sim::Scenario s = gwtf::sim::builtin_scenario("paper-geo").value();
    s.name = "bench";
    s.relays = std::stoi(size);
    s.stages = 8;
    s.holders = std::max(2, s.relays / 100);
    s.microbatches = static_cast<uint32_t>(std::max(32, s.relays / 4));
    s.in_flight = s.microbatches / static_cast<uint32_t>(s.holders);
    s.iterations = iterations;
    s.mttf_s = gwtf::sim::churn_mttf("high", gwtf::sim::ideal_iteration_s(s)).value();
    for (const auto& policy : policies) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = gwtf::sim::run_scenario(s, policy, seed);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!r) {
        std::fprintf(stderr, "sim_bench: %s\n", r.error().c_str());
        return 2;
      }
      const auto& run = r.value();
      const double trained = run.throughput_microbatches_per_s * run.time_to_train_s;
      std::printf("%8d %-12s %12.1f %10.2f %14.2f %16.2f %8llu%s\n", s.relays, policy.c_str(), run.report.time, wall,
                  wall > 0 ? run.report.time / wall : 0, trained > 0 ? 1000 * wall / trained : 0,
                  static_cast<unsigned long long>(run.crashes), run.report.finished ? "" : "  (did not finish)");
      std::fflush(stdout);
    }
  }
  return 0;
}
