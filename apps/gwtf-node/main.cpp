// gwtf-node: one per host. It joins a swarm through a seed (or founds one), serves the stage the swarm gives it
// — a data holder (data, embedding, head, loss) or a relay stage — and trains until the run's last iteration is
// committed. Its node actor (actors/node_actor) drives the training protocol; compute runs in a detached actor.
#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/chrono.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "actors/node_actor.hpp"
#include "actors/system_config.hpp"
#include "apps/common/logging.hpp"
#include "apps/common/run_config.hpp"
#include "apps/common/tls_settings.hpp"

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
      {"end-backward", ComputeKind::kEndBackward}, {"start-backward", ComputeKind::kStartBackward},
      {"slice", ComputeKind::kSlice},       {"concat", ComputeKind::kConcat}};
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



// gwtf-node's own settings: the [node] section of its config file, and the flags of the same names.
struct NodeSettings {
  std::string listen = "127.0.0.1:0", role = "auto", stage = "auto", events, die_at, http, memory;
  std::vector<std::string> seeds;
  uint64_t id = 0;
  double join_timeout = 30, peer_timeout = 4, leave_timeout = 60;
  uint32_t buffer_budget = 0;
  int threads = 1;
  bool bulk_path = true;
  uint16_t bulk_port = 0;
  int bulk_port_number = 0;  // [node] bulk_port in the file
  int stage_number = 0;  // [node] stage in the file (0: auto)
  gwtf::app::LogOptions log;
  gwtf::app::TlsSettings tls;

