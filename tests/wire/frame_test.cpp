// Frames: round trips of every kind, and one test per way a frame can be wrong (docs/wire.md).
#include "kernels/wire/frame.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/wire/frame_builders.hpp"
#include "tests/wire/future.capnp.h"

namespace gwtf::wire {
namespace {

using testing::envelope;
using testing::kSwarm;
using testing::options;
using testing::to_frame;

WireErrc decode_error(std::vector<char> frame, DecodeOptions o = options()) {
  auto r = decode_frame(std::move(frame), o);
  EXPECT_FALSE(r.ok()) << "frame was accepted";
  return r.ok() ? WireErrc::kMalformed : r.error().code;
}

std::string decode_message(std::vector<char> frame, DecodeOptions o = options()) {
  auto r = decode_frame(std::move(frame), o);
  return r.ok() ? std::string("accepted") : r.error().message;
}

// --- round trips -------------------------------------------------------------------------------------------

TEST(Frame, ActivationRoundTripKeepsEveryFieldAndEveryByte) {
  std::vector<float> data(6 * 5);
  std::iota(data.begin(), data.end(), -3.5f);
  Activation a;
  a.iteration = 1ull << 40;
  a.microbatch = 123456;
  a.stage = 7;
  a.hop = 0xFEEDFACECAFEull;
  a.tensor = {DType::kFloat32, {6, 5}, reinterpret_cast<const std::byte*>(data.data()), data.size() * 4};
  auto decoded = decode_frame(encode_frame({0, kSwarm, 99}, a), options());
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->header.version, kProtocolVersion);
  EXPECT_EQ(decoded->header.sender, 99u);
  const auto* got = std::get_if<Activation>(&decoded->body);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->iteration, a.iteration);
  EXPECT_EQ(got->microbatch, a.microbatch);
  EXPECT_EQ(got->stage, a.stage);
  EXPECT_EQ(got->hop, a.hop);
  EXPECT_EQ(got->tensor.shape, a.tensor.shape);
  ASSERT_EQ(got->tensor.nbytes, a.tensor.nbytes);
  EXPECT_EQ(std::memcmp(got->tensor.data, data.data(), a.tensor.nbytes), 0);
}

TEST(Frame, DecodedTensorPointsIntoTheFrameNoCopy) {
  std::vector<double> data(1000, 2.5);
  auto frame = encode_frame({0, kSwarm, 1}, TensorView{DType::kFloat64, {1000},
                                                       reinterpret_cast<const std::byte*>(data.data()), 8000});
  const char* begin = frame.data();
  const char* end = frame.data() + frame.size();
  auto decoded = decode_frame(std::move(frame), options());
  ASSERT_TRUE(decoded.ok());
  const auto& t = std::get<TensorView>(decoded->body);
  const char* p = reinterpret_cast<const char*>(t.data);
  EXPECT_TRUE(p >= begin && p + t.nbytes <= end) << "tensor bytes were copied out of the frame";
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u) << "payload must stay word-aligned";
}

TEST(Frame, OddSizedPayloadIsCopiedNotOverread) {
  const uint8_t three[3] = {9, 8, 7};
  auto decoded = decode_frame(
      encode_frame({0, kSwarm, 1}, TensorView{DType::kUInt8, {3}, reinterpret_cast<const std::byte*>(three), 3}),
      options());
  ASSERT_TRUE(decoded.ok());
  const auto& t = std::get<TensorView>(decoded->body);
  ASSERT_EQ(t.nbytes, 3u);
  EXPECT_EQ(std::memcmp(t.data, three, 3), 0);
}

