// Helpers of the swarm-level flow tests: how instances are drawn, how a failure names its replay command, and
// the quality distributions against the oracle with the bounds.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/sim/flow_experiment.hpp"

namespace gwtf::sim::testing {


inline FlowExperimentOptions instance(uint64_t seed, bool geo) {
  Rng r(seed * 0x9E3779B97F4A7C15ull + (geo ? 1 : 0));
  FlowExperimentOptions x;
  x.seed = seed;
  x.instance.geo = geo;
  x.instance.stages = static_cast<int>(r.between(4, 8));
  x.instance.holders = static_cast<int>(r.between(1, 3));
  x.instance.nodes = std::max(static_cast<int>(r.between(20, 60)), x.instance.holders + 2 * x.instance.stages);
  return x;
}

inline std::string replay(const FlowExperimentOptions& x) {
  std::ostringstream s;
  s << "replay: gwtf-sim flow --seed " << x.seed << " --nodes " << x.instance.nodes << " --stages "
    << x.instance.stages << " --holders " << x.instance.holders << (x.instance.geo ? " --geo" : "");
  if (x.loss > 0) s << " --loss " << x.loss;
  if (x.kill_fraction > 0) s << " --kill-fraction " << x.kill_fraction << " --join " << x.joins;
  return s.str();
}

inline double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct Quality {
  std::vector<double> flow, total, max_path, rounds, rounds_to_flow, rounds_to_1pct;
  size_t over_sink = 0;  // instances measured with a holder sinking beyond its capacity (FlowStats::sink_excess)
  std::vector<std::string> replays;
  void add(const FlowOutcome& o, const std::string& how) {
    flow.push_back(o.oracle_flow_value ? double(o.flow_value) / o.oracle_flow_value : 1.0);
    total.push_back(o.oracle_total_cost > 0 ? o.total_cost / o.oracle_total_cost : 1.0);
    max_path.push_back(o.oracle_max_path_cost > 0 ? o.max_path_cost / o.oracle_max_path_cost : 1.0);
    rounds.push_back(o.rounds);
    rounds_to_flow.push_back(o.rounds_to_flow);
    rounds_to_1pct.push_back(o.rounds_to_1pct);
    replays.push_back(how);
    over_sink += o.sink_excess > 0;
  }
  double optimal_flow_share() const {
    return static_cast<double>(std::count_if(flow.begin(), flow.end(), [](double f) { return f >= 1 - 1e-12; })) /
           static_cast<double>(flow.size());
  }
  void print(const char* what) const {
    std::printf(
        "%s (%zu instances): flow = oracle on %.0f%% (min ratio %.3f) | total cost / oracle: median %.3f, p90 %.3f, "
        "max %.3f | max path / oracle: median %.3f, p90 %.3f | rounds to final flow: median %.0f, p90 %.0f; "
        "to 1%% of final cost: median %.0f, p90 %.0f; to last change: median %.0f | a sink above capacity when "
        "measured: %zu\n",
        what, flow.size(), 100 * optimal_flow_share(), quantile(flow, 0), quantile(total, 0.5), quantile(total, 0.9),
        quantile(total, 1), quantile(max_path, 0.5), quantile(max_path, 0.9), quantile(rounds_to_flow, 0.5),
        quantile(rounds_to_flow, 0.9), quantile(rounds_to_1pct, 0.5), quantile(rounds_to_1pct, 0.9),
        quantile(rounds, 0.5), over_sink);
  }
  // The bounds (the author's prototype reached 0-13% above the min-cost optimum, median ~2.6%).
  void expect_bounds(const char* what) const {
    EXPECT_GE(optimal_flow_share(), 0.90) << what;
    for (size_t i = 0; i < flow.size(); ++i) EXPECT_GE(flow[i], 0.95) << what << ", " << replays[i];
    EXPECT_LE(quantile(total, 0.5), 1.05) << what;
    EXPECT_LE(quantile(total, 0.9), 1.10) << what;
    EXPECT_LE(quantile(max_path, 0.5), 1.15) << what;
  }
};

// Prototype (thesis logs): the round at which the final flow value was reached, over its logged runs: 32, 43,
// 33, 27, 65-82 (4 runs), 98-124 (4 runs), 72, 87. Its median is 72.
inline constexpr double kPrototypeMedianRounds = 72;

}  // namespace gwtf::sim::testing
