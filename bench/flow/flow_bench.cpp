// bench/flow: how the decentralized flow protocol's cost grows with the swarm. For each size N (fixed neighbour
// degree per adjacent stage, so a node's view does not grow with N): rounds to converge, messages per node per
// round, CPU time per node-round of the simulated protocol, and quality against the centralized optimum, all
// measured in this run.
//
// Usage: flow_bench [--sizes 50,200,1000,5000] [--degree 16] [--rounds 250] [--seed 1] [--geo] [--holders H]
// (data holders: N/50, at least 2, unless --holders fixes them)
#include <chrono>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/sim/flow_experiment.hpp"

int main(int argc, char** argv) {
  std::vector<int> sizes = {50, 200, 1000, 5000};
  int degree = 16, rounds = 250, holders = 0;
  uint64_t seed = 1;
  bool geo = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "flow_bench: %s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--sizes") {
      sizes.clear();
      std::stringstream s(value());
      for (std::string n; std::getline(s, n, ',');) sizes.push_back(std::stoi(n));
    } else if (flag == "--degree") degree = std::stoi(value());
    else if (flag == "--rounds") rounds = std::stoi(value());
    else if (flag == "--seed") seed = std::stoull(value());
    else if (flag == "--geo") geo = true;
    else if (flag == "--holders") holders = std::stoi(value());
    else {
      std::fprintf(stderr, "usage: flow_bench [--sizes N,N,...] [--degree D] [--rounds R] [--seed S] [--geo] "
                           "[--holders H]\n");
      return 2;
    }
  }
  std::printf("bench/flow: %s instances, 8 relay stages, degree %d per adjacent stage, %d rounds, seed %llu\n\n",
              geo ? "geo" : "layered", degree, rounds, static_cast<unsigned long long>(seed));
  std::printf("| nodes | holders | rounds to final flow | rounds to 1%% of final cost | msgs/node/round | "
              "CPU us/node-round | in steps us/node-round | flow / oracle | total cost / oracle | max path / oracle | "
              "wall s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int n : sizes) {
    gwtf::sim::FlowExperimentOptions x;
    x.seed = seed;
    x.rounds = rounds;
    x.instance.nodes = n;
    x.instance.stages = 8;
    x.instance.holders = holders > 0 ? holders : std::max(2, n / 50);
    x.instance.degree = degree;
    x.instance.geo = geo;
    const auto wall0 = std::chrono::steady_clock::now();
    const std::clock_t cpu0 = std::clock();
    const auto r = gwtf::sim::run_flow_experiment(x);
    const double cpu = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    const auto& o = r.before;
    // CPU of the whole run includes generating the instance, the simulator's engine, measuring the routing
    // every round and solving the oracle; "in steps" is the wall time inside the nodes' state machines only
    // (FlowSim::step_seconds), the part a node of a real swarm spends. Both over rounds x nodes.
    const double node_rounds = static_cast<double>(r.nodes) * rounds;
    std::printf("| %d | %d | %d | %d | %.1f | %.1f | %.1f | %.3f | %.3f | %.3f | %.1f |\n", r.nodes,
                x.instance.holders, o.rounds_to_flow, o.rounds_to_1pct, o.messages_per_node_round,
                1e6 * cpu / node_rounds, 1e6 * o.step_seconds / node_rounds, double(o.flow_value) / o.oracle_flow_value,
                o.total_cost / o.oracle_total_cost, o.max_path_cost / o.oracle_max_path_cost, wall);
    std::fflush(stdout);
  }
  return 0;
}