TEST(Frame, HeartbeatAndCapacityUpdateRoundTrip) {
  Heartbeat hb{11, -5, 10, 123456789, 42, 2.5e6};
  auto d1 = decode_frame(encode_frame({0, kSwarm, 3}, hb), options());
  ASSERT_TRUE(d1.ok());
  const auto& h = std::get<Heartbeat>(d1->body);
  EXPECT_EQ(h.seq, 11u);
  EXPECT_EQ(h.sent_at_ns, -5);
  EXPECT_EQ(h.echo_seq, 10u);
  EXPECT_EQ(h.echo_sent_at_ns, 123456789);
  EXPECT_EQ(h.echo_held_ns, 42);
  EXPECT_EQ(h.bandwidth_Bps, 2.5e6);
  for (double bad : {-1.0, std::nan(""), HUGE_VAL}) {
    auto d = decode_frame(encode_frame({0, kSwarm, 3}, Heartbeat{1, 0, 0, 0, 0, bad}), options());
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.error().code, WireErrc::kInvalidValue);
  }

  CapacityUpdate cu{3, 8, 2, 999, 1ull << 33};
  auto d2 = decode_frame(encode_frame({0, kSwarm, 3}, cu), options());
  ASSERT_TRUE(d2.ok());
  const auto& c = std::get<CapacityUpdate>(d2->body);
  EXPECT_EQ(c.stage, 3);
  EXPECT_EQ(c.capacity, 8u);
  EXPECT_EQ(c.in_flight, 2u);
  EXPECT_EQ(c.compute_ns_per_microbatch, 999u);
  EXPECT_EQ(c.memory_bytes, 1ull << 33);
}

TEST(Frame, EveryCorpusFrameDecodes) {
  for (auto& f : testing::valid_corpus()) {
    auto r = decode_frame(std::move(f), options());
    EXPECT_TRUE(r.ok()) << r.error().message;
  }
}

TEST(Frame, EveryFlowMessageKindRoundTripsByteForByte) {
  // Decoding and encoding again gives the same bytes: no field is lost or altered on the way.
  std::set<size_t> kinds;
  for (const auto& f : testing::flow_examples()) {
    const auto frame = encode_frame({0, kSwarm, 5}, FlowMessage{f});
    auto decoded = decode_frame(std::vector<char>(frame), options());
    ASSERT_TRUE(decoded.ok()) << flow::body_name(f) << ": " << decoded.error().message;
    const auto& back = std::get<FlowMessage>(decoded->body).body;
    EXPECT_EQ(back.index(), f.index());
    EXPECT_EQ(encode_frame(decoded->header, decoded->body), frame) << flow::body_name(f);
    kinds.insert(f.index());
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<flow::FlowBody>) << "an example is missing for some flow kind";
}

TEST(Frame, EveryTrainMessageKindRoundTripsByteForByte) {
  std::set<size_t> kinds;
  for (const auto& t : testing::train_examples()) {
    const auto frame = encode_frame({0, kSwarm, 42}, testing::train_message(t));
    auto decoded = decode_frame(std::vector<char>(frame), options());
    ASSERT_TRUE(decoded.ok()) << train::body_name(t) << ": " << decoded.error().message;
    const auto& back = std::get<TrainMessage>(decoded->body);
    EXPECT_EQ(back.msg.body.index(), t.index());
    EXPECT_EQ(back.msg.from, 42u);
    EXPECT_EQ(back.msg.to, 43u);
    EXPECT_EQ(back.msg.seq, 9u);
    for (const auto& v : back.tensors) EXPECT_EQ(v.nbytes, 16u);
    EXPECT_EQ(encode_frame(decoded->header, decoded->body), frame) << train::body_name(t);
    kinds.insert(t.index());
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<train::Body>) << "an example is missing for some train kind";
}

TEST(Frame, EveryMembershipMessageKindRoundTripsByteForByte) {
  std::set<size_t> kinds;
  for (const auto& m : testing::membership_examples()) {
    const auto frame = encode_frame({0, kSwarm, 42}, MembershipMessage{m});
    auto decoded = decode_frame(std::vector<char>(frame), options());
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(std::get<MembershipMessage>(decoded->body).body.index(), m.index());
    EXPECT_EQ(encode_frame(decoded->header, decoded->body), frame);
    kinds.insert(m.index());
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<train::MembershipBody>) << "an example is missing for some kind";
  const auto& roster = std::get<train::RosterMsg>(testing::membership_examples()[1]);
  auto decoded = decode_frame(encode_frame({0, kSwarm, 42}, MembershipMessage{roster}), options());
  const auto& back = std::get<train::RosterMsg>(std::get<MembershipMessage>(decoded->body).body);
  ASSERT_EQ(back.members.size(), 2u);
  EXPECT_EQ(back.members[1].host, "node-b.example");
  EXPECT_FALSE(back.members[1].ready);
  EXPECT_EQ(back.you.stage, 3u);
  EXPECT_EQ(back.members[0].status_port, 9411u);
  EXPECT_EQ(back.you.status_port, 8080u);
  EXPECT_EQ(back.members[0].data_port, 9511u);
  EXPECT_EQ(back.members[1].data_port, 0u);
  EXPECT_EQ(back.you.data_port, 8090u);
  const auto& hello = std::get<train::Hello>(testing::membership_examples()[0]);
  auto h = decode_frame(encode_frame({0, kSwarm, 42}, MembershipMessage{hello}), options());
  EXPECT_EQ(std::get<train::Hello>(std::get<MembershipMessage>(h->body).body).data_port, 8090u);
  const auto examples = testing::membership_examples();
  const auto& proof = std::get<train::Proof>(examples[4]);
  auto p = decode_frame(encode_frame({0, kSwarm, 42}, MembershipMessage{proof}), options());
  const auto& pb = std::get<train::Proof>(std::get<MembershipMessage>(p->body).body);
  EXPECT_EQ(pb.certificate, proof.certificate);
  EXPECT_EQ(pb.incarnation, 77u);
  EXPECT_EQ(pb.signature, proof.signature);  // binary, with a NUL inside
}

