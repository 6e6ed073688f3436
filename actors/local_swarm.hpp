// A swarm inside one process: one CAF actor system per node (each a distinct CAF node) over real loopback
// sockets, exactly as gwtf-node processes talk, plus an observer that records every node's events. For
// fault-injection tests, benchmarks and trainer apps that compose gwtf's actors with their own
// (docs/custom-trainer.md).
#pragma once

#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "actors/node_actor.hpp"
#include "actors/system_config.hpp"

namespace gwtf {

// Every node's events as its observer received them (the lines of its event log, parsed).
class SwarmEvents {
 public:
  void add(uint64_t node, nlohmann::json e);  // also "actor_down" when a node's actor ended
  // Waits until `done(events)` holds or `limit` passes; false on timeout.
  bool wait(const std::function<bool(const std::map<uint64_t, std::vector<nlohmann::json>>&)>& done,
            std::chrono::milliseconds limit);
  bool saw(uint64_t node, const std::function<bool(const nlohmann::json&)>& what) const;
  std::vector<nlohmann::json> of(uint64_t node) const;
  std::map<uint64_t, std::vector<nlohmann::json>> all() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::vector<nlohmann::json>> events_;
};

// e.value("event") == event and, when given, e.value("kind") == kind.
bool is_event(const nlohmann::json& e, const char* event, const char* kind = nullptr);

class LocalSwarm {
 public:
  LocalSwarm() = default;
  LocalSwarm(const LocalSwarm&) = delete;
  LocalSwarm& operator=(const LocalSwarm&) = delete;
  ~LocalSwarm();  // stops every node still running

  // Starts a node with `options` in a new actor system, observed by this swarm: its events go to `events` and,
  // when set, to `forward_to` (an app's own observer; options.observer is replaced). The first node founds the swarm; later ones join through
  // the first one's port unless options.seeds is set. Returns the node's port, or why it could not listen.
  Result<uint16_t, std::string> start(NodeOptions options);
  // Kills node `id`'s actor (exit reason kill), as a crash.
  void kill(uint64_t id);
  // Every node started reported its exit or its actor ended (the "actor_down" event this swarm adds).
  bool wait_all_exited(std::chrono::milliseconds limit);

  std::shared_ptr<SwarmEvents> events = std::make_shared<SwarmEvents>();
  caf::actor forward_to;  // set before start()

 private:
  struct Node {
    uint64_t id = 0;
    std::unique_ptr<SystemConfig> config;
    std::unique_ptr<caf::actor_system> system;
    caf::actor observer, watcher, actor;
    uint16_t port = 0;
    bool killed = false;
  };
  std::vector<Node> nodes_;
};

// A swarm inside ONE actor system on CAF's deterministic test coordinator: every node actor, flow controller and
// compute actor runs on the caller's thread, time is virtual (actors/actor_clock.hpp), and no socket is opened —
// connections go through a directory actor. The same nodes and the same kills give the same run, message for
// message, so a test can place a failure exactly (DieAt with actor_only, or kill() between steps).
class DeterministicSwarm {
 public:
  DeterministicSwarm();
  DeterministicSwarm(const DeterministicSwarm&) = delete;
  DeterministicSwarm& operator=(const DeterministicSwarm&) = delete;
  ~DeterministicSwarm();

  // Starts a node: options.id must be set and unique; the first node founds the swarm, later ones join through
  // it. The options' directory, observer and detached_compute are set here.
  void start(NodeOptions options);
  void kill(uint64_t id);  // its actor ends with exit reason kill, as a crash
  // Runs the swarm — every job, then the next timer, in virtual time — until every node started has ended,
  // `until` holds (checked between timers), or `limit_s` virtual seconds passed. True: every node ended.
  bool run(double limit_s, const std::function<bool()>& until = {});
  double now() const;  // virtual seconds since the swarm began

  std::shared_ptr<SwarmEvents> events = std::make_shared<SwarmEvents>();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gwtf
