// The node actor: one per gwtf-node process, the switchboard between the network and the kernels. It admits
// itself to a swarm (kernels/train/roster: hello to a seed, or the seed itself), connects to and monitors every
// member, and drives its kernels/train/TrainNode — frames in, messages out, a tick every `tick` seconds, CAF
// down messages as "peer down", compute handed to its compute actor — and its flow controller (flow_actor: the
// flow protocol's messages, membership and measured link costs in; next hops for the training protocol out).
// Heartbeats to every peer measure round trips for the link costs. It decides nothing itself.
#pragma once

#include <caf/stateful_actor.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/compute_actor.hpp"
#include "actors/peer_auth.hpp"
#include "actors/status_server.hpp"
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
  double leave_timeout = 60;   // a graceful leave not drained within this: go anyway (the others redo the rest)
  double linger = 2;           // after the last iteration committed: stay this long for stragglers' acks
  uint32_t flow_capacity = 4;  // relays: concurrent flows this node offers (the flow layer's node capacity)
  // Relays: the memory this node gives the swarm. Once its stage is known, the flow capacity (at most
  // flow_capacity) and the recovery-buffer budget (unless params.buffer_budget is set) derive from it and the
  // stage's footprint (kernels/model/memory_plan). 0: flow_capacity as set, buffers without a limit.
  uint64_t memory_bytes = 0;
  double flow_period = 0.5;    // seconds per round of the flow protocol
  // The flow layer's initial annealing temperature, in units of the node's mean link cost. The simulator's 1.5
  // cools over hundreds of rounds; here a round is half a second of a live swarm, and at 1.5 a move that makes a
  // path half a mean link slower passes 7 times in 10: on the fault bed the data holder kept routing through a
  // replica across the world for 25-60% of a 20 s run. At 0.15: 5-30%.
  double flow_temperature = 0.15;
  double heartbeat = 1.0;      // seconds between heartbeats to each peer (they measure the links' round trips)
  caf::actor observer;         // when set, gets every event of the log as a NodeEvent (apps and tests watch with it)
  // The HTTP status server (/metrics, /api/node, /api/swarm, the swarm page; actors/status_server); none: not
  // served. Port 0: any free port. Members fetch each other's status at their `host` and this server's port, so
  // bind it to that address or to 0.0.0.0.
  std::optional<std::pair<std::string, uint16_t>> http;
  // A TLS swarm: connections through CAF's OpenSSL module (the actor system must have loaded it: SystemConfig with
  // the same `tls`), the node id derived from the certificate, and every peer proves its id before it is heard.
  // Null: plain text (loopback development only; gwtf-node refuses it elsewhere).
  std::shared_ptr<const SwarmTls> tls;
  // A swarm inside one actor system (deterministic tests on CAF's test coordinator): connections to HOST:PORT are
  // asked of this actor — it answers (connect_atom, host, port) as CAF's middleman does — instead of the network.
  caf::actor directory;
  // The compute actor in its own thread (a long forward never blocks the scheduler); false: on the scheduler, so
  // that a test coordinator runs everything on one thread.
  bool detached_compute = true;
  // Tensors (training messages of 16 KiB and more) on the bulk data path, connections beside CAF's
  // (actors/bulk_path.hpp); false, or a swarm inside one actor system: everything on CAF.
  bool bulk_path = true;
  uint16_t bulk_port = 0;  // the bulk data path's port on `host` (0: any free port)
  // Filled with the stage's parameters when the node's compute actor ends (tests compare them across runs).
  std::shared_ptr<ParameterSink> parameters;
};

// One line of the node's event log, live: {"event": ..., "node": ..., "t": ..., fields...} as JSON text.
struct NodeEvent {
  uint64_t node = 0;
  std::string json;
};

// What main reads after the actor system is done.
struct NodeOutcome {
  std::atomic<int> exit_code{0};
};

// Counted by a SIGTERM/SIGINT handler. The first: a graceful leave — the node takes no new work, finishes what it
// holds and goes once that is committed (nobody redoes anything), or after NodeOptions::leave_timeout. A second:
// it goes at its next tick (its peers redo what it owed).
extern std::atomic<int> g_leave_requests;

// The node actor starts when told its published port and id: (caf::publish_atom, uint16_t port, uint64_t id).
caf::behavior node_actor(caf::event_based_actor* self, NodeOptions options, std::shared_ptr<NodeOutcome> outcome);

// Spawns a node actor in `sys`, publishes it on options.host:`listen_port` (0: any free port) and starts it.
// `id` 0: derived from the address and the process id; in a TLS swarm always from the certificate (options.tls). Returns the actor and its port, or why it cannot listen.
struct StartedNode {
  caf::actor actor;
  uint16_t port = 0;
  train::NodeId id = 0;
};
Result<StartedNode, std::string> start_node(caf::actor_system& sys, NodeOptions options, uint16_t listen_port,
                                            std::shared_ptr<NodeOutcome> outcome);

}  // namespace gwtf

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::NodeEvent)
