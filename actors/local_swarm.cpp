#include "actors/local_swarm.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

namespace gwtf {

void SwarmEvents::add(uint64_t node, nlohmann::json e) {
  std::lock_guard<std::mutex> lock(mu_);
  events_[node].push_back(std::move(e));
  cv_.notify_all();
}

bool SwarmEvents::wait(const std::function<bool(const std::map<uint64_t, std::vector<nlohmann::json>>&)>& done,
                       std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, limit, [&] { return done(events_); });
}

bool SwarmEvents::saw(uint64_t node, const std::function<bool(const nlohmann::json&)>& what) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = events_.find(node);
  if (it == events_.end()) return false;
  for (const auto& e : it->second)
    if (what(e)) return true;
  return false;
}

std::vector<nlohmann::json> SwarmEvents::of(uint64_t node) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = events_.find(node);
  return it == events_.end() ? std::vector<nlohmann::json>{} : it->second;
}

std::map<uint64_t, std::vector<nlohmann::json>> SwarmEvents::all() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

bool is_event(const nlohmann::json& e, const char* event, const char* kind) {
  return e.value("event", "") == event && (!kind || e.value("kind", "") == kind);
}

namespace {

caf::behavior observer_actor(caf::event_based_actor* self, std::shared_ptr<SwarmEvents> events, caf::actor also) {
  return {[=](NodeEvent& e) {
    events->add(e.node, nlohmann::json::parse(e.json));
    if (also) self->send(also, e);
  }};
}

// Records the node actor's end as an event of its own ("actor_down": killed, or ended without an exit event).
caf::behavior watch_actor(caf::event_based_actor* self, caf::actor node, std::shared_ptr<SwarmEvents> events,
                          uint64_t id) {
  self->monitor(node);
  self->set_down_handler([=](caf::down_msg& d) {
    events->add(id, {{"event", "actor_down"}, {"node", id},
                     {"reason", d.reason ? self->system().render(d.reason) : std::string("normal")}});
    self->quit();
  });
  return {[](caf::exit_msg&) {}};  // an actor without a behavior would end at once
}

}  // namespace

LocalSwarm::~LocalSwarm() {
  for (auto& n : nodes_) {
    caf::anon_send_exit(n.observer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(n.watcher, caf::exit_reason::user_shutdown);
    if (!n.killed) caf::anon_send_exit(n.actor, caf::exit_reason::user_shutdown);
  }
  nodes_.clear();  // each system waits for its actors
}

Result<uint16_t, std::string> LocalSwarm::start(NodeOptions options) {
  Node n;
  n.id = options.id;
  RuntimeOptions runtime;
  runtime.tls = options.tls;  // a TLS node's system loads CAF's OpenSSL module with its files
  n.config = std::make_unique<SystemConfig>(runtime);
  n.system = std::make_unique<caf::actor_system>(*n.config);
  n.observer = n.system->spawn(observer_actor, events, forward_to);
  options.observer = n.observer;
  if (options.seeds.empty() && !nodes_.empty()) options.seeds = {{"127.0.0.1", nodes_.front().port}};
  auto started = start_node(*n.system, std::move(options), 0, std::make_shared<NodeOutcome>());
  if (!started) {
    caf::anon_send_exit(n.observer, caf::exit_reason::user_shutdown);
    return Err{started.error()};
  }
  n.actor = started->actor;
  n.port = started->port;
  if (n.id == 0) n.id = started->id;
  n.watcher = n.system->spawn(watch_actor, n.actor, events, n.id);  // kept: an actor nobody holds is cleaned up
  nodes_.push_back(std::move(n));
  return nodes_.back().port;
}

void LocalSwarm::kill(uint64_t id) {
  for (auto& n : nodes_)
    if (n.id == id && !n.killed) {
      n.killed = true;
      caf::anon_send_exit(n.actor, caf::exit_reason::kill);
    }
}

bool LocalSwarm::wait_all_exited(std::chrono::milliseconds limit) {
  std::vector<uint64_t> live;
  for (const auto& n : nodes_)
    if (!n.killed) live.push_back(n.id);
  return events->wait(
      [&](const std::map<uint64_t, std::vector<nlohmann::json>>& all) {
        for (uint64_t id : live) {
          auto it = all.find(id);
          if (it == all.end()) return false;
          bool exited = false;
          // A node that ends in order says so ("exit", which may arrive after its actor's end); a killed one
          // only ends.
          for (const auto& e : it->second)
            exited = exited || is_event(e, "exit") || (is_event(e, "actor_down") && e.value("reason", "") != "normal");
          if (!exited) return false;
        }
        return true;
      },
      limit);
}

// ---- DeterministicSwarm -----------------------------------------------------------------------------------------

namespace {

using Ports = std::map<uint16_t, caf::actor>;

// Answers a node's connect request as CAF's middleman would, with the node actor "published" at that port.
caf::behavior directory_actor(caf::event_based_actor* self, std::shared_ptr<Ports> ports) {
  return {[=](caf::connect_atom, const std::string&,
              uint16_t port) -> caf::result<caf::node_id, caf::strong_actor_ptr, std::set<std::string>> {
    auto it = ports->find(port);
    if (it == ports->end()) return caf::make_error(caf::sec::cannot_connect_to_node);
    return {self->node(), caf::actor_cast<caf::strong_actor_ptr>(it->second), std::set<std::string>{}};
  }};
}

struct TestCoordinatorConfig : caf::actor_system_config {
  TestCoordinatorConfig() { set("scheduler.policy", caf::atom("testing")); }
};

}  // namespace

struct DeterministicSwarm::Impl {
  TestCoordinatorConfig config;
  caf::actor_system system{config};
  caf::scheduler::test_coordinator& sched = dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler());
  caf::actor_clock::time_point t0 = system.clock().now();
  std::shared_ptr<Ports> ports = std::make_shared<Ports>();
  caf::actor directory = system.spawn(directory_actor, ports);
  caf::actor observer;
  struct Node {
    uint64_t id;
    caf::actor actor, watcher;
    bool killed = false;
  };
  std::vector<Node> nodes;
};

