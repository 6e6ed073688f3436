// `gwtf-sim results DIR...`: the table of docs/results.md from the summary.json of gwtf-sim run directories —
// per scenario and policy the mean and the spread over seeds, ratios against the other policies, and the paper's
// claims and our goals beside them, each marked met or not. scripts/results runs the scenarios and calls it.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace gwtf::app {

struct ResultsCommand {
  std::vector<std::string> dirs;
  std::string out;  // default: stdout

  void add_flags(CLI::App& results);
  int execute() const;
};

}  // namespace gwtf::app
