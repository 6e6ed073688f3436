#include "apps/gwtf/demo.hpp"

#include "actors/ledger_tally.hpp"
#include "apps/common/plot.hpp"
#include "apps/common/progress.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

extern char** environ;

namespace gwtf::app {

namespace {

namespace fs = std::filesystem;
constexpr double kPeerTimeout = 4;  // seconds: a hung node is declared dead after this (gwtf-node --peer-timeout)
using json = nlohmann::json;

struct Proc {
  uint64_t id = 0;
  std::string what;  // "holder", "relay", "victim", "joiner"
  std::vector<std::string> args;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  int stage = -1;  // once the node reported its place
  size_t next_hops = 0;  // its flows' next-stage replicas, as it last reported them
  std::string events;
  std::streamoff read = 0;  // how far its event log was read
};

std::string now_stamp() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&t));
  return buf;
}

bool launch(Proc& p, const std::string& binary, const fs::path& dir) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), p.args.begin(), p.args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string log = (dir / ("node-" + std::to_string(p.id) + ".log")).string();
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(&p.pid, binary.c_str(), &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    spdlog::error("cannot start {}: {}", binary, std::strerror(rc));
    return false;
  }
  p.running = true;
  return true;
}

// New complete lines of a node's event log.
std::vector<json> read_events(Proc& p) {
  std::vector<json> out;
  std::ifstream in(p.events);
  if (!in) return out;
  in.seekg(p.read);
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a partial last line: read it next time
    p.read = in.tellg();
    try {
      out.push_back(json::parse(line));
    } catch (const json::exception&) {
    }
  }
  return out;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

// loss.png (the swarm beside the run without churn) and throughput.png (tokens/s per iteration), churn events as
// dashed vertical lines, from the report's CSV files.
Result<void*, std::string> plot_report(const fs::path& dir, const std::vector<size_t>& churn_iter) {
  auto path = [&](const char* name) { return gnuplot_quote((dir / name).string()); };
  std::string marks;
  for (size_t k = 0; k < churn_iter.size(); ++k)
    marks += "set arrow from " + std::to_string(churn_iter[k]) + ", graph 0 to " + std::to_string(churn_iter[k]) +
             ", graph 1 nohead dashtype 2 linecolor rgb '#888888'\n";
  const std::string script =
      "set terminal pngcairo size 900,420 font ',10'\nset datafile separator ','\nset key top right\n"
      "set grid\nset xlabel 'iteration'\n" + marks +
      "set output " + path("loss.png") + "\nset ylabel 'loss'\nset title 'Training loss: the swarm with churn and the "
      "run without churn'\nplot " + path("loss.csv") + " using 1:2 skip 1 with lines linewidth 2 title 'swarm (churn)', "
      "'' using 1:3 skip 1 with lines dashtype 2 linewidth 2 title 'without churn'\n"
      "set output " + path("throughput.png") + "\nset ylabel 'tokens/s'\nset title 'Swarm throughput per iteration'\n"
      "plot " + path("throughput.csv") + " using 1:($3 > 0 ? $3 : 1/0) skip 1 with linespoints title 'tokens/s'\n";
  return run_gnuplot((dir / "plots.gp").string(), script);
}

}  // namespace

void DemoOptions::declare(ConfigSchema& s) {
  s.boolean("demo.quick", quick);
  s.boolean("demo.no_churn", no_churn);
  s.text("demo.out", out);
  s.text("demo.fault", fault, {"kill", "stop", "term", "kill-holder"});
  s.number("demo.timeout", timeout, 0, 86400);
}