  void declare(gwtf::app::ConfigSchema& s) {
    tls.declare(s);
    s.text("node.listen", listen);
    s.texts("node.seeds", seeds, "HOST:PORT strings");
    s.text("node.role", role, {"data", "relay", "auto"});
    s.integer("node.stage", stage_number, 0, 1000);
    s.integer("node.id", id, uint64_t{0}, uint64_t{INT64_MAX});
    s.text("node.events", events);
    s.text("node.http", http);
    s.number("node.join_timeout", join_timeout, 0.1, 86400);
    s.number("node.peer_timeout", peer_timeout, 0.2, 3600);
    s.number("node.leave_timeout", leave_timeout, 0, 86400);
    s.integer("node.buffer_budget", buffer_budget, 0u, 1000000u);
    s.text("node.memory", memory);
    s.integer("node.threads", threads, 1, 256);
    s.boolean("node.bulk_path", bulk_path);
    s.integer("node.bulk_port", bulk_port_number, 0, 65535);
    s.text("node.log_level", log.level, {"trace", "debug", "info", "warn", "error", "critical", "off"});
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gwtf-node — one node of a gwtf training swarm (a data holder or a relay of a pipeline stage)"};
  gwtf::app::RunConfig run;
  NodeSettings node;
  std::string config_file;
  // The file first ([node], [model], [train], [swarm]), then the flags over it.
  if (const auto path = gwtf::app::config_path(argc, argv); !path.empty()) {
    gwtf::app::ConfigSchema schema;
    run.declare(schema);
    node.declare(schema);
    auto loaded = schema.load(path);
    if (loaded) loaded = run.validate();
    if (!loaded) {
      std::fprintf(stderr, "gwtf-node: %s\n", loaded.error().c_str());
      return 2;
    }
    if (node.stage_number > 0) node.stage = std::to_string(node.stage_number);
    node.bulk_port = static_cast<uint16_t>(node.bulk_port_number);
  }
  app.add_option("--config", config_file, "TOML file: [node] (this node's settings, the flags' names with _) and the "
                                          "run's [model], [train], [swarm]; flags override it (docs/config.md "
                                          "lists every key)");
  app.add_option("--listen", node.listen, "HOST:PORT this node accepts peers on (port 0: any free port; a seed needs "
                                          "a known one)")->capture_default_str();
  app.add_option("--seed", node.seeds, "HOST:PORT of a member to join through (repeatable; none: found a new swarm)");
  app.add_option("--role", node.role, "data | relay | auto: a data holder owns data, embedding, head and loss; a "
                                      "relay serves a block stage; auto takes what the swarm lacks")
      ->check(CLI::IsMember({"data", "relay", "auto"}))->capture_default_str();
  app.add_option("--stage", node.stage, "N | auto: the relay stage to serve (auto: the one that limits the flow)")
      ->capture_default_str();
  app.add_option("--id", node.id, "Node id (default: derived from the listen address and the process id; with --tls "
                                  "always from the certificate)");
  node.tls.add_flags(app);
  app.add_option("--events", node.events, "Append the node's JSON-lines event log to this file");
  app.add_option("--http", node.http, "HOST:PORT of this node's status server: /metrics (Prometheus), /api/node, "
                                      "/api/swarm and the live swarm page at / (port 0: any free port; default: "
                                      "none). Members reach each other's at their --listen host");
  app.add_option("--join-timeout", node.join_timeout, "Seconds to keep trying the seeds before giving up")
      ->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  app.add_option("--peer-timeout", node.peer_timeout, "Seconds of silence (no heartbeat) after which a peer is "
                                                      "taken for dead (a killed process is noticed at once)")
      ->capture_default_str()->check(CLI::Range(0.2, 3600.0));
  app.add_option("--leave-timeout", node.leave_timeout,
                 "On SIGTERM/SIGINT the node leaves gracefully: it takes no new work, finishes what it holds and goes "
                 "once that is committed; after this many seconds it goes anyway. A second signal: at once")
      ->capture_default_str()->check(CLI::Range(0.0, 86400.0));
  app.add_option("--buffer-budget", node.buffer_budget,
                 "Relays: the most microbatches this node keeps recovery buffers for until their iteration commits "
                 "(its memory for them over one microbatch's boundary tensors); beyond it new work goes to another "
                 "replica, and only when every replica is full beyond the budget. 0: no limit")
      ->capture_default_str()->check(CLI::Range(0u, 1000000u));
  app.add_option("--memory", node.memory,
                 "Relays: the memory this node gives the swarm (e.g. 4GiB, 512MiB, bytes). Once its stage is known, "
                 "the flows it offers and the microbatches it keeps recovery buffers for derive from it and the "
                 "stage's weights, optimizer state and activations (docs/operations.md); too little for the stage "
                 "is an error. Default: 4 flows, buffers without a limit");
  app.add_option("--die-at", node.die_at, "Fault injection: kill this process (SIGKILL) when it starts KIND:ITER:MB "
                                          "(ITER+ for that or a later iteration, MB * for any), "
                                          "KIND one of forward, backward, reduce, apply, snapshot, start-forward, "
                                          "end-backward, start-backward, slice, concat");
  app.add_option("--bulk-path", node.bulk_path,
                 "Tensors between nodes on connections of their own beside the control connection (a port of its "
                 "own on the --listen host; TLS as the rest in a TLS swarm): heartbeats never wait behind a tensor. "
                 "false: everything on the control connection")
      ->capture_default_str();
  app.add_option("--bulk-port", node.bulk_port, "The bulk data path's TCP port on the --listen host (open it to the "
                                                "other members as the --listen port; 0: any free port)")
      ->capture_default_str();
  app.add_option("--threads", node.threads, "LibTorch intra-op threads")->capture_default_str()->check(CLI::Range(1, 256));
  run.add_flags(app);
  gwtf::app::add_log_flags(app, node.log);

  CLI11_PARSE(app, argc, argv);
  try {
    gwtf::app::setup_logging(node.log, "gwtf-node");
  } catch (const CLI::Error& e) {
    return app.exit(e);
  }
  if (auto ok = run.validate(); !ok) {
    spdlog::error("{}", ok.error());
    return 2;
  }
  gwtf::app::set_compute_threads(node.threads);

  auto corpus = gwtf::app::load_corpus(run);
  if (!corpus) {
    spdlog::error("{}", corpus.error());
    return 2;
  }
  gwtf::NodeOptions opt = gwtf::app::node_options(run, corpus->train);
  if (!parse_endpoint(node.listen, opt.host, opt.port, true)) {
    spdlog::error("--listen '{}' is not HOST:PORT (port 0..65535)", node.listen);
    return 2;
  }
  const uint16_t listen_port = opt.port;
  for (const auto& s : node.seeds) {
    std::string host;
    uint16_t port = 0;
    if (!parse_endpoint(s, host, port, false)) {
      spdlog::error("--seed '{}' is not HOST:PORT (port 1..65535)", s);
      return 2;
    }
    opt.seeds.emplace_back(host, port);
  }
  opt.role = node.role == "data" ? gwtf::train::Role::kData : node.role == "relay" ? gwtf::train::Role::kRelay : gwtf::train::Role::kAny;
  if (node.stage != "auto") {
    try {
      const long s = std::stol(node.stage);
      if (s < 1 || s > static_cast<long>(run.replicas.size())) throw std::out_of_range("stage");
      opt.stage = static_cast<gwtf::train::Stage>(s);
      if (opt.role == gwtf::train::Role::kAny) opt.role = gwtf::train::Role::kRelay;
    } catch (const std::exception&) {
      spdlog::error("--stage '{}' must be auto or a relay stage 1..{}", node.stage, run.replicas.size());
      return 2;
    }
  }
  if (!node.die_at.empty()) {
    opt.die_at = parse_die_at(node.die_at);
    if (!opt.die_at) {
      spdlog::error("--die-at '{}' is not KIND:ITER:MB (e.g. backward:3:1)", node.die_at);
      return 2;
    }
  }
  if (!node.http.empty()) {
    std::pair<std::string, uint16_t> http;
    if (!parse_endpoint(node.http, http.first, http.second, true)) {
      spdlog::error("--http '{}' is not HOST:PORT (port 0..65535)", node.http);
      return 2;
    }
    opt.http = http;
  }
  opt.events_path = node.events;
  opt.join_timeout = node.join_timeout;

  opt.leave_timeout = node.leave_timeout;
  opt.bulk_path = node.bulk_path;
  opt.bulk_port = node.bulk_port;
  opt.params.buffer_budget = node.buffer_budget;  // this node's own memory: not part of the run's configuration
  if (!node.memory.empty()) {
    std::string bytes = node.memory;
    try {
      if (const std::string problem = CLI::AsSizeValue(true)(bytes); !problem.empty())
        throw std::invalid_argument(problem);
      opt.memory_bytes = std::stoull(bytes);
    } catch (const std::exception&) {
      spdlog::error("--memory '{}' is not a size (e.g. 4GiB, 512MiB, 1000000)", node.memory);
      return 2;
    }
    if (opt.memory_bytes == 0) {
      spdlog::error("--memory must be more than 0 bytes");
      return 2;
    }
  }

  auto tls = node.tls.load(opt.host, opt.seeds);
  if (!tls) {
    spdlog::error("{}", tls.error());
    return 2;
  }
  if (tls.value() && node.id != 0) {
    spdlog::error("--id {} with --tls: in a TLS swarm the node id derives from the certificate", node.id);
    return 2;
  }
  opt.tls = tls.value();
  if (opt.tls)
    spdlog::info("TLS swarm '{}': this node is '{}' (certificate valid until {})", opt.tls->ca.swarm(),
                 opt.tls->name(), fmt::format("{:%Y-%m-%d}", fmt::gmtime(opt.tls->credentials.info().not_after)));

  std::signal(SIGTERM, [](int) { ++gwtf::g_leave_requests; });
  std::signal(SIGINT, [](int) { ++gwtf::g_leave_requests; });

  gwtf::RuntimeOptions runtime;
  runtime.connection_timeout = std::chrono::milliseconds(static_cast<int64_t>(node.peer_timeout * 1000));
  runtime.heartbeat_interval = std::min(runtime.connection_timeout / 4, std::chrono::milliseconds(250));
  runtime.tls = opt.tls;
  gwtf::SystemConfig cfg{runtime};
  caf::actor_system sys{cfg};
  auto outcome = std::make_shared<gwtf::NodeOutcome>();
  opt.id = node.id;
  auto started = gwtf::start_node(sys, opt, listen_port, outcome);
  if (!started) {
    spdlog::error("{}", started.error());
    return 2;
  }
  spdlog::info("node {} listening on {}:{} (config {:016x})", started->id, opt.host, started->port, opt.config_hash);
  sys.await_all_actors_done();
  // Every actor is done and every log line is flushed (the event log flushes each line). The actor system is not
  // destroyed: CAF 0.17's middleman can hang in its shutdown when a peer's host vanished without a FIN (its
  // multiplexer thread waits in epoll for ever; seen in tests/net/fault_bed_test.sh kill-host).
  spdlog::shutdown();
  std::fflush(nullptr);
  std::_Exit(outcome->exit_code);
}
