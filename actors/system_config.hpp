// SystemConfig: the CAF actor-system configuration every gwtf process uses.
// It registers the one wire payload type (Frame), loads the middleman, bounds CAF's threads for small hosts and
// schedules them from one shared queue (no polling workers), and always enables the middleman's heartbeats: CAF
// 0.17 never notices a hung peer, a dead host or a partition without them, and they must be on for every node, or
// a node with a timeout drops healthy idle peers that send no heartbeats (docs/build.md,
// ../shared/notes/stack.md §3). In a TLS swarm it loads CAF's OpenSSL module with the node's (already checked)
// files.
#pragma once

#include <caf/actor_system_config.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

#include "actors/peer_auth.hpp"

namespace gwtf {

struct RuntimeOptions {
  size_t scheduler_threads = 2;  // CAF workers; compute runs in detached actors on top
  std::chrono::milliseconds heartbeat_interval{100};
  std::chrono::milliseconds connection_timeout{1000};  // a silent peer is declared down after this
  // Set: every connection is mutual TLS with the swarm CA (CAF's OpenSSL module). Null: plain text, loopback only.
  std::shared_ptr<const SwarmTls> tls;
};

class SystemConfig : public caf::actor_system_config {
 public:
  explicit SystemConfig(const RuntimeOptions& options = {});
};

}  // namespace gwtf