TEST(FrameRejects, MembershipMessagesWithImpossibleValues) {
  using namespace gwtf::train;
  for (const auto& [body, needle] : std::vector<std::pair<MembershipBody, std::string>>{
           {Hello{1, Role::kData, 0, "", 7000, 1, 0}, "hello.host"},
           {Hello{1, Role::kData, 0, std::string(300, 'h'), 7000, 1, 0}, "hello.host"},
           {Hello{1, Role::kData, 0, "h", 0, 1, 0}, "hello.port"},
           {Joined{MemberInfo{1, 1, std::string(256, 'x'), 1, true, 0}}, "joined.host"},
           {Refused{std::string(5000, 'r')}, "refused"},
           {Hello{1, Role::kData, 0, std::string("a\0b", 3), 7000, 1, 0}, "NUL"},
           {Proof{std::string(20000, 'c'), 1, "s"}, "proof.certificate"},
           {Proof{"c", 1, std::string(2000, 's')}, "proof.signature"},
       }) {
    auto r = decode_frame(encode_frame({0, kSwarm, 42}, MembershipMessage{body}), options());
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.error().code, WireErrc::kInvalidValue) << r.error().message;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  }
}

// --- each malformed-frame case gets its specific error --------------------------------------------------------

TEST(FrameRejects, EmptyAndTinyFramesAsTruncated) {
  EXPECT_EQ(decode_error({}), WireErrc::kTruncated);
  EXPECT_EQ(decode_error(std::vector<char>(5, 0)), WireErrc::kTruncated);
}

TEST(FrameRejects, EveryShortenedFrameAsTruncated) {
  const auto full = testing::valid_corpus().front();
  for (size_t n = 8; n < full.size(); n += 1) {
    std::vector<char> cut(full.begin(), full.begin() + static_cast<long>(n));
    auto r = decode_frame(std::move(cut), options());
    ASSERT_FALSE(r.ok()) << "accepted a frame cut to " << n << " of " << full.size() << " bytes";
    EXPECT_EQ(r.error().code, WireErrc::kTruncated) << r.error().message;
  }
}

TEST(FrameRejects, ExtraBytesAsTrailing) {
  auto f = testing::valid_corpus().front();
  f.resize(f.size() + 8, 0);
  EXPECT_EQ(decode_error(f), WireErrc::kTrailingBytes);
}

TEST(FrameRejects, SegmentCountBeyondLimitAsMalformed) {
  std::vector<char> f(16, 0);
  const uint32_t count_minus_one = 100000;
  std::memcpy(f.data(), &count_minus_one, 4);
  EXPECT_EQ(decode_error(f), WireErrc::kMalformed);
}

TEST(FrameRejects, PointerOutsideTheSegmentAsMalformed) {
  // One segment of one word whose root pointer says "struct 1000 words further on".
  std::vector<char> f(16, 0);
  const uint32_t table[2] = {0, 1};
  std::memcpy(f.data(), table, 8);
  const uint64_t ptr = (uint64_t{1000} << 2) | (uint64_t{1} << 32);  // struct pointer, offset 1000, 1 data word
  std::memcpy(f.data() + 8, &ptr, 8);
  const auto msg = decode_message(f);
  EXPECT_EQ(decode_error(f), WireErrc::kMalformed) << msg;
}