int run_demo(RunConfig run, const DemoOptions& o) {
  // 18: a third before the crash, and time after it for the joiner (a process start, ~2-4 s under load) to join.
  if (o.quick) run.iterations = std::min<int64_t>(run.iterations, 18);
  const fs::path dir = o.out.empty() ? fs::path("runs") / now_stamp() : fs::path(o.out);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    spdlog::error("cannot create the run directory {}: {}", dir.string(), ec.message());
    return 2;
  }
  // A run directory used before: its node logs would be read as this run's (they are appended to).
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("node-", 0) == 0 || name == "report.json" || name == "report.md" || name == "loss.csv")
      fs::remove(entry.path(), ec);
  }
  std::string binary = o.node_binary;
  if (binary.empty()) binary = (fs::read_symlink("/proc/self/exe").parent_path() / "gwtf-node").string();
  if (!fs::exists(binary)) {
    spdlog::error("gwtf-node not found at {} (build it: scripts/build)", binary);
    return 2;
  }
  auto corpus = load_corpus(run);
  if (!corpus) {
    spdlog::error("{}", corpus.error());
    return 2;
  }
  const std::string config = (dir / "run.toml").string();
  std::ofstream(config) << run.to_toml();
  const double timeout = o.timeout > 0 ? o.timeout : (o.quick ? 150 : std::max(270.0, 5.0 * run.iterations));
  const int stages = static_cast<int>(run.replicas.size());
  const int victim_stage = std::min(2, stages);
  const uint64_t kill_iter = static_cast<uint64_t>(run.iterations / 3);

  // 1. The run without churn: the reference trainer, same data, model, cut and schedule, in this process.
  std::printf("gwtf demo: %s %s, %lld iterations x %u microbatches x %lld sequences of %lld tokens; swarm of %u data "
              "holders and %d relay stages\nrun directory: %s\n",
              run.arch.c_str(), run.preset.c_str(), static_cast<long long>(run.iterations), run.microbatches,
              static_cast<long long>(run.microbatch_size), static_cast<long long>(run.seq_len), run.holders, stages,
              dir.string().c_str());
  std::printf("[1/2] the run without churn (reference trainer, one process) ...\n");
  std::fflush(stdout);
  auto baseline = train_local(run.reference_options(), *corpus);
  if (!baseline) {
    spdlog::error("the reference run failed: {}", baseline.error());
    return 1;
  }
  std::printf("      final loss %.4f in %.1f s\n", baseline->losses.back(), baseline->seconds);

  // 2. The swarm.
  const std::string fault = o.fault;
  const bool holder_victim = fault == "kill-holder";
  std::string story;
  if (fault == "kill") story = "a relay of stage " + std::to_string(victim_stage) + " dies (SIGKILL) in the middle of a backward pass of iteration " + std::to_string(kill_iter);
  else if (fault == "stop") story = "a relay of stage " + std::to_string(victim_stage) + " hangs (SIGSTOP) after iteration " + std::to_string(kill_iter);
  else if (fault == "term") story = "a relay of stage " + std::to_string(victim_stage) + " leaves (SIGTERM) after iteration " + std::to_string(kill_iter);
  else if (holder_victim) story = "a data holder dies (SIGKILL) as it starts computing a loss in iteration " + std::to_string(kill_iter);
  else {
    spdlog::error("unknown --fault '{}': kill, stop, term or kill-holder", fault);
    return 2;
  }
  std::printf("[2/2] the swarm: %zu gwtf-node processes on loopback%s\n", run.layout().founders(),
              o.no_churn ? "" : ("; " + story + ", then a fresh node joins stage " + std::to_string(victim_stage)).c_str());
  std::fflush(stdout);
  std::vector<Proc> procs;
  auto common = [&](Proc& p) {
    p.events = (dir / ("node-" + std::to_string(p.id) + ".jsonl")).string();
    p.args.insert(p.args.end(), {"--config", config, "--id", std::to_string(p.id), "--events", p.events,
                                 "--peer-timeout", std::to_string(kPeerTimeout), "--http", "127.0.0.1:0"});
  };
  uint64_t next_id = 1;
  Proc seed;
  seed.id = next_id++;
  seed.what = "holder";
  seed.args = {"--role", "data", "--listen", "127.0.0.1:0"};
  common(seed);
  if (!launch(seed, binary, dir)) return 1;
  procs.push_back(seed);
  // The seed's port, from its event log.
  int port = 0, status_port = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  std::map<uint64_t, std::vector<json>> events;
  while (port == 0 && elapsed() < 30) {
    for (auto& e : read_events(procs[0])) {
      if (e.value("event", "") == "start") {
        port = e.value("port", 0);
        status_port = e.value("status_port", 0);
      }
      events[procs[0].id].push_back(e);
    }
    int status = 0;
    if (waitpid(procs[0].pid, &status, WNOHANG) == procs[0].pid) {
      spdlog::error("the seed node stopped ({}); see {}/node-1.log", describe_exit(status), dir.string());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (port == 0) {
    spdlog::error("the seed node did not start listening within 30 s; see {}/node-1.log", dir.string());
    kill(procs[0].pid, SIGKILL);
    return 1;
  }
  const std::string seed_at = "127.0.0.1:" + std::to_string(port);
  if (status_port)
    std::printf("      live swarm page: http://127.0.0.1:%d/ (metrics: /metrics), while the swarm runs\n", status_port);
  for (uint32_t h = 1; h < run.holders; ++h) {
    Proc p;
    p.id = next_id++;
    p.what = "holder";
    p.args = {"--role", "data", "--seed", seed_at};
    if (!o.no_churn && holder_victim && h == run.holders - 1) {
      p.what = "victim";
      p.args.insert(p.args.end(), {"--die-at", "end-backward:" + std::to_string(kill_iter) + "+:*"});
    }
    common(p);
    procs.push_back(p);
  }
  for (int s = 1; s <= stages; ++s)
    for (uint32_t r = 0; r < run.replicas[s - 1]; ++r) {
      Proc p;
      p.id = next_id++;
      p.what = "relay";
      p.args = {"--role", "relay", "--stage", std::to_string(s), "--seed", seed_at};
      if (!o.no_churn && !holder_victim && s == victim_stage && r == 0) {
        p.what = "victim";
        if (fault == "kill") p.args.insert(p.args.end(), {"--die-at", "backward:" + std::to_string(kill_iter) + "+:*"});
      }
      common(p);
      procs.push_back(p);
    }
  for (size_t k = 1; k < procs.size(); ++k)
    if (!launch(procs[k], binary, dir)) return 1;

  // Watch: reap processes, read event logs, print progress, start the joiner once the victim is gone.
  std::map<uint64_t, double> loss;  // iteration -> mean loss (the holders agree)
  std::map<uint64_t, double> step_at;  // iteration -> seconds into the swarm's run when its loss arrived
  double first_step = -1, last_step = -1;
  bool joiner_started = o.no_churn;
  double victim_died = -1, signalled_at = -1, detected_after = -1;
  int crashes = 0, leaves = 0;
  Proc* victim = nullptr;
  for (auto& p : procs)
    if (p.what == "victim") victim = &p;
  std::vector<std::string> churn_log;
  std::vector<size_t> churn_iter;  // iterations done when each churn event happened (the plots mark them)
  auto churn = [&](std::string what) {
    churn_log.push_back(std::move(what));
    churn_iter.push_back(loss.size());
    std::printf("  >> %s\n", churn_log.back().c_str());
  };
  auto live_per_stage = [&] {
    std::vector<int> n(stages + 1, 0);
    for (const auto& p : procs)
      if (p.running && p.stage >= 0) ++n[p.stage];
    return n;
  };
  bool all_done = false;
  while (!all_done && elapsed() < timeout) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    all_done = true;
    for (auto& p : procs) {
      for (auto& e : read_events(p)) {
        const std::string ev = e.value("event", "");
        if (ev == "member") p.stage = e.value("stage", -1);
        if (ev == "next_hops" && e.contains("hops") && e["hops"].is_array()) p.next_hops = e["hops"].size();
        if (ev == "train" && e.value("kind", "") == "stepped" && p.stage == 0) {
          const uint64_t i = e.value("iter", uint64_t{0});
          if (!loss.count(i)) {
            loss[i] = e.value("value", 0.0);
            step_at[i] = elapsed();
            if (first_step < 0) first_step = elapsed();
            last_step = elapsed();
            const double per_iter = static_cast<double>(run.microbatches) * run.microbatch_size * run.seq_len;
            std::string replicas;
            for (int s = 1; s <= stages; ++s) replicas += (s > 1 ? " " : "") + std::to_string(live_per_stage()[s]);
            const double per_step = loss.size() > 1 ? (last_step - first_step) / (loss.size() - 1) : 0;
            size_t edges = 0;  // the flows' next-hop links in use, as the live nodes last reported them
            for (const auto& q : procs)
              if (q.running) edges += q.next_hops;
            std::printf("iter %3llu/%lld  loss %.4f (without churn %.4f)  tokens/s %7.0f  replicas per stage [%s]  "
                        "flow links %zu  ETA %s\n",
                        static_cast<unsigned long long>(i + 1), static_cast<long long>(run.iterations), loss[i],
                        i < baseline->losses.size() ? baseline->losses[i] : std::nan(""),
                        per_step > 0 ? per_iter / per_step : 0.0, replicas.c_str(), edges,
                        per_step > 0 ? format_duration(per_step * (run.iterations - loss.size())).c_str() : "?");
            std::fflush(stdout);
          }
        }
        if (ev == "train" && e.value("kind", "") == "joined") {
          churn("node " + std::to_string(p.id) + " imported the state of stage " +
                              std::to_string(p.stage) + " after " + std::to_string(e.value("iter", 0)) +
                              " iterations and serves");
        }
        if (ev == "peer_down" && victim && e.value("peer", uint64_t{0}) == victim->id && victim_died < 0) {
          victim_died = elapsed();
          if (signalled_at >= 0) detected_after = victim_died - signalled_at;
          if (fault == "stop") {
            ++crashes;
            churn("node " + std::to_string(victim->id) + " (hung) declared dead by node " +
                                std::to_string(p.id) + " " + std::to_string(detected_after) + " s after SIGSTOP");
          }
        }
        events[p.id].push_back(std::move(e));
      }
      if (p.running) {
        int status = 0;
        if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
          p.running = false;
          p.status = status;
          if (WIFSIGNALED(status)) {
            ++crashes;
            if (victim_died < 0) victim_died = elapsed();
            churn("node " + std::to_string(p.id) + " (stage " + std::to_string(p.stage) + ") " +
                                describe_exit(status) +
                                (signalled_at >= 0 ? std::string(" by the demo")
                                 : (holder_victim ? " as it started computing a loss" : " in the middle of a backward pass") +
                                       std::string(" (iteration ") + std::to_string(kill_iter) + " or later)"));
          } else if (&p == victim && fault == "term") {
            ++leaves;
            churn("node " + std::to_string(p.id) + " left after SIGTERM (" + describe_exit(status) + ")");
          } else if (WEXITSTATUS(status) != 0) {
            std::printf("  >> node %llu stopped: %s (see %s/node-%llu.log)\n", static_cast<unsigned long long>(p.id),
                        describe_exit(status).c_str(), dir.string().c_str(), static_cast<unsigned long long>(p.id));
          }
        }
      }
      // A hung victim never exits by itself: it is stopped for good once everyone else finished.
      all_done = all_done && (!p.running || (&p == victim && fault == "stop" && victim_died >= 0));
    }
    // The flows may route no backward work to the victim for a while: if it is still alive three iterations
    // after its planned death, it is killed at whatever it is doing.
    if (victim && victim->running && victim_died < 0 && (fault == "kill" || holder_victim) && signalled_at < 0 &&
        loss.size() > kill_iter + 3) {
      signalled_at = elapsed();
      kill(victim->pid, SIGKILL);
      std::printf("  >> node %llu had no such work since iteration %llu: SIGKILL now\n",
                  static_cast<unsigned long long>(victim->id), static_cast<unsigned long long>(kill_iter));
    }
    if (victim && signalled_at < 0 && (fault == "stop" || fault == "term") && loss.size() > kill_iter) {
      signalled_at = elapsed();
      kill(victim->pid, fault == "stop" ? SIGSTOP : SIGTERM);
      std::printf("  >> node %llu sent SIG%s\n", static_cast<unsigned long long>(victim->id), fault == "stop" ? "STOP" : "TERM");
    }
    if (!joiner_started && victim_died >= 0 && elapsed() - victim_died > 1.0) {
      Proc j;
      j.id = 100;
      j.what = "joiner";
      j.args = {"--role", "relay", "--stage", std::to_string(victim_stage), "--seed", seed_at};
      common(j);
      if (launch(j, binary, dir)) {
        churn("node 100 started: joins stage " + std::to_string(victim_stage));
      }
      const uint64_t victim_id = victim ? victim->id : 0;
      procs.push_back(j);  // may move the vector: find the victim again
      victim = nullptr;
      for (auto& q : procs)
        if (q.id == victim_id) victim = &q;
      joiner_started = true;
      all_done = false;
    }
  }
  bool timed_out = false;
  for (auto& p : procs)
    if (p.running) {
      if (!(&p == victim && fault == "stop")) timed_out = true;
      kill(p.pid, SIGKILL);
      waitpid(p.pid, &p.status, 0);
      p.running = false;
    }

  // The ledger from the nodes' logs: per stage and iteration, the contributions of the members that applied it.
  std::map<std::string, uint64_t> counts;
  int joins = 0;
  for (const auto& p : procs)
    for (const auto& e : events[p.id])
      if (e.value("event", "") == "train") {
        const std::string kind = e.value("kind", "");
        ++counts[kind];
        if (kind == "joined") ++joins;
      }
  const LedgerTally ledger = tally_ledger(events, run.microbatches, loss.size());
  const uint64_t lost = ledger.lost, duplicated = ledger.duplicated;
  double max_diff = 0;
  for (const auto& [i, l] : loss)
    if (i < baseline->losses.size()) max_diff = std::max(max_diff, std::abs(l - baseline->losses[i]));
  const bool complete = static_cast<int64_t>(loss.size()) == run.iterations;
  const double seconds = last_step > first_step ? last_step - first_step : 0;
  const double tokens_per_s = loss.size() > 1 && seconds > 0
      ? (loss.size() - 1) * static_cast<double>(run.microbatches) * run.microbatch_size * run.seq_len / seconds : 0;

  json report{{"iterations", loss.size()},
              {"iterations_planned", run.iterations},
              {"final_loss", loss.empty() ? json(nullptr) : json(loss.rbegin()->second)},
              {"baseline_final_loss", baseline->losses.back()},
              {"max_abs_loss_diff_vs_baseline", max_diff},
              {"lost_microbatches", lost},
              {"duplicated_microbatches", duplicated},
              {"fault", o.no_churn ? "none" : fault},
              {"crashes", crashes},
              {"leaves", leaves},
              {"detected_after_s", detected_after},
              {"joins", joins},
              {"tokens_per_s", tokens_per_s},
              {"baseline_tokens_per_s", baseline->seconds > 0 ? run.iterations * static_cast<double>(run.microbatches) *
                                                                    run.microbatch_size * run.seq_len / baseline->seconds : 0},
              {"swarm_seconds", seconds},
              {"timed_out", timed_out},
              {"events", counts},
              {"churn", churn_log}};
  json curve = json::array();
  for (const auto& [i, l] : loss) curve.push_back({{"iteration", i}, {"loss", l}, {"baseline", baseline->losses[i]}});
  report["loss_curve"] = curve;
  json nodes = json::array();
  for (const auto& p : procs) {
    json hops = json::array();  // the flow layer's last choice of next-stage replicas
    for (const auto& e : events[p.id])
      if (e.value("event", "") == "next_hops") hops = e.value("hops", json::array());
    nodes.push_back({{"id", p.id}, {"role", p.what}, {"stage", p.stage}, {"exit", describe_exit(p.status)},
                     {"next_hops", hops}});
  }
  report["nodes"] = nodes;
  std::ofstream(dir / "report.json") << report.dump(2) << '\n';
  {
    std::ofstream csv(dir / "loss.csv");
    csv << "iteration,swarm,without_churn\n";
    for (const auto& [i, l] : loss) csv << i << ',' << l << ',' << baseline->losses[i] << '\n';
  }
  {
    // Throughput per iteration: the tokens of one iteration over the time since the previous one.
    std::ofstream csv(dir / "throughput.csv");
    csv << "iteration,seconds,tokens_per_s\n";
    const double per_iter = static_cast<double>(run.microbatches) * run.microbatch_size * run.seq_len;
    for (auto it = step_at.begin(); it != step_at.end(); ++it) {
      auto prev = it == step_at.begin() ? step_at.end() : std::prev(it);
      const bool rate = prev != step_at.end() && prev->first + 1 == it->first && it->second > prev->second;
      csv << it->first << ',' << it->second << ',' << (rate ? per_iter / (it->second - prev->second) : 0) << '\n';
    }
    std::ofstream churn_csv(dir / "churn.csv");
    churn_csv << "iteration,event\n";
    for (size_t k = 0; k < churn_log.size(); ++k) churn_csv << churn_iter[k] << ",\"" << churn_log[k] << "\"\n";
  }
  const auto plots = plot_report(dir, churn_iter);
  if (!plots) std::printf("(no plots: %s)\n", plots.error().c_str());
  {
    std::ofstream md(dir / "report.md");
    md << "# gwtf demo\n\n| | |\n|---|---|\n| iterations | " << loss.size() << " / " << run.iterations
       << " |\n| final loss | " << (loss.empty() ? std::nan("") : loss.rbegin()->second) << " |\n| without churn | "
       << baseline->losses.back() << " |\n| max abs loss difference | " << max_diff << " |\n| lost / duplicated "
       << "microbatches | " << lost << " / " << duplicated << " |\n| crashes / joins | " << crashes << " / " << joins
       << " |\n| tokens/s | " << tokens_per_s << " |\n\n## Churn\n\n";
    for (const auto& c : churn_log) md << "- " << c << "\n";
    if (plots) md << "\n![loss](loss.png)\n\n![throughput](throughput.png)\n\nDashed lines: churn events.\n";
    md << "\nData: loss.csv, throughput.csv, churn.csv; every node's events: node-<id>.jsonl, its log: "
          "node-<id>.log.\n";
  }

  const bool same = max_diff <= 1e-3;
  // A hang is found by the heartbeat timeout: within it, plus a heartbeat period and the demo's polling.
  const bool detected = fault != "stop" || o.no_churn || (detected_after >= 0 && detected_after <= kPeerTimeout + 1.5);
  if (!detected) std::printf("the hung node was not declared dead within %.1f s of SIGSTOP\n", kPeerTimeout + 1.5);
  // A graceful leave (SIGTERM) hands nothing to redo: the leaver finishes what it holds before it goes.
  const bool graceful = fault != "term" || o.no_churn || counts["redo"] == 0;
  if (!graceful) std::printf("the graceful leave left %llu microbatch(es) to redo\n", static_cast<unsigned long long>(counts["redo"]));
  const bool churned = o.no_churn || ((crashes >= 1 || leaves >= 1) && joins >= 1 && detected && graceful);
  std::printf("\n%s: %zu/%lld iterations, final loss %.4f (without churn %.4f, largest difference %.2e), "
              "%llu lost and %llu duplicated microbatches, %d crash(es), %d join(s), %.0f tokens/s\nreport: %s\n",
              complete && same && lost == 0 && duplicated == 0 && churned ? "done" : "FAILED", loss.size(),
              static_cast<long long>(run.iterations), loss.empty() ? std::nan("") : loss.rbegin()->second,
              baseline->losses.back(), max_diff, static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(duplicated), crashes, joins, tokens_per_s,
              (dir / "report.json").string().c_str());
  if (timed_out) std::printf("the swarm did not finish within %.0f s: stopped (see the node logs)\n", timeout);
  if (!complete || !same || lost || duplicated || !churned) return 1;
  return 0;
}

}  // namespace gwtf::app
