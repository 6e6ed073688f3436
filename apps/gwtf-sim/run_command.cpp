#include "apps/gwtf-sim/run_command.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "apps/common/config_file.hpp"
#include "apps/common/plot.hpp"
#include "apps/common/progress.hpp"
#include "kernels/base/split.hpp"
#include "kernels/sim/scenario.hpp"

namespace gwtf::app {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sim::PolicyRun;
using sim::Scenario;

// A scenario file: [scenario] with Scenario's fields, and churn = none | medium | high or mttf_s.
Result<Scenario, std::string> load_scenario_file(const std::string& path) {
  Scenario s;
  s.name = fs::path(path).stem().string();
  std::string churn;
  ConfigSchema schema;
  schema.text("scenario.name", s.name);
  schema.text("scenario.table", s.table, {"cities", "regions"});
  schema.integer("scenario.holders", s.holders, 1, 10000);
  schema.integer("scenario.stages", s.stages, 1, 1000);
  schema.integer("scenario.relays", s.relays, 1, 1000000);
  schema.number("scenario.max_slowdown", s.max_slowdown, 1, 1000);
  schema.number("scenario.link_spread", s.link_spread, 1, 1e6);
  schema.number("scenario.nic_gbit_s", s.nic_gbit_s, 0, 1e6);
  schema.text("scenario.preset", s.preset, {"tiny", "small", "124m", "500m", "1.5b"});
  schema.integer("scenario.microbatch_size", s.microbatch_size, 1, 100000);
  schema.number("scenario.device_flops", s.device_flops, 1e6, 1e18);
  schema.integer("scenario.microbatches", s.microbatches, 1u, 1000000u);
  schema.integer("scenario.in_flight", s.in_flight, 1u, 1000000u);
  schema.integer("scenario.buffer_budget", s.buffer_budget, 0u, 1000000u);
  schema.boolean("scenario.compute_capacity", s.compute_capacity);
  schema.integer("scenario.iterations", s.iterations, 1, 1000000);
  schema.text("scenario.churn", churn, {"none", "medium", "high"});
  schema.number("scenario.mttf_s", s.mttf_s, 0, 1e12);
  schema.number("scenario.join_after_s", s.join_after_s, 0, 1e9);
  schema.number("scenario.detect_after_s", s.detect_after_s, 0.001, 1e6);
  schema.number("scenario.gradient_bytes_per_parameter", s.gradient_bytes_per_parameter, 0, 64);
  schema.number("scenario.state_bytes_per_parameter", s.state_bytes_per_parameter, 0, 256);
  if (auto ok = schema.load(path); !ok) return Err{ok.error()};
  if (s.relays < s.stages) return Err{path + ": scenario.relays must be at least scenario.stages"};
  if (!churn.empty()) s.mttf_s = sim::churn_mttf(churn, sim::ideal_iteration_s(s)).value();
  return s;
}

json scenario_json(const Scenario& s) {
  return {{"name", s.name},          {"table", s.table},
          {"holders", s.holders},    {"stages", s.stages},
          {"relays", s.relays},      {"max_slowdown", s.max_slowdown},
          {"link_spread", s.link_spread}, {"nic_gbit_s", s.nic_gbit_s}, {"preset", s.preset},
          {"microbatch_size", s.microbatch_size}, {"microbatches", s.microbatches},
          {"in_flight", s.in_flight}, {"buffer_budget", s.buffer_budget}, {"compute_capacity", s.compute_capacity},
          {"iterations", s.iterations},
          {"mttf_s", s.mttf_s},      {"join_after_s", s.join_after_s},
          {"detect_after_s", s.detect_after_s},
          {"gradient_bytes_per_parameter", s.gradient_bytes_per_parameter},
          {"state_bytes_per_parameter", s.state_bytes_per_parameter},
          {"ideal_iteration_s", sim::ideal_iteration_s(s)}};
}

json policy_json(const PolicyRun& r) {
  json j{{"time_to_train_s", r.time_to_train_s},
         {"throughput_microbatches_per_s", r.throughput_microbatches_per_s},
         {"wasted_compute_fraction", r.report.wasted_fraction},
         {"crash_lost_fraction", r.report.crash_lost_fraction},
         {"crash_lost_in_reduce_fraction", r.report.crash_lost_in_reduce_fraction},
         {"idle_fraction", r.report.idle_fraction},
         {"lost_microbatches", r.lost_microbatches},
         {"duplicated_microbatches", r.duplicated_microbatches},
         {"mean_recovery_latency_s", r.report.mean_recovery_latency},
         {"finished", r.report.finished},
         {"crashes", r.crashes},
         {"crashes_skipped", r.crashes_skipped},
         {"crash_seconds_deferred", r.report.crash_seconds_deferred},
         {"joins", r.joins},
         {"messages", r.report.messages},
         {"retransmissions_held", r.report.retransmissions_held},
         {"peak_buffered_microbatches", r.report.peak_buffered},
         {"violations", r.report.violations}};
  if (!r.report.wasted_if_durable_after.empty()) {
    json bound;  // keyed by the seconds after which a backward's work is durable (docs/simulator.md)
    for (const auto& [after, wasted] : r.report.wasted_if_durable_after) {
      std::ostringstream key;
      key << after;
      bound[key.str()] = wasted;
    }
    j["wasted_if_durable_after_s"] = bound;
  }
  if (r.report.events.count("busy")) j["busy_answers"] = r.report.events.at("busy");
  if (r.report.events.count("over-budget")) j["over_budget"] = r.report.events.at("over-budget");
  if (!r.routing.empty()) {
    double flow = 0, oracle = 0, worst = 1e300;
    for (const auto& s : r.routing) {
      flow += s.flow_value;
      oracle += s.oracle_flow_value;
      if (s.oracle_flow_value) worst = std::min(worst, static_cast<double>(s.flow_value) / s.oracle_flow_value);
    }
    j["mean_flow_value_vs_oracle"] = oracle > 0 ? flow / oracle : 0;
    j["worst_flow_value_vs_oracle"] = worst > 1e299 ? 0 : worst;
    // Cost is comparable only at the same flow value: the mean ratio over the samples that had it.
    double cost_ratio = 0;
    int full = 0;
    for (const auto& s : r.routing)
      if (s.flow_value == s.oracle_flow_value && s.oracle_total_cost > 0) {
        cost_ratio += s.total_cost / s.oracle_total_cost;
        ++full;
      }
    if (full > 0) j["mean_total_cost_vs_oracle"] = cost_ratio / full;
  }
  return j;
}

Result<void*, std::string> write_plots(const fs::path& dir, const std::vector<PolicyRun>& runs) {
  auto q = [&](const std::string& name) { return gnuplot_quote((dir / name).string()); };
  std::string progress = "plot ", throughput = "plot ", routing;
  for (size_t k = 0; k < runs.size(); ++k) {
    const std::string file = q("iterations-" + runs[k].policy + ".csv");
    progress += std::string(k ? ", " : "") + file + " using 2:1 skip 1 with steps linewidth 2 title '" +
                runs[k].policy + "'";
    if (!runs[k].routing.empty() && routing.empty())
      routing = "plot " + q("routing-" + runs[k].policy + ".csv") +
                " using 1:($3 > 0 ? $2/$3 : 1/0) skip 1 with lines linewidth 2 title 'flow value / oracle (" +
                runs[k].policy + ")', '' using 1:($5 > 0 ? $4/$5 : 1/0) skip 1 with lines title 'max path cost / "
                "oracle (" + runs[k].policy + ")'\n";
  }
  throughput += q("summary.csv") + " using 3:xtic(1) skip 1 with boxes fill solid 0.6 title 'microbatches/s'\n";
  std::string script = "set terminal pngcairo size 900,420 font ',10'\nset datafile separator ','\nset grid\n"
                       "set key top left\n"
                       "set output " + q("progress.png") + "\nset title 'Iterations committed over simulated time'\n"
                       "set xlabel 'simulated seconds'\nset ylabel 'iterations'\n" + progress + "\n"
                       "set output " + q("throughput.png") + "\nset title 'Throughput per policy'\nset xlabel ''\n"
                       "set ylabel 'microbatches/s'\nset style data histogram\nset boxwidth 0.6\nset yrange [0:*]\n" +
                       throughput;
  if (!routing.empty())
    script += "set output " + q("routing.png") + "\nset title 'Routing quality against the oracle on the live swarm'"
              "\nset xlabel 'simulated seconds'\nset ylabel 'ratio'\nset yrange [0:*]\nset autoscale x\n" + routing;
  return run_gnuplot((dir / "plots.gp").string(), script);
}

}  // namespace

