// `gwtf-sim run`: a scenario (built in, or a TOML file) under several routing policies, from one seed; writes
// summary.json, CSV files, plots and summary.md into a run directory.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace gwtf::app {

struct RunCommand {
  std::string scenario = "paper-geo";
  std::string policies = "gwtf,oracle,round-robin,greedy,static,swarm";
  std::string churn;  // none | medium | high: overrides the scenario's
  double nic_gbit_s = -1;  // >= 0: overrides the scenario's interface rate (0: no limit)
  uint64_t seed = 1;
  std::string out;    // default: runs/sim-<scenario>-<seed>
  int iterations = 0; // 0: the scenario's
  std::string trace;  // a file for the protocol trace (one policy only)

  void add_flags(CLI::App& run);
  int execute() const;  // the exit status
};

// The scenario's NIC limit as words for the summaries ("" when it has none): before + "2 Gbit/s" + after.
std::string nic_text(double nic_gbit_s, const std::string& before, const std::string& after);

}  // namespace gwtf::app
