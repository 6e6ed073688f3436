// Test helpers: frames built straight from the schema, to forge what a broken or hostile peer could send.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <vector>

#include "kernels/base/rng.hpp"
#include "kernels/wire/frame.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::wire::testing {

inline constexpr uint64_t kSwarm = 0x5EED;

inline std::vector<char> to_frame(capnp::MessageBuilder& builder) {
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asChars();
  return std::vector<char>(bytes.begin(), bytes.end());
}

// An Envelope with our version and swarm; the caller fills the body.
inline schema::Envelope::Builder envelope(capnp::MallocMessageBuilder& builder) {
  auto env = builder.initRoot<schema::Envelope>();
  env.setVersion(kProtocolVersion);
  env.setSwarmId(kSwarm);
  env.setSender(7);
  return env;
}

inline DecodeOptions options() {
  DecodeOptions o;
  o.swarm_id = kSwarm;
  return o;
}

// One flow-protocol message of every kind, with distinct values in every field.
inline std::vector<flow::FlowBody> flow_examples() {
  using namespace gwtf::flow;
  Snapshot snap;
  snap.pairs = {PairInfo{1, 2, 3.5, 4, 0.25, 7.0}, PairInfo{11, 12, 0.0, 14, 1.0, 2.0}};
  snap.links = {LinkCostEntry{2, 0.5}, LinkCostEntry{4, 0.25}};
  snap.capacity = 5;
  snap.used = 3;
  return {Offer{2, 1.25, 5, 3, {Potential{3, 0.75}, Potential{8, 2.25}}},
          Offer{0, kInfCost, 4, 4},
          FlowRequest{9, 2.5, 3.75},
          FlowRequest{10, 2.5, 3.75, 7, 8},
          FlowAccept{9, 3.5, 7},
          FlowReject{9, Reason::kStaleCost, Offer{1, 0.5, 3, 2}},
          Cancel{17},
          Cancel{17, true},
          PushBack{18},
          SuffixUpdate{19, 4.5, 7},
          PrefixUpdate{20, 5.5, 8},
          CheckFlows{{1, 2, 3, 1ull << 60}},
          CheckReply{{7}},
          snap,
          ProposeSwap{1, 2, 3, 4, 5.5, 6.5, 7.5, 8.5, true, 10, 11, 12},
          SwapReply{true, Reason::kBusy, 1, 2, 3, 4.5, 5.5, 6.5, 7, 8},
          ProposeTakeover{1, 2, 3.5, 4.5, 5, 6},
          TakeoverReply{true, Reason::kUnknownHop, 1, 2, 3, 4, 5.5, 6, 7.5, 8, 9},
          Switch{1, 2, 3, 4.5, 5},
          Redirect{1, 2}};
}

// One training-protocol message of every kind, with distinct values in every field; blob fields index the two
// tensors train_tensors() gives.
inline std::vector<train::Body> train_examples() {
  using namespace gwtf::train;
  return {train::Activation{3, 9, 1, {11, 12}, true},
          Forwarded{3, 9, {11, 12, 1}, {true, false, true}},
          train::Gradient{3, 9, 2},
          WhoHolds{4, {1, 2}},
          Adopt{4, {1}, {0, 5}, {{11, 12}, {}}},
          Progress{4, {0, 1, 7}, {7}, 21, {1}, {7}},
          Collect{5},
          Collect{5, 3, {41, 44, 46}},
          GradSum{5, {1, 2}, {2}, 1, 7.25, 22},
          GradSum{5, {}, {}, 0, 0},
          GradSum{5, {1}, {}, 0, 1.5, 23, 3, true},
          Reduced{5, 2, 3.5, {0, 1, 1, 3}, {0, 2}},
          Committed{5, 2},
          StateAsk{},
          StateOffer{StateManifest{6, 10, 4, {1, 2, 3}, 99}},
          ChunkAsk{6, 2},
          Chunk{6, 2, std::string("\x01\x00\xff", 3)},
          StateDone{},
          Ready{7},
          Retract{4, 7, true, 21, 44},
          Leaving{},
          Busy{8, 3, 77, true},
          Ack{12345},
          Slice{5, 41, 3, 23, 1, 3, false, 1},
          Slice{5, 41, 3, 0, 2, 3, true, 2},
          ReducePlan{5, 3, {41, 44, 46}, {41, 46}, {22, 23}, 2.5, {0, 1, 3}, {0, 2}, {41, 44, 46, 47}},
          Assembled{5},
          StepApplied{5, 2}};
}

