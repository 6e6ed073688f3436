#include "kernels/wire/frame.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <string>
#include <type_traits>

#include "kernels/wire/flow_codec.hpp"
#include "kernels/wire/membership_codec.hpp"
#include "kernels/wire/train_codec.hpp"
#include "kernels/wire/tensor_fields.hpp"
#include "schema/gwtf.capnp.h"

namespace gwtf::wire {

static_assert(kProtocolVersion == schema::PROTOCOL_VERSION, "kProtocolVersion must match schema/gwtf.capnp");
static_assert(static_cast<uint16_t>(schema::DType::BOOL) + 1 == kDTypeCount, "DType must mirror the schema");

const char* body_name(const Body& b) {
  static const char* const names[] = {"tensor", "activation", "gradient", "heartbeat", "capacity update", "flow",
                                      "train", "membership"};
  static_assert(std::size(names) == std::variant_size_v<Body>, "a name for every body kind");
  return names[b.index()];
}

std::string_view errc_name(WireErrc c) {
  switch (c) {
    case WireErrc::kFrameTooLarge: return "frame too large";
    case WireErrc::kTruncated: return "truncated frame";
    case WireErrc::kTrailingBytes: return "trailing bytes";
    case WireErrc::kMalformed: return "malformed frame";
    case WireErrc::kWrongVersion: return "wrong protocol version";
    case WireErrc::kWrongSwarm: return "wrong swarm";
    case WireErrc::kUnknownKind: return "unknown message kind";
    case WireErrc::kUnknownDType: return "unknown dtype";
    case WireErrc::kRankTooLarge: return "rank too large";
    case WireErrc::kNegativeDimension: return "negative dimension";
    case WireErrc::kShapeOverflow: return "shape overflow";
    case WireErrc::kSizeMismatch: return "size mismatch";
    case WireErrc::kInvalidValue: return "invalid value";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------------
// Tensor fields (also used by checkpoints: kernels/wire/tensor_fields.hpp)

void fill_tensor(schema::Tensor::Builder out, const TensorView& t, capnp::Orphanage orphanage) {
  out.setDtype(static_cast<schema::DType>(t.dtype));
  auto shape = out.initShape(static_cast<unsigned>(t.shape.size()));
  for (unsigned i = 0; i < t.shape.size(); ++i) shape.set(i, t.shape[i]);
  if (t.nbytes == 0) return;
  // Attaching the caller's bytes avoids a copy into the builder; Cap'n Proto exposes whole words of external
  // data, so only whole-word, word-aligned payloads may be attached (else it would read past the tensor).
  if (t.nbytes % 8 == 0 && reinterpret_cast<uintptr_t>(t.data) % 8 == 0) {
    out.adoptData(orphanage.referenceExternalData(
        capnp::Data::Reader(reinterpret_cast<const kj::byte*>(t.data), t.nbytes)));
  } else {
    auto data = out.initData(static_cast<unsigned>(t.nbytes));
    std::memcpy(data.begin(), t.data, t.nbytes);
  }
}

namespace {

void fill_stage_tensor(schema::StageTensor::Builder out, const StageTensor& s, capnp::Orphanage orphanage) {
  out.setIteration(s.iteration);
  out.setMicrobatch(s.microbatch);
  out.setStage(s.stage);
  out.setHop(s.hop);
  fill_tensor(out.initTensor(), s.tensor, orphanage);
}

// ---------------------------------------------------------------------------------------------------------
// Decode

Err<WireError> fail(WireErrc code, std::string message) {
  return Err<WireError>{WireError{code, std::string(errc_name(code)) + ": " + std::move(message)}};
}

uint32_t le32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // the wire is little-endian, like every host we build for
  return v;
}

// Checks the segment table against the frame length before Cap'n Proto sees the bytes, so that short and
// long frames get precise errors. Returns the message size in words.
Result<size_t, WireError> check_segment_table(const std::vector<char>& frame) {
  constexpr uint32_t kMaxSegments = 512;  // Cap'n Proto's own limit
  if (frame.size() < 8) {
    return fail(WireErrc::kTruncated, std::to_string(frame.size()) + " bytes hold no segment table");
  }
  const uint32_t count = le32(frame.data()) + 1u;
  if (count == 0 || count > kMaxSegments) {
    return fail(WireErrc::kMalformed, "segment table declares " + std::to_string(uint64_t{le32(frame.data())} + 1) +
                                          " segments (at most " + std::to_string(kMaxSegments) + ")");
  }
  const size_t table_words = count / 2 + 1;
  if (frame.size() < table_words * 8) {
    return fail(WireErrc::kTruncated, "segment table of " + std::to_string(count) + " segments needs " +
                                          std::to_string(table_words * 8) + " bytes, frame has " +
                                          std::to_string(frame.size()));
  }
  uint64_t words = table_words;
  for (uint32_t i = 0; i < count; ++i) words += le32(frame.data() + 4 + 4 * size_t{i});
  if (frame.size() < words * 8) {
    return fail(WireErrc::kTruncated, "segment table declares " + std::to_string(words * 8) +
                                          " bytes, frame has " + std::to_string(frame.size()));
  }
  if (frame.size() > words * 8) {
    return fail(WireErrc::kTrailingBytes, "segment table declares " + std::to_string(words * 8) +
                                              " bytes, frame has " + std::to_string(frame.size()));
  }
  return static_cast<size_t>(words);
}

}  // namespace

Result<TensorView, WireError> read_tensor(schema::Tensor::Reader in, const DecodeOptions& options) {
  const auto raw_dtype = static_cast<uint16_t>(in.getDtype());
  const auto dtype = dtype_from_raw(raw_dtype);
  if (!dtype) return fail(WireErrc::kUnknownDType, "dtype " + std::to_string(raw_dtype));

  TensorView t;
  t.dtype = *dtype;
  const auto shape = in.getShape();
  if (shape.size() > options.max_rank) {
    return fail(WireErrc::kRankTooLarge,
                std::to_string(shape.size()) + " dimensions, at most " + std::to_string(options.max_rank));
  }
  uint64_t numel = 1;
  bool overflow = false;
  t.shape.reserve(shape.size());
  for (unsigned i = 0; i < shape.size(); ++i) {
    const int64_t d = shape[i];
    if (d < 0) return fail(WireErrc::kNegativeDimension, "dimension " + std::to_string(i) + " is " + std::to_string(d));
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
    t.shape.push_back(d);
  }
  uint64_t expected = 0;
  if (overflow || numel > static_cast<uint64_t>(INT64_MAX) ||
      __builtin_mul_overflow(numel, element_size(t.dtype), &expected)) {
    return fail(WireErrc::kShapeOverflow, "the product of the dimensions does not fit in 64 bits");
  }
  const auto data = in.getData();
  if (data.size() != expected) {
    return fail(WireErrc::kSizeMismatch, "shape and dtype " + std::string(dtype_name(t.dtype)) + " need " +
                                             std::to_string(expected) + " bytes of data, frame carries " +
                                             std::to_string(data.size()));
  }
  t.data = reinterpret_cast<const std::byte*>(data.begin());
  t.nbytes = data.size();
  return t;
}

namespace {

template <class Kind>
Result<Body, WireError> read_stage_tensor(schema::StageTensor::Reader in, const DecodeOptions& options) {
  auto tensor = read_tensor(in.getTensor(), options);
  if (!tensor) return Err{std::move(tensor).error()};
  Kind k;
  k.iteration = in.getIteration();
  k.microbatch = in.getMicrobatch();
  k.stage = in.getStage();
  k.hop = in.getHop();
  k.tensor = std::move(tensor.value());
  return Body{std::move(k)};
}

Result<Body, WireError> read_body(schema::Envelope::Body::Reader body, uint64_t sender, const DecodeOptions& options) {
  switch (body.which()) {
    case schema::Envelope::Body::TENSOR: {
      auto t = read_tensor(body.getTensor(), options);
      if (!t) return Err{std::move(t).error()};
      return Body{std::move(t.value())};
    }
    case schema::Envelope::Body::ACTIVATION:
      return read_stage_tensor<Activation>(body.getActivation(), options);
    case schema::Envelope::Body::GRADIENT:
      return read_stage_tensor<Gradient>(body.getGradient(), options);
    case schema::Envelope::Body::HEARTBEAT: {
      auto h = body.getHeartbeat();
      const double bw = h.getBandwidthBps();
      if (!std::isfinite(bw) || bw < 0)
        return fail(WireErrc::kInvalidValue, "invalid value: heartbeat.bandwidthBps = " + std::to_string(bw));
      return Body{Heartbeat{h.getSeq(), h.getSentAtNs(), h.getEchoSeq(), h.getEchoSentAtNs(), h.getEchoHeldNs(), bw}};
    }
    case schema::Envelope::Body::CAPACITY_UPDATE: {
      auto c = body.getCapacityUpdate();
      return Body{CapacityUpdate{c.getStage(), c.getCapacity(), c.getInFlight(), c.getComputeNsPerMicrobatch(),
                                 c.getMemoryBytes()}};
    }
    case schema::Envelope::Body::FLOW: {
      auto f = read_flow(body.getFlow());
      if (!f) return Err{std::move(f).error()};
      return Body{FlowMessage{std::move(f.value())}};
    }
    case schema::Envelope::Body::TRAIN: {
      auto t = read_train(body.getTrain(), sender, options);
      if (!t) return Err{std::move(t).error()};
      return Body{std::move(t.value())};
    }
    case schema::Envelope::Body::MEMBERSHIP: {
      auto m = read_membership(body.getMembership());
      if (!m) return Err{std::move(m).error()};
      return Body{MembershipMessage{std::move(m.value())}};
    }
  }
  return fail(WireErrc::kUnknownKind, "message kind " + std::to_string(static_cast<unsigned>(body.which())));
}

}  // namespace

std::vector<char> encode_frame(const Header& header, const Body& body) {
  capnp::MallocMessageBuilder builder;
  auto env = builder.initRoot<schema::Envelope>();
  env.setVersion(kProtocolVersion);
  env.setSwarmId(header.swarm_id);
  env.setSender(header.sender);
  auto out = env.initBody();
  auto orphanage = builder.getOrphanage();
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, TensorView>) {
          fill_tensor(out.initTensor(), m, orphanage);
        } else if constexpr (std::is_same_v<T, Activation>) {
          fill_stage_tensor(out.initActivation(), m, orphanage);
        } else if constexpr (std::is_same_v<T, Gradient>) {
          fill_stage_tensor(out.initGradient(), m, orphanage);
        } else if constexpr (std::is_same_v<T, Heartbeat>) {
          auto h = out.initHeartbeat();
          h.setSeq(m.seq);
          h.setSentAtNs(m.sent_at_ns);
          h.setEchoSeq(m.echo_seq);
          h.setEchoSentAtNs(m.echo_sent_at_ns);
          h.setEchoHeldNs(m.echo_held_ns);
          h.setBandwidthBps(m.bandwidth_Bps);
        } else if constexpr (std::is_same_v<T, FlowMessage>) {
          fill_flow(out.initFlow(), m.body);
        } else if constexpr (std::is_same_v<T, TrainMessage>) {
          fill_train(out.initTrain(), m, orphanage);
        } else if constexpr (std::is_same_v<T, MembershipMessage>) {
          fill_membership(out.initMembership(), m.body);
        } else {
          static_assert(std::is_same_v<T, CapacityUpdate>);
          auto c = out.initCapacityUpdate();
          c.setStage(m.stage);
          c.setCapacity(m.capacity);
          c.setInFlight(m.in_flight);
          c.setComputeNsPerMicrobatch(m.compute_ns_per_microbatch);
          c.setMemoryBytes(m.memory_bytes);
        }
      },
      body);

  auto segments = builder.getSegmentsForOutput();
  std::vector<char> frame(capnp::computeSerializedSizeInWords(segments) * sizeof(capnp::word));
  kj::ArrayOutputStream stream(kj::arrayPtr(reinterpret_cast<kj::byte*>(frame.data()), frame.size()));
  capnp::writeMessage(stream, segments);
  return frame;
}