std::string nic_text(double nic_gbit_s, const std::string& before, const std::string& after) {
  if (nic_gbit_s <= 0) return "";
  std::ostringstream o;
  o << before << nic_gbit_s << " Gbit/s" << after;
  return o.str();
}

void RunCommand::add_flags(CLI::App& run) {
  std::string names;
  for (const auto& n : sim::builtin_scenarios()) names += (names.empty() ? "" : ", ") + n;
  run.add_option("--scenario", scenario, "Built-in scenario (" + names + ") or a TOML file with [scenario]")
      ->capture_default_str();
  run.add_option("--policies", policies, "Comma-separated policies (gwtf, oracle, round-robin, greedy, static, swarm)")
      ->capture_default_str();
  run.add_option("--churn", churn, "none | medium | high: overrides the scenario's churn")
      ->check(CLI::IsMember({"none", "medium", "high"}));
  run.add_option("--nic-gbit-s", nic_gbit_s,
                 "Every node's interface this many Gbit/s, shared by its connections (0: no limit): overrides the "
                 "scenario's; its churn's MTTF stays unless --churn is given too")
      ->check(CLI::Range(0.0, 1e6));
  run.add_option("--seed", seed, "Seed: the same seed, the same world, churn and results")->capture_default_str();
  run.add_option("--out", out, "Run directory (default runs/sim-<scenario>-<seed>)");
  run.add_option("--iterations", iterations, "Iterations (default: the scenario's)")->check(CLI::Range(1, 1000000));
  run.add_option("--trace", trace, "Write every message, task, crash and event of the training protocol to FILE "
                                   "(one policy, not swarm): how a stall or a slow run is read");
}