inline std::vector<TensorView> train_tensors() {
  static const std::vector<float> floats = {0.5f, -1.0f, 2.0f, 4.0f};
  return {TensorView{DType::kFloat32, {2, 2}, reinterpret_cast<const std::byte*>(floats.data()), 16},
          TensorView{DType::kFloat32, {4}, reinterpret_cast<const std::byte*>(floats.data()), 16}};
}

inline TrainMessage train_message(const train::Body& body, uint64_t seq = 9) {
  return TrainMessage{train::Message{42, 43, seq, body}, train_tensors()};
}

// One membership message of every kind, with distinct values in every field.
inline std::vector<train::MembershipBody> membership_examples() {
  using namespace gwtf::train;
  const MemberInfo a{11, 2, "10.0.0.7", 7411, true, 9411, 9511}, b{12, 0, "node-b.example", 7412, false, 0};
  return {Hello{13, Role::kRelay, 3, "127.0.0.1", 7413, 0xfeedbeefcafe, 8080, 8090},
          RosterMsg{{a, b}, true, MemberInfo{13, 3, "127.0.0.1", 7413, false, 8080, 8090}},
          Joined{b},
          Refused{"configuration mismatch"},
          Proof{"-----BEGIN CERTIFICATE-----\n" + std::string(700, 'M') + "\n-----END CERTIFICATE-----\n", 77, std::string("\x30\x45\x00sig", 6)},
          Gone{0x1234567890ab},
          Suspect{0xba0987654321}};
}

// Valid frames of every kind, with tensors of several dtypes and shapes (the seeds of the fuzz corpus).
inline std::vector<std::vector<char>> valid_corpus() {
  static const std::vector<float> floats = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  static const std::vector<uint8_t> bytes = {1, 2, 3, 4, 5};
  std::vector<std::vector<char>> out;
  const Header h{kProtocolVersion, kSwarm, 42};
  TensorView f32{DType::kFloat32, {2, 3}, reinterpret_cast<const std::byte*>(floats.data()), 24};
  TensorView u8{DType::kUInt8, {5}, reinterpret_cast<const std::byte*>(bytes.data()), 5};
  TensorView scalar{DType::kFloat32, {}, reinterpret_cast<const std::byte*>(floats.data()), 4};
  TensorView empty{DType::kInt64, {0, 4}, nullptr, 0};
  out.push_back(encode_frame(h, f32));
  out.push_back(encode_frame(h, u8));
  out.push_back(encode_frame(h, scalar));
  out.push_back(encode_frame(h, empty));
  Activation a;
  a.iteration = 3;
  a.microbatch = 9;
  a.stage = 1;
  a.hop = 77;
  a.tensor = f32;
  out.push_back(encode_frame(h, a));
  Gradient g;
  static_cast<StageTensor&>(g) = a;
  g.tensor = u8;
  out.push_back(encode_frame(h, g));
  out.push_back(encode_frame(h, Heartbeat{5, 1000, 4, 900, 12}));
  out.push_back(encode_frame(h, CapacityUpdate{2, 4, 1, 250000, 1ull << 30}));
  for (const auto& f : flow_examples()) out.push_back(encode_frame(h, FlowMessage{f}));
  for (const auto& t : train_examples()) out.push_back(encode_frame(h, train_message(t)));
  for (const auto& m : membership_examples()) out.push_back(encode_frame(h, MembershipMessage{m}));
  return out;
}

}  // namespace gwtf::wire::testing