DeterministicSwarm::DeterministicSwarm() : impl_(std::make_unique<Impl>()) {
  impl_->observer = impl_->system.spawn(observer_actor, events, caf::actor{});
}

DeterministicSwarm::~DeterministicSwarm() {
  for (auto& n : impl_->nodes) {
    caf::anon_send_exit(n.watcher, caf::exit_reason::user_shutdown);
    if (!n.killed) caf::anon_send_exit(n.actor, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(impl_->observer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(impl_->directory, caf::exit_reason::user_shutdown);
  impl_->sched.run();
  impl_->nodes.clear();
}

void DeterministicSwarm::start(NodeOptions options) {
  const uint64_t id = options.id;
  const auto port = static_cast<uint16_t>(1000 + impl_->nodes.size());
  options.directory = impl_->directory;
  options.observer = impl_->observer;
  options.detached_compute = false;
  options.host = "in-process";
  if (options.seeds.empty() && !impl_->nodes.empty()) options.seeds = {{"in-process", 1000}};
  auto node = impl_->system.spawn<caf::lazy_init>(node_actor, std::move(options), std::make_shared<NodeOutcome>());
  (*impl_->ports)[port] = node;
  caf::anon_send(node, caf::publish_atom::value, port, id);
  impl_->nodes.push_back({id, node, impl_->system.spawn(watch_actor, node, events, id)});
}

void DeterministicSwarm::kill(uint64_t id) {
  for (auto& n : impl_->nodes)
    if (n.id == id && !n.killed) {
      n.killed = true;
      caf::anon_send_exit(n.actor, caf::exit_reason::kill);
    }
}

double DeterministicSwarm::now() const {
  return std::chrono::duration<double>(impl_->system.clock().now() - impl_->t0).count();
}

bool DeterministicSwarm::run(double limit_s, const std::function<bool()>& until) {
  auto all_ended = [&] {
    for (const auto& n : impl_->nodes)
      if (!events->saw(n.id, [](const nlohmann::json& e) { return is_event(e, "actor_down"); })) return false;
    return true;
  };
  for (;;) {
    impl_->sched.run();
    if (all_ended()) return true;
    if ((until && until()) || now() > limit_s || !impl_->sched.trigger_timeout()) return false;
  }
}

}  // namespace gwtf