TEST(FrameRejects, DataLengthThatDisagreesWithShapeAsSizeMismatch) {
  capnp::MallocMessageBuilder b;
  auto t = envelope(b).initBody().initTensor();
  t.setDtype(schema::DType::FLOAT32);
  auto shape = t.initShape(2);
  shape.set(0, 2);
  shape.set(1, 3);
  t.initData(20);  // 2*3 float32 needs 24
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kSizeMismatch);
  EXPECT_NE(decode_message(to_frame(b)).find("24 bytes"), std::string::npos) << decode_message(to_frame(b));
}

TEST(FrameRejects, ShapeWhoseProductOverflowsAsShapeOverflow) {
  capnp::MallocMessageBuilder b;
  auto t = envelope(b).initBody().initActivation().initTensor();
  t.setDtype(schema::DType::FLOAT32);
  auto shape = t.initShape(3);
  shape.set(0, int64_t{1} << 40);
  shape.set(1, int64_t{1} << 40);
  shape.set(2, 1);
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kShapeOverflow);
}

TEST(FrameRejects, ElementCountTimesSizeOverflowAsShapeOverflow) {
  capnp::MallocMessageBuilder b;
  auto t = envelope(b).initBody().initTensor();
  t.setDtype(schema::DType::FLOAT64);
  auto shape = t.initShape(1);
  shape.set(0, int64_t{1} << 62);  // fits in int64, but times 8 bytes does not
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kShapeOverflow);
}

TEST(FrameRejects, NegativeDimension) {
  capnp::MallocMessageBuilder b;
  auto t = envelope(b).initBody().initGradient().initTensor();
  t.setDtype(schema::DType::FLOAT32);
  auto shape = t.initShape(2);
  shape.set(0, -1);
  shape.set(1, -4);
  t.initData(16);
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kNegativeDimension);
}

TEST(FrameRejects, RankAboveTheLimit) {
  capnp::MallocMessageBuilder b;
  auto t = envelope(b).initBody().initTensor();
  t.setDtype(schema::DType::UINT8);
  auto shape = t.initShape(9);
  for (unsigned i = 0; i < 9; ++i) shape.set(i, 1);
  t.initData(1);
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kRankTooLarge);
}

TEST(FrameRejects, UnknownDType) {
  capnp::MallocMessageBuilder b;
  auto t = envelope(b).initBody().initTensor();
  t.setDtype(static_cast<schema::DType>(77));
  t.initShape(1).set(0, 1);
  t.initData(4);
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kUnknownDType);
  EXPECT_NE(decode_message(to_frame(b)).find("77"), std::string::npos);
}

TEST(FrameRejects, UnknownKindFromANewerPeer) {
  capnp::MallocMessageBuilder b;
  auto env = b.initRoot<future::Envelope>();
  env.setVersion(kProtocolVersion);
  env.setSwarmId(kSwarm);
  env.getBody().setSomethingNew("hello from the future");
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kUnknownKind);
}

TEST(FrameRejects, WrongProtocolVersion) {
  capnp::MallocMessageBuilder b;
  auto env = envelope(b);
  env.setVersion(kProtocolVersion + 1);
  env.getBody().initHeartbeat();
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kWrongVersion);
}

TEST(FrameRejects, FrameOfAnotherSwarm) {
  auto f = testing::valid_corpus().back();
  auto o = options();
  o.swarm_id = kSwarm + 1;
  EXPECT_EQ(decode_error(f, o), WireErrc::kWrongSwarm);
}

TEST(FrameRejects, FrameOverTheConfiguredSizeLimit) {
  std::vector<float> big(4096, 1.0f);
  auto f = encode_frame({0, kSwarm, 1}, TensorView{DType::kFloat32, {4096},
                                                   reinterpret_cast<const std::byte*>(big.data()), 4096 * 4});
  auto o = options();
  o.max_frame_bytes = 4096;
  EXPECT_EQ(decode_error(f, o), WireErrc::kFrameTooLarge);
  o.max_frame_bytes = f.size();
  EXPECT_TRUE(decode_frame(std::move(f), o).ok());
}

