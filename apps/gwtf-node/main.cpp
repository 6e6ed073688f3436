// gwtf-node: one per host. It joins a swarm through a seed (or founds one), serves the stage the swarm gives it
// — a data holder (data, embedding, head, loss) or a relay stage — and trains until the run's last iteration is
// committed. Its node actor (actors/node_actor) drives the training protocol; compute runs in a detached actor.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
#include <string>

#include "actors/node_actor.hpp"
#include "actors/system_config.hpp"
#include "apps/common/logging.hpp"
#include "apps/common/run_config.hpp"

namespace {

using gwtf::train::ComputeKind;

// HOST:PORT; port 0 allowed only where `allow_zero`.
bool parse_endpoint(const std::string& s, std::string& host, uint16_t& port, bool allow_zero) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  try {
    size_t used = 0;
    const long p = std::stol(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1 || p < (allow_zero ? 0 : 1) || p > 65535) return false;
    host = s.substr(0, colon);
    port = static_cast<uint16_t>(p);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::optional<gwtf::DieAt> parse_die_at(const std::string& s) {
  static const std::pair<const char*, ComputeKind> kinds[] = {
      {"forward", ComputeKind::kForward},   {"backward", ComputeKind::kBackward},
      {"reduce", ComputeKind::kReduce},     {"apply", ComputeKind::kApply},
      {"snapshot", ComputeKind::kSnapshot}, {"start-forward", ComputeKind::kStartForward},
      {"end-backward", ComputeKind::kEndBackward}, {"start-backward", ComputeKind::kStartBackward}};
  auto a = s.find(':'), b = s.rfind(':');
  if (a == std::string::npos || a == b) return std::nullopt;
  gwtf::DieAt d;
  const std::string kind = s.substr(0, a);
  bool found = false;
  for (const auto& [name, k] : kinds)
    if (kind == name) d.kind = k, found = true;
  if (!found) return std::nullopt;
  try {
    std::string iter = s.substr(a + 1, b - a - 1);
    if (!iter.empty() && iter.back() == '+') {
      d.or_later = true;
      iter.pop_back();
    }
    size_t used = 0;
    d.iter = std::stoull(iter, &used);
    if (used != iter.size()) return std::nullopt;
    const std::string mb = s.substr(b + 1);
    d.mb = mb == "*" ? -1 : static_cast<int64_t>(std::stoul(mb));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return d;
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gwtf-node — one node of a gwtf training swarm (a data holder or a relay of a pipeline stage)"};
  gwtf::app::RunConfig run;
  std::string config_file, listen = "127.0.0.1:0", role = "auto", stage = "auto", events, die_at;
  std::vector<std::string> seeds;
  uint64_t id = 0;
  double join_timeout = 30, peer_timeout = 4;
  int threads = 1;
  gwtf::app::LogOptions log;
  app.add_option("--config", config_file, "TOML file with the run's configuration ([model], [train], [swarm]); "
                                          "flags override it (docs/runtime.md lists every key)");
  app.add_option("--listen", listen, "HOST:PORT this node accepts peers on (port 0: any free port; a seed needs a "
                                     "known one)")->capture_default_str();
  app.add_option("--seed", seeds, "HOST:PORT of a member to join through (repeatable; none: found a new swarm)");
  app.add_option("--role", role, "data | relay | auto: a data holder owns data, embedding, head and loss; a relay "
                                 "serves a block stage; auto takes what the swarm lacks")
      ->check(CLI::IsMember({"data", "relay", "auto"}))->capture_default_str();
  app.add_option("--stage", stage, "N | auto: the relay stage to serve (auto: the one that limits the flow)")
      ->capture_default_str();
  app.add_option("--id", id, "Node id (default: derived from the listen address and the process id)");
  app.add_option("--events", events, "Append the node's JSON-lines event log to this file");
  app.add_option("--join-timeout", join_timeout, "Seconds to keep trying the seeds before giving up")
      ->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  app.add_option("--peer-timeout", peer_timeout, "Seconds of silence (no heartbeat) after which a peer is taken "
                                                 "for dead (a killed process is noticed at once)")
      ->capture_default_str()->check(CLI::Range(0.2, 3600.0));
  app.add_option("--die-at", die_at, "Fault injection: kill this process (SIGKILL) when it starts KIND:ITER:MB (ITER+ for that or a later "
                                     "iteration, MB * for any), "
                                     "KIND one of forward, backward, reduce, apply, snapshot, start-forward, "
                                     "end-backward, start-backward");
  app.add_option("--threads", threads, "LibTorch intra-op threads")->capture_default_str()->check(CLI::Range(1, 256));
  run.add_flags(app);
  gwtf::app::add_log_flags(app, log);

  // The file first, then the flags over it.
  for (int k = 1; k + 1 < argc; ++k)
    if (std::strcmp(argv[k], "--config") == 0) config_file = argv[k + 1];
  for (int k = 1; k < argc; ++k)
    if (std::strncmp(argv[k], "--config=", 9) == 0) config_file = argv[k] + 9;
  if (!config_file.empty()) {
    if (auto loaded = run.load_toml(config_file); !loaded) {
      std::fprintf(stderr, "gwtf-node: %s\n", loaded.error().c_str());
      return 2;
    }
  }
  CLI11_PARSE(app, argc, argv);
  try {
    gwtf::app::setup_logging(log, "gwtf-node");
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  if (auto ok = run.validate(); !ok) {
    spdlog::error("{}", ok.error());
    return 2;
  }
  gwtf::app::set_compute_threads(threads);

  auto corpus = gwtf::app::load_corpus(run);
  if (!corpus) {
    spdlog::error("{}", corpus.error());
    return 2;
  }
  gwtf::NodeOptions opt = gwtf::app::node_options(run, corpus->train);
  if (!parse_endpoint(listen, opt.host, opt.port, true)) {
    spdlog::error("--listen '{}' is not HOST:PORT (port 0..65535)", listen);
    return 2;
  }
  const uint16_t listen_port = opt.port;
  for (const auto& s : seeds) {
    std::string host;
    uint16_t port = 0;
    if (!parse_endpoint(s, host, port, false)) {
      spdlog::error("--seed '{}' is not HOST:PORT (port 1..65535)", s);
      return 2;
    }
    opt.seeds.emplace_back(host, port);
  }
  opt.role = role == "data" ? gwtf::train::Role::kData : role == "relay" ? gwtf::train::Role::kRelay : gwtf::train::Role::kAny;
  if (stage != "auto") {
    try {
      const long s = std::stol(stage);
      if (s < 1 || s > static_cast<long>(run.replicas.size())) throw std::out_of_range("stage");
      opt.stage = static_cast<gwtf::train::Stage>(s);
      if (opt.role == gwtf::train::Role::kAny) opt.role = gwtf::train::Role::kRelay;
    } catch (const std::exception&) {
      spdlog::error("--stage '{}' must be auto or a relay stage 1..{}", stage, run.replicas.size());
      return 2;
    }
  }
  if (!die_at.empty()) {
    opt.die_at = parse_die_at(die_at);
    if (!opt.die_at) {
      spdlog::error("--die-at '{}' is not KIND:ITER:MB (e.g. backward:3:1)", die_at);
      return 2;
    }
  }
  opt.events_path = events;
  opt.join_timeout = join_timeout;

  std::signal(SIGTERM, [](int) { gwtf::g_leave_requested = true; });
  std::signal(SIGINT, [](int) { gwtf::g_leave_requested = true; });

  gwtf::RuntimeOptions runtime;
  runtime.connection_timeout = std::chrono::milliseconds(static_cast<int64_t>(peer_timeout * 1000));
  runtime.heartbeat_interval = std::min(runtime.connection_timeout / 4, std::chrono::milliseconds(250));
  gwtf::SystemConfig cfg{runtime};
  caf::actor_system sys{cfg};
  auto outcome = std::make_shared<gwtf::NodeOutcome>();
  opt.id = id;
  auto node = gwtf::start_node(sys, opt, listen_port, outcome);
  if (!node) {
    spdlog::error("{}", node.error());
    return 2;
  }
  spdlog::info("node {} listening on {}:{} (config {:016x})", node->id, opt.host, node->port, opt.config_hash);
  sys.await_all_actors_done();
  return outcome->exit_code;
}
