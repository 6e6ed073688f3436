// gwtf-sim: the deterministic simulator. `gwtf-sim flow` runs the decentralized flow protocol on a generated
// instance and prints its result beside the centralized optimum's; `gwtf-sim train` runs the training protocol
// with modeled compute, crashes and lossy links, and prints what churn cost, iteration by iteration.
// LibTorch-free: starts in milliseconds.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/common/config_file.hpp"
#include "apps/common/logging.hpp"
#include "apps/common/progress.hpp"
#include "apps/gwtf-sim/results_command.hpp"
#include "apps/gwtf-sim/run_command.hpp"
#include "kernels/sim/flow_experiment.hpp"
#include "kernels/sim/train_sim.hpp"

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

struct TrainRun {
  gwtf::sim::TrainSimConfig cfg;
  std::string replicas = "2,2,2";
  int random_crashes = 0;
  std::vector<std::string> crashes;  // NODE@SECONDS
  std::vector<std::string> joins;    // STAGE@SECONDS
  bool trace = false;
};

// Runs `gwtf-sim train`; returns the exit status (1: an iteration did not commit or the ledger broke).
int run_train(TrainRun& t, bool json) {
  using namespace gwtf;
  t.cfg.replicas.clear();
  std::stringstream list(t.replicas);
  for (std::string item; std::getline(list, item, ',');) {
    try {
      t.cfg.replicas.push_back(std::stoi(item));
    } catch (const std::exception&) {
      spdlog::error("--replicas: '{}' is not a number (expected a list like 2,2,2)", item);
      return 2;
    }
    if (t.cfg.replicas.back() < 1) {
      spdlog::error("--replicas: every stage needs at least one replica");
      return 2;
    }
  }
  if (t.trace) t.cfg.trace = &std::cout;
  app::ProgressLine line("gwtf-sim train");
  const auto iterations = t.cfg.params.iterations;
  t.cfg.progress = [&line, iterations](double time, train::Iter stepped) {
    const double rate = line.elapsed() > 0 && stepped > 0 ? stepped / line.elapsed() : 0;
    line.update("iteration " + std::to_string(stepped) + "/" + std::to_string(iterations) + ", simulated " +
                app::format_duration(time) + ", ETA " +
                (rate > 0 ? app::format_duration((iterations - stepped) / rate) : std::string("?")));
  };
  sim::TrainSim sim(t.cfg);
  const double horizon = static_cast<double>(t.cfg.params.iterations) * t.cfg.params.microbatches *
                         t.cfg.forward_time * 3 * static_cast<double>(t.cfg.replicas.size()) /
                         static_cast<double>(t.cfg.holders);
  for (const auto& c : t.crashes) {
    const auto at = c.find('@');
    try {
      if (at == std::string::npos) throw std::invalid_argument(c);
      sim.crash_at(std::stoull(c.substr(0, at)), std::stod(c.substr(at + 1)));
    } catch (const std::exception&) {
      spdlog::error("--crash: '{}' is not NODE@SECONDS (e.g. 4@1.5)", c);
      return 2;
    }
  }
  for (const auto& j : t.joins) {
    const auto at = j.find('@');
    try {
      if (at == std::string::npos) throw std::invalid_argument(j);
      const auto stage = std::stoul(j.substr(0, at));
      if (stage < 1 || stage > t.cfg.replicas.size()) {
        spdlog::error("--join: stage {} does not exist (relay stages are 1..{})", stage, t.cfg.replicas.size());
        return 2;
      }
      sim.join_at(static_cast<train::Stage>(stage), std::stod(j.substr(at + 1)));
    } catch (const std::invalid_argument&) {
      spdlog::error("--join: '{}' is not STAGE@SECONDS (e.g. 2@1.5)", j);
      return 2;
    }
  }
  // Random crashes: relays only, never the last live replica of a stage, within the first half of the run.
  Rng rng(t.cfg.seed ^ 0xC4A5u);
  std::vector<std::vector<train::NodeId>> alive;
  for (size_t s = 1; s <= t.cfg.replicas.size(); ++s) alive.push_back(sim.stage_nodes(static_cast<train::Stage>(s)));
  for (int k = 0; k < t.random_crashes; ++k) {
    std::vector<size_t> stages;
    for (size_t s = 0; s < alive.size(); ++s)
      if (alive[s].size() > 1) stages.push_back(s);
    if (stages.empty()) {
      spdlog::warn("--random-crashes: only {} possible without killing a whole stage", k);
      break;
    }
    auto& nodes = alive[stages[rng.below(stages.size())]];
    const size_t victim = rng.below(nodes.size());
    sim.crash_at(nodes[victim], 0.5 * horizon * rng.uniform());
    nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  const auto r = sim.run(1e6);

  nlohmann::json joins = nlohmann::json::array();
  for (const auto& j : r.joins) joins.push_back({{"node", j.node}, {"seconds_to_serve", j.seconds}, {"state_iterations", j.state}});
  nlohmann::json per_iteration = nlohmann::json::array();
  for (const auto& [i, a] : r.iterations) {
    double recovery = 0;
    for (double l : a.recovery_latencies) recovery += l / static_cast<double>(a.recovery_latencies.size());
    per_iteration.push_back({{"iteration", i},
                             {"mean_recovery_latency_s", recovery},
                             {"committed_at_s", a.committed_at},
                             {"loss", r.loss.count(i) ? r.loss.at(i) : 0.0},
                             {"work_s", a.work_seconds},
                             {"wasted_s", a.wasted_seconds},
                             {"idle_s", a.idle_seconds},
                             {"idle_fraction", a.idle_fraction},
                             {"redos", a.redos},
                             {"replays", a.replays}});
  }
  if (json) {
    nlohmann::json j{{"finished", r.finished},
                     {"time_s", r.time},
                     {"wasted_compute_fraction", r.wasted_fraction},
                     {"idle_fraction", r.idle_fraction},
                     {"mean_recovery_latency_s", r.mean_recovery_latency},
                     {"messages", r.messages},
                     {"lost_messages", r.lost_messages},
                     {"violations", r.violations},
                     {"joins", joins},
                     {"events", r.events},
                     {"iterations", per_iteration}};
    std::cout << j.dump(2) << std::endl;
  } else {
    std::printf("gwtf-sim train: %d holders, replicas %s, %u microbatches x %llu iterations, seed %llu\n",
                t.cfg.holders, t.replicas.c_str(), t.cfg.params.microbatches,
                static_cast<unsigned long long>(t.cfg.params.iterations),
                static_cast<unsigned long long>(t.cfg.seed));
    std::printf("  %9s %12s %9s %9s %9s %7s %6s %7s %10s\n", "iteration", "committed s", "loss", "work s",
                "wasted s", "idle %", "redos", "replays", "recovery s");
    for (const auto& row : per_iteration)
      std::printf("  %9llu %12.3f %9.4f %9.3f %9.3f %7.1f %6llu %7llu %10.3f\n",
                  static_cast<unsigned long long>(row["iteration"].get<uint64_t>()),
                  row["committed_at_s"].get<double>(), row["loss"].get<double>(), row["work_s"].get<double>(),
                  row["wasted_s"].get<double>(), 100 * row["idle_fraction"].get<double>(),
                  static_cast<unsigned long long>(row["redos"].get<uint64_t>()),
                  static_cast<unsigned long long>(row["replays"].get<uint64_t>()),
                  row["mean_recovery_latency_s"].get<double>());
    std::printf("  %s at t=%.3f s; wasted compute %.1f%%, relay idle %.1f%%, mean recovery latency %.3f s\n",
                r.finished ? "finished" : "DID NOT FINISH", r.time, 100 * r.wasted_fraction, 100 * r.idle_fraction,
                r.mean_recovery_latency);
    std::printf("  messages %llu (%llu lost)\n", static_cast<unsigned long long>(r.messages),
                static_cast<unsigned long long>(r.lost_messages));
    for (const auto& j : r.joins)
      std::printf("  node %llu joined: serving after %.3f s with a state of %llu iterations\n",
                  static_cast<unsigned long long>(j.node), j.seconds, static_cast<unsigned long long>(j.state));
    for (const auto& v : r.violations) std::printf("LEDGER VIOLATION: %s\n", v.c_str());
  }
  return r.finished && r.violations.empty() ? 0 : 1;
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
  flow->add_option("--home-slack", x.params.home_slack,
                   "Crossing flows go home if no path grows past this x the node's longest (0: never)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  flow->add_flag("--json", json, "Print one JSON object instead of tables");

  TrainRun tr;
  auto* train = app.add_subcommand("train", "Run the training protocol with modeled compute, crashes and lossy links");
  train->add_option("--holders", tr.cfg.holders, "Data holders")->capture_default_str()->check(CLI::Range(1, 1000));
  train->add_option("--replicas", tr.replicas, "Replicas per relay stage, comma-separated")->capture_default_str();
  train->add_option("--microbatches", tr.cfg.params.microbatches, "Microbatches per iteration")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  train->add_option("--iterations", tr.cfg.params.iterations, "Iterations")->capture_default_str()
      ->check(CLI::Range(1, 100000));
  train->add_option("--in-flight", tr.cfg.params.max_in_flight, "Microbatches a holder keeps in flight")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  train->add_option("--seed", tr.cfg.seed, "Seed: the same seed replays the same run")->capture_default_str();
  train->add_option("--loss", tr.cfg.loss_rate, "Message loss probability")->check(CLI::Range(0.0, 0.5));
  train->add_option("--latency", tr.cfg.latency, "One-way link latency, seconds")->capture_default_str();
  train->add_option("--forward-time", tr.cfg.forward_time, "Forward time of a relay stage per microbatch, seconds")
      ->capture_default_str();
  train->add_option("--crash", tr.crashes, "Crash node NODE at SECONDS (NODE@SECONDS; ids: holders 1..H, then relays)");
  train->add_option("--join", tr.joins,
                    "A newcomer joins relay stage STAGE at SECONDS (STAGE@SECONDS): it fetches the stage's state, "
                    "catches up, then serves");
  train->add_option("--random-crashes", tr.random_crashes, "Crash this many random relays (never a whole stage)")
      ->check(CLI::Range(0, 100000));
  train->add_flag("--trace", tr.trace, "Print every message, task and event");
  train->add_flag("--json", json, "Print one JSON object instead of a table");

  gwtf::app::RunCommand run_command;
  auto* run = app.add_subcommand("run", "The paper's experiments: a scenario under several routing policies on the "
                                        "training protocol; summary.json, CSV, plots and summary.md in a run directory");
  run_command.add_flags(*run);
  gwtf::app::ResultsCommand results_command;
  auto* results = app.add_subcommand("results", "docs/results.md's table from gwtf-sim run directories (means and "
                                                "spreads over seeds, the goals checked)");
  results_command.add_flags(*results);

  // --config FILE: [flow] and [train] hold the subcommands' flags by name (--kill-fraction: kill_fraction).
  gwtf::app::ConfigSchema schema;
  schema.flags("flow", *flow);
  schema.flags("train", *train);
  schema.flags("run", *run);
  std::string config_file;
  for (auto* sub : {flow, train, run})
    sub->add_option("--config", config_file, "TOML file with this subcommand's flags in [" + sub->get_name() +
                                                 "] (key = the flag's name with _); flags override it");
  if (auto ok = schema.load_from_args(argc, argv); !ok) {
    std::fprintf(stderr, "gwtf-sim: %s\n", ok.error().c_str());
    return 2;
  }
  CLI11_PARSE(app, argc, argv);
  if (auto ok = schema.apply_flags(); !ok) {
    std::fprintf(stderr, "gwtf-sim: %s\n", ok.error().c_str());
    return 2;
  }
  try {
    gwtf::app::setup_logging(log, "gwtf-sim");
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }

  if (flow->parsed()) {
    const auto t0 = std::chrono::steady_clock::now();
    gwtf::sim::FlowExperimentResult r;
    gwtf::app::ProgressLine line("gwtf-sim flow");
    x.progress = [&line](const char* phase, int round, int rounds, uint32_t flow_value) {
      line.update(std::string(phase) + ": round " + std::to_string(round) + "/" + std::to_string(rounds) +
                  ", flow value " + std::to_string(flow_value) + ", ETA " +
                  gwtf::app::format_duration(line.elapsed() / round * (rounds - round)));
    };
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
  if (train->parsed()) return run_train(tr, json);
  if (run->parsed()) return run_command.execute();
  if (results->parsed()) return results_command.execute();
  return 0;
}
