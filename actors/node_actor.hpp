// The node actor: one per gwtf-node process, the switchboard between the network and the kernels. It admits
// itself to a swarm (kernels/train/roster: hello to a seed, or the seed itself), connects to and monitors every
// member, and drives its kernels/train/TrainNode — frames in, messages out, a tick every `tick` seconds, CAF
// down messages as "peer down", compute handed to its compute actor. It decides nothing itself.
#pragma once

#include <caf/stateful_actor.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/compute_actor.hpp"
#include "kernels/train/roster.hpp"
#include "kernels/train/train_node.hpp"

namespace gwtf {

struct NodeOptions {
  train::NodeId id = 0;
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // the published port
  std::vector<std::pair<std::string, uint16_t>> seeds;  // empty: this node is the seed of a new swarm
  train::Role role = train::Role::kAny;
  train::Stage stage = 0;  // relay: the wanted stage, 0 for any
  train::Layout layout;
  train::TrainParams params;
  uint64_t config_hash = 0;
  uint64_t swarm_id = 0;
  model::TrainComputeConfig compute;  // its stage is filled in once the roster places the node
  std::optional<DieAt> die_at;
  std::string events_path;  // JSON-lines event log (empty: none)
  double tick = 0.1;           // seconds between the protocol's ticks
  double join_timeout = 30;    // no seed answered within this: give up
  double linger = 2;           // after the last iteration committed: stay this long for stragglers' acks
};

// What main reads after the actor system is done.
struct NodeOutcome {
  std::atomic<int> exit_code{0};
};

// Set by a SIGTERM handler: the node leaves at its next tick (its peers redo what it owed).
extern std::atomic<bool> g_leave_requested;

caf::behavior node_actor(caf::event_based_actor* self, NodeOptions options, std::shared_ptr<NodeOutcome> outcome);

}  // namespace gwtf