int RunCommand::execute() const {
  auto loaded = fs::exists(scenario) ? load_scenario_file(scenario) : sim::builtin_scenario(scenario);
  if (!loaded) {
    spdlog::error("{}", loaded.error());
    return 2;
  }
  Scenario s = loaded.value();
  if (iterations > 0) s.iterations = iterations;
  if (nic_gbit_s >= 0) s.nic_gbit_s = nic_gbit_s;
  if (!churn.empty()) s.mttf_s = sim::churn_mttf(churn, sim::ideal_iteration_s(s)).value();
  const auto list = split_list(policies);
  if (list.empty()) {
    spdlog::error("--policies: name at least one of gwtf, oracle, round-robin, greedy, static, swarm");
    return 2;
  }
  std::unique_ptr<std::ofstream> trace_file;
  if (!trace.empty()) {
    if (list.size() != 1 || list[0] == "swarm") {
      spdlog::error("--trace needs exactly one policy of the training protocol (--policies gwtf, say)");
      return 2;
    }
    trace_file = std::make_unique<std::ofstream>(trace);
    if (!*trace_file) {
      spdlog::error("cannot write the trace to {}", trace);
      return 2;
    }
  }
  const fs::path dir = out.empty() ? fs::path("runs") / ("sim-" + s.name + "-" + std::to_string(seed)) : fs::path(out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    spdlog::error("cannot create {}: {}", dir.string(), ec.message());
    return 2;
  }
  std::printf("gwtf-sim run: scenario %s (%d holders, %d relays in %d stages, %d iterations of %u microbatches, "
              "relay MTTF %s%s), seed %llu -> %s\n",
              s.name.c_str(), s.holders, s.relays, s.stages, s.iterations, s.microbatches,
              s.mttf_s > 0 ? format_duration(s.mttf_s).c_str() : "none", nic_text(s.nic_gbit_s, ", NIC ", "").c_str(),
              static_cast<unsigned long long>(seed), dir.string().c_str());
  std::fflush(stdout);

  std::vector<PolicyRun> runs;
  json summary{{"scenario", scenario_json(s)}, {"seed", seed}, {"policies", json::object()}};
  for (const auto& policy : list) {
    ProgressLine line("gwtf-sim run " + policy);
    const auto started = std::chrono::steady_clock::now();
    const int total = s.iterations;
    auto r = sim::run_scenario(s, policy, seed, [&](double t, uint64_t done) {
      const double rate = done > 0 ? static_cast<double>(done) / line.elapsed() : 0;
      line.update("iteration " + std::to_string(done) + "/" + std::to_string(total) + ", simulated " +
                  format_duration(t) + ", ETA " +
                  (rate > 0 ? format_duration((total - static_cast<double>(done)) / rate) : std::string("?")));
    }, trace_file.get());
    if (!r) {
      spdlog::error("{}", r.error());
      return 2;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const auto& run = r.value();
    std::printf("  %-12s time to train %9.1f s  %8.2f microbatches/s  wasted %5.2f%%  idle %5.1f%%  lost %llu  "
                "duplicated %llu  crashes %llu  joins %llu  (%.1f s wall)\n",
                policy.c_str(), run.time_to_train_s, run.throughput_microbatches_per_s,
                100 * run.report.wasted_fraction, 100 * run.report.idle_fraction,
                static_cast<unsigned long long>(run.lost_microbatches),
                static_cast<unsigned long long>(run.duplicated_microbatches),
                static_cast<unsigned long long>(run.crashes), static_cast<unsigned long long>(run.joins), wall);
    std::fflush(stdout);
    summary["policies"][policy] = policy_json(run);
    std::ofstream it(dir / ("iterations-" + policy + ".csv"));
    it << "iterations,committed_at_s,work_s,wasted_s,idle_fraction,redos\n0,0,0,0,0,0\n";
    for (const auto& [i, a] : run.report.iterations)
      if (a.committed_at >= 0)
        it << i + 1 << ',' << a.committed_at << ',' << a.work_seconds << ',' << a.wasted_seconds << ','
           << a.idle_fraction << ',' << a.redos << '\n';
    if (!run.routing.empty()) {
      std::ofstream rc(dir / ("routing-" + policy + ".csv"));
      rc << "t,flow_value,oracle_flow_value,max_path_cost,oracle_max_path_cost,total_cost,oracle_total_cost\n";
      for (const auto& q : run.routing)
        rc << q.t << ',' << q.flow_value << ',' << q.oracle_flow_value << ',' << q.max_path_cost << ','
           << q.oracle_max_path_cost << ',' << q.total_cost << ',' << q.oracle_total_cost << '\n';
    }
    runs.push_back(run);
  }
  std::ofstream(dir / "summary.json") << summary.dump(2) << '\n';
  {
    std::ofstream csv(dir / "summary.csv");
    csv << "policy,time_to_train_s,throughput_microbatches_per_s,wasted_compute_fraction,idle_fraction,"
           "lost_microbatches,duplicated_microbatches,mean_recovery_latency_s,crash_lost_fraction\n";
    for (const auto& r : runs)
      csv << r.policy << ',' << r.time_to_train_s << ',' << r.throughput_microbatches_per_s << ','
          << r.report.wasted_fraction << ',' << r.report.idle_fraction << ',' << r.lost_microbatches << ','
          << r.duplicated_microbatches << ',' << r.report.mean_recovery_latency << ','
          << r.report.crash_lost_fraction << '\n';
  }
  const auto plots = write_plots(dir, runs);
  if (!plots) std::printf("(no plots: %s)\n", plots.error().c_str());
  {
    std::ofstream md(dir / "summary.md");
    md << "# gwtf-sim run: " << s.name << ", seed " << seed << "\n\n" << s.holders << " data holders, " << s.relays
       << " relays in " << s.stages << " stages (" << s.table << " table, compute spread " << s.max_slowdown
       << "x, link spread " << s.link_spread << "x" << nic_text(s.nic_gbit_s, ", NIC ", "") << "), " << s.iterations
       << " iterations of " << s.microbatches << " microbatches; relay MTTF "
       << (s.mttf_s > 0 ? format_duration(s.mttf_s) : std::string("none"))
       << ".\n\n| policy | time to train (s) | microbatches/s | wasted (lost in crashes) | idle | lost | duplicated |"
          " recovery (s) | crashes | joins |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : runs) {
      char row[512];
      std::snprintf(row, sizeof row,
                    "| %s | %.1f | %.3f | %.2f%% (%.2f%%) | %.1f%% | %llu | %llu | %.2f | %llu | %llu |\n",
                    r.policy.c_str(), r.time_to_train_s, r.throughput_microbatches_per_s,
                    100 * r.report.wasted_fraction, 100 * r.report.crash_lost_fraction, 100 * r.report.idle_fraction,
                    static_cast<unsigned long long>(r.lost_microbatches),
                    static_cast<unsigned long long>(r.duplicated_microbatches), r.report.mean_recovery_latency,
                    static_cast<unsigned long long>(r.crashes), static_cast<unsigned long long>(r.joins));
      md << row;
    }
    if (plots) md << "\n![progress](progress.png)\n\n![throughput](throughput.png)\n\n![routing](routing.png)\n";
    md << "\nData: summary.json, summary.csv, iterations-<policy>.csv, routing-<policy>.csv.\n";
  }
  bool ok = true;
  // The system under test must hold: gwtf finishes, and no policy on the GWTF training protocol loses or doubles
  // a microbatch. A baseline that does not finish within the horizon (a static schedule under heavy churn) or
  // SWARM's losses and doubles are measured behaviour: reported, not a failure of the run.
  for (const auto& r : runs) {
    if (r.policy == "gwtf") ok = ok && r.report.finished;
    if (r.policy != "swarm") ok = ok && r.lost_microbatches == 0 && r.duplicated_microbatches == 0;
    if (!r.report.finished)
      std::printf("  (%s did not finish within the horizon of %.0f simulated seconds; %s)\n", r.policy.c_str(),
                  r.report.time, r.report.stall.c_str());
  }
  std::printf("%s: %s\n", ok ? "done" : "FAILED (gwtf did not finish, or the protocol lost or doubled work)",
              (dir / "summary.md").string().c_str());
  return ok ? 0 : 1;
}

}  // namespace gwtf::app
