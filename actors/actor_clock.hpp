// Time as an actor sees it: its actor system's clock — real time in a running node, the test coordinator's
// virtual time in deterministic tests (so a test that runs a swarm on CAF's test coordinator replays exactly).
#pragma once

#include <caf/actor_clock.hpp>
#include <caf/local_actor.hpp>

#include <chrono>

namespace gwtf {

inline double seconds_since(const caf::local_actor* self, caf::actor_clock::time_point t0) {
  return std::chrono::duration<double>(self->clock().now() - t0).count();
}

}  // namespace gwtf
