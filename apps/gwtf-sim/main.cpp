// gwtf-sim: the deterministic simulator. `gwtf-sim flow` runs the decentralized flow protocol on a generated
// instance and prints its result beside the centralized optimum's. LibTorch-free: starts in milliseconds.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "apps/common/logging.hpp"
#include "kernels/sim/flow_experiment.hpp"

namespace {

using gwtf::sim::FlowOutcome;

nlohmann::json to_json(const FlowOutcome& o) {
  return {{"flow_value", o.flow_value},
          {"oracle_flow_value", o.oracle_flow_value},
          {"total_cost", o.total_cost},
          {"oracle_total_cost", o.oracle_total_cost},
          {"max_path_cost", o.max_path_cost},
          {"oracle_max_path_cost", o.oracle_max_path_cost},
          {"oracle_max_path_lower_bound", o.oracle_max_path_lower_bound},
          {"rounds", o.rounds},
          {"rounds_to_flow", o.rounds_to_flow},
          {"rounds_to_1pct", o.rounds_to_1pct},
          {"messages", o.messages},
          {"messages_per_node_round", o.messages_per_node_round}};
}

void print_table(const char* title, const FlowOutcome& o) {
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  std::printf("%s\n", title);
  std::printf("  %-16s %14s %14s %8s\n", "", "decentralized", "oracle", "ratio");
  std::printf("  %-16s %14u %14u %8.3f\n", "flow value", o.flow_value, o.oracle_flow_value,
              ratio(o.flow_value, o.oracle_flow_value));
  std::printf("  %-16s %14.4g %14.4g %8.3f\n", "total cost", o.total_cost, o.oracle_total_cost,
              ratio(o.total_cost, o.oracle_total_cost));
  std::printf("  %-16s %14.4g %14.4g %8.3f   (lower bound %.4g)\n", "max path cost", o.max_path_cost,
              o.oracle_max_path_cost, ratio(o.max_path_cost, o.oracle_max_path_cost), o.oracle_max_path_lower_bound);
  std::printf("  rounds: to the final flow value %d, to within 1%% of the final cost %d, to the last change %d\n",
              o.rounds_to_flow, o.rounds_to_1pct, o.rounds);
  std::printf("  messages: %llu (%.1f per node per round)\n", static_cast<unsigned long long>(o.messages),
              o.messages_per_node_round);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gwtf-sim — deterministic simulation of GWTF swarms"};
  app.require_subcommand(1);
  gwtf::app::LogOptions log;
  gwtf::app::add_log_flags(app, log);

  gwtf::sim::FlowExperimentOptions x;
  bool json = false;
  auto* flow = app.add_subcommand("flow", "Route flows on a generated instance; compare with the centralized optimum");
  flow->add_option("--nodes", x.instance.nodes, "Nodes, data holders included")->capture_default_str()
      ->check(CLI::Range(2, 1000000));
  flow->add_option("--stages", x.instance.stages, "Relay stages")->capture_default_str()->check(CLI::Range(1, 1000));
  flow->add_option("--holders", x.instance.holders, "Data holders")->capture_default_str()->check(CLI::Range(1, 100000));
  flow->add_option("--seed", x.seed, "Seed: the same seed replays the same run")->capture_default_str();
  flow->add_flag("--geo", x.instance.geo, "Geo instance: regions of data/regions.csv, costs from the edge-cost formula");
  flow->add_option("--preset", x.instance.preset, "Model preset for geo boundary sizes (tiny|small|124m|500m|1.5b)")
      ->capture_default_str();
  flow->add_option("--degree", x.instance.degree, "Neighbours per adjacent stage (0: all)")->capture_default_str()
      ->check(CLI::Range(0, 100000));
  flow->add_option("--rounds", x.rounds, "Protocol rounds before measuring")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  flow->add_option("--kill-fraction", x.kill_fraction, "Then kill this fraction of relays (never a whole stage)")
      ->check(CLI::Range(0.0, 0.9));
  flow->add_option("--join", x.joins, "Then add this many relays, each to the stage that limits the flow")
      ->check(CLI::Range(0, 100000));
  flow->add_option("--churn-rounds", x.churn_rounds, "Rounds after churn before measuring again")->capture_default_str();
  flow->add_option("--loss", x.loss, "Message loss probability")->check(CLI::Range(0.0, 0.5));
  flow->add_flag("--check", x.check_invariants, "Check every invariant after every event (slow)");
  flow->add_option("--max-weight", x.params.max_weight, "Weight of the larger path in a move's score")
      ->capture_default_str();
  flow->add_option("--temperature", x.params.temperature0, "Initial annealing temperature (x mean link cost)")
      ->capture_default_str();
  flow->add_option("--cooling", x.params.cooling_per_round, "Temperature factor per round")->capture_default_str();
  flow->add_option("--move-probability", x.params.move_probability, "Chance per round to look for a move")
      ->capture_default_str();
  flow->add_option("--max-free", x.params.max_free_outs, "Paths a relay reserves ahead of demand")->capture_default_str();
  flow->add_flag("--json", json, "Print one JSON object instead of tables");

  CLI11_PARSE(app, argc, argv);
  try {
    gwtf::app::setup_logging(log, "gwtf-sim");
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }

  if (flow->parsed()) {
    const auto t0 = std::chrono::steady_clock::now();
    gwtf::sim::FlowExperimentResult r;
    try {
      r = gwtf::sim::run_flow_experiment(x);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 2;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (json) {
      nlohmann::json j = to_json(r.before);
      j["nodes"] = r.nodes;
      j["seed"] = x.seed;
      j["seconds"] = seconds;
      if (r.after_churn) {
        j["after_churn"] = to_json(*r.after_churn);
        j["after_churn"]["killed"] = r.killed;
        j["after_churn"]["joined"] = r.joined;
      }
      if (!r.violation.empty()) j["violation"] = r.violation;
      std::cout << j.dump(2) << std::endl;
    } else {
      std::printf("gwtf-sim flow: %d nodes, %d relay stages, %d holders, %s instance, seed %llu (%.2f s)\n", r.nodes,
                  x.instance.stages, x.instance.holders, x.instance.geo ? "geo" : "layered",
                  static_cast<unsigned long long>(x.seed), seconds);
      print_table("after convergence:", r.before);
      if (r.after_churn) {
        std::printf("killed %d relays, %d joined\n", r.killed, r.joined);
        print_table("after churn:", *r.after_churn);
      }
      if (!r.violation.empty()) std::printf("INVARIANT VIOLATED: %s\n", r.violation.c_str());
    }
    return r.violation.empty() ? 0 : 1;
  }
  return 0;
}
