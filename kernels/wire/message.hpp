// The decoded, validated form of every wire message (schema/gwtf.capnp): plain values that kernels consume.
// A TensorView does not own its bytes: after decode they live in the received frame, which the Message
// keeps alive (zero-copy decode); before encode they live wherever the caller keeps them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "kernels/flow/messages.hpp"
#include "kernels/train/membership.hpp"
#include "kernels/train/messages.hpp"
#include "kernels/wire/dtype.hpp"

namespace gwtf::wire {

struct TensorView {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;  // empty: a 0-d tensor
  const std::byte* data = nullptr;
  size_t nbytes = 0;           // == numel(shape) * element_size(dtype), checked by decode

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// An activation (forward) or its gradient (backward) at a stage boundary.
struct StageTensor {
  uint64_t iteration = 0;
  uint32_t microbatch = 0;
  uint16_t stage = 0;  // the stage that sent it
  uint64_t hop = 0;    // flow hop id
  TensorView tensor;
};
struct Activation : StageTensor {};
struct Gradient : StageTensor {};

struct Heartbeat {
  uint64_t seq = 0;
  int64_t sent_at_ns = 0;
  uint64_t echo_seq = 0;  // 0: nothing echoed
  int64_t echo_sent_at_ns = 0;
  int64_t echo_held_ns = 0;
  double bandwidth_Bps = 0;  // the sender's measured bandwidth towards the receiver; 0: not measured (finite, >= 0)
};

struct CapacityUpdate {
  uint16_t stage = 0;
  uint32_t capacity = 0;
  uint32_t in_flight = 0;
  uint64_t compute_ns_per_microbatch = 0;
  uint64_t memory_bytes = 0;
};

// A message of the decentralized flow protocol (kernels/flow).
struct FlowMessage {
  flow::FlowBody body;
};

// A message of the training protocol (kernels/train). Its blob fields (activations, gradients, gradient sums)
// hold 1-based indices into `tensors` (0: none): the receiving runtime stores each tensor and puts its own blob
// handle in its place. Its `from` is the envelope's sender.
struct TrainMessage {
  train::Message msg;
  std::vector<TensorView> tensors;
};

// How a node enters a swarm (kernels/train/roster.hpp).
struct MembershipMessage {
  train::MembershipBody body;
};

using Body = std::variant<TensorView, Activation, Gradient, Heartbeat, CapacityUpdate, FlowMessage, TrainMessage,
                          MembershipMessage>;

// The kind of a body, for log lines ("tensor", "activation", ..., "membership").
const char* body_name(const Body& b);

struct Header {
  uint16_t version = 0;
  uint64_t swarm_id = 0;
  uint64_t sender = 0;
};

struct Message {
  Header header;
  Body body;
  // Owns the bytes that TensorViews in `body` point into (the received frame); empty when nothing is borrowed.
  std::shared_ptr<const void> storage;
};

}  // namespace gwtf::wire