Result<Message, WireError> decode_frame(std::vector<char>&& frame, const DecodeOptions& options) {
  if (frame.size() > options.max_frame_bytes) {
    return fail(WireErrc::kFrameTooLarge, std::to_string(frame.size()) + " bytes, limit " +
                                              std::to_string(options.max_frame_bytes));
  }
  auto words = check_segment_table(frame);
  if (!words) return Err{std::move(words).error()};

  // Cap'n Proto reads whole words in place: the bytes must be word-aligned. operator new gives 16-byte
  // alignment, so this copy only happens for frames built in odd places.
  if (reinterpret_cast<uintptr_t>(frame.data()) % alignof(capnp::word) != 0) {
    std::vector<char> aligned(frame.begin(), frame.end());
    frame.swap(aligned);
  }
  auto storage = std::make_shared<const std::vector<char>>(std::move(frame));

  capnp::ReaderOptions reader_options;
  // Every word is read once by a valid decode; the limit stops pointer-aliasing amplification.
  reader_options.traversalLimitInWords = 2 * *words + 64;
  reader_options.nestingLimit = 16;
  try {
    capnp::FlatArrayMessageReader reader(
        kj::arrayPtr(reinterpret_cast<const capnp::word*>(storage->data()), *words), reader_options);
    auto env = reader.getRoot<schema::Envelope>();
    Header header{env.getVersion(), env.getSwarmId(), env.getSender()};
    if (header.version != kProtocolVersion) {
      return fail(WireErrc::kWrongVersion, "frame has version " + std::to_string(header.version) + ", this node speaks " +
                                               std::to_string(kProtocolVersion));
    }
    if (header.swarm_id != options.swarm_id) {
      return fail(WireErrc::kWrongSwarm, "frame belongs to swarm " + std::to_string(header.swarm_id) +
                                             ", this node to " + std::to_string(options.swarm_id));
    }
    auto body = read_body(env.getBody(), header.sender, options);
    if (!body) return Err{std::move(body).error()};
    return Message{header, std::move(body.value()), std::move(storage)};
  } catch (const kj::Exception& e) {
    return fail(WireErrc::kMalformed, e.getDescription().cStr());
  }
}

}  // namespace gwtf::wire