TEST(FrameRejects, FlowCostsThatAreNaNOrNegative) {
  const double bad_values[] = {std::nan(""), -1.0, flow::kInfCost};
  for (double bad : bad_values) {
    auto f = encode_frame({0, kSwarm, 1}, FlowMessage{flow::FlowAccept{3, bad}});
    auto r = decode_frame(std::move(f), options());
    ASSERT_FALSE(r.ok()) << "accepted suffix " << bad;
    EXPECT_EQ(r.error().code, WireErrc::kInvalidValue);
    EXPECT_NE(r.error().message.find("suffix"), std::string::npos) << r.error().message;
  }
  // An offer of nothing legitimately costs +inf.
  EXPECT_TRUE(decode_frame(encode_frame({0, kSwarm, 1}, FlowMessage{flow::Offer{0, flow::kInfCost, 1, 1}}), options()).ok());
}

TEST(FrameRejects, PotentialsThatAreNotOneFinitePerHolderAscending) {
  using flow::Potential;
  const std::vector<std::pair<std::vector<Potential>, const char*>> bad = {
      {{Potential{2, 1.0}, Potential{2, 0.5}}, "one per holder"},  // two costs for one holder
      {{Potential{5, 1.0}, Potential{2, 0.5}}, "ascending"},
      {{Potential{0, 1.0}}, "holder 0"},
      {{Potential{2, flow::kInfCost}}, "potential"},  // nothing to offer is no entry, not +inf
      {{Potential{2, -0.5}}, "potential"},
  };
  for (const auto& [potentials, what] : bad) {
    auto r = decode_frame(encode_frame({0, kSwarm, 1}, FlowMessage{flow::Offer{1, 2.0, 4, 1, potentials}}), options());
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().code, WireErrc::kInvalidValue) << what;
    EXPECT_NE(r.error().message.find("potential"), std::string::npos) << r.error().message;
  }
}

TEST(FrameRejects, UnknownFlowReason) {
  capnp::MallocMessageBuilder b;
  auto reject = envelope(b).initBody().initFlow().initReject();
  reject.setReason(static_cast<schema::FlowReason>(40));
  EXPECT_EQ(decode_error(to_frame(b)), WireErrc::kInvalidValue);
}

// A training message a broken or hostile member could send: each refused with the field named.
WireError train_error(const train::Body& body) {
  auto decoded = decode_frame(encode_frame({0, kSwarm, 42}, testing::train_message(body)), options());
  EXPECT_FALSE(decoded.ok()) << train::body_name(body);
  return decoded.ok() ? WireError{WireErrc::kMalformed, ""} : decoded.error();
}

TEST(FrameRejects, TrainMessagesWithImpossibleValues) {
  using namespace gwtf::train;
  const double nan = std::nan("");
  for (const auto& [body, needle] : std::vector<std::pair<train::Body, std::string>>{
           {Reduced{1, 1, nan, {}, {}}, "loss"},
           {GradSum{1, {0}, {}, 1, std::numeric_limits<double>::infinity()}, "lossSum"},
           {Forwarded{1, 2, {3}, {true, true}}, "flags"},
           {Adopt{1, {4}, {0}, {{1}, {2}}}, "paths"},
           {GradSum{1, {0}, {}, 1, 0, 2, 1, true}, "sliced"},
           {Slice{1, 2, 1, 0, 3, 3, false, 1}, "slice 3 of 3"},
           {ReducePlan{1, 1, {2, 3}, {2, 3}, {1}, 0, {}, {}}, "versions"},
           {StateOffer{StateManifest{1, 10, 4, {1, 2}, 0}}, "checksums"},
           {StateOffer{StateManifest{1, 10, 0, {}, 0}}, "checksums"},
       }) {
    const auto e = train_error(body);
    EXPECT_EQ(e.code, WireErrc::kInvalidValue) << train::body_name(body) << ": " << e.message;
    EXPECT_NE(e.message.find(needle), std::string::npos) << e.message;
  }
}

TEST(FrameRejects, TrainTensorsAreCheckedLikeAnyOther) {
  auto m = testing::train_message(train::Activation{1, 2, 1, {}});
  m.tensors[0].nbytes = 12;  // the shape needs 16
  auto decoded = decode_frame(encode_frame({0, kSwarm, 42}, m), options());
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, WireErrc::kSizeMismatch);
}

TEST(FrameRejects, ErrorMessagesNameTheProblem) {
  EXPECT_NE(decode_message({}).find("truncated frame"), std::string::npos);
  auto o = options();
  o.swarm_id = 1;
  EXPECT_NE(decode_message(testing::valid_corpus().front(), o).find("swarm"), std::string::npos);
}

}  // namespace
}  // namespace gwtf::wire
