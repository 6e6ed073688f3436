// The flow controller: a node's side of the decentralized flow protocol (kernels/flow/FlowNode) as an actor. Its
// node actor is its only door to the network: it hands in what arrives (flow messages, members up and down,
// measured link costs) as ToFlow, and gets back FromFlow — messages to send as frames and, when they change, the
// next-stage replicas this node's flows go through, which the training protocol then routes microbatches over.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>

#include <optional>
#include <vector>

#include "kernels/flow/flow_node.hpp"

namespace gwtf {

struct ToFlow {
  flow::Input input;
};
struct FromFlow {
  std::vector<flow::Outgoing> messages;
  std::optional<std::vector<flow::NodeId>> next_hops;  // set when they changed
  std::vector<flow::FlowEvent> events;
};

// Ticks every config.params.period seconds; randomness (annealing) from `seed`.
caf::behavior flow_actor(caf::event_based_actor* self, flow::FlowConfig config, uint64_t seed, caf::actor node);

}  // namespace gwtf

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::ToFlow)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gwtf::FromFlow)
