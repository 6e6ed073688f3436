#include "kernels/wire/train_codec.hpp"

#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/base/overloaded.hpp"
#include "kernels/wire/tensor_fields.hpp"

namespace gwtf::wire {

namespace {

using namespace gwtf::train;

constexpr unsigned kMaxList = 1u << 16;

Err<WireError> invalid(std::string what) {
  return Err<WireError>{WireError{WireErrc::kInvalidValue, "invalid value: " + std::move(what)}};
}

template <class Builder, class T>
void put_list(Builder list, const std::vector<T>& v) {
  for (unsigned k = 0; k < v.size(); ++k) list.set(k, v[k]);
}

// Reads what a peer sent, remembering the first thing wrong with it.
struct Reader {
  const DecodeOptions& options;
  std::vector<TensorView>& tensors;
  std::string bad;
  std::optional<WireError> tensor_error;

  template <class T, class List>
  std::vector<T> list(const List& l, const char* field) {
    if (l.size() > kMaxList) {
      if (bad.empty()) bad = std::string(field) + " has " + std::to_string(l.size()) + " entries";
      return {};
    }
    std::vector<T> out;
    out.reserve(l.size());
    for (auto x : l) out.push_back(static_cast<T>(x));
    return out;
  }
  double finite(double v, const char* field) {
    if (bad.empty() && !std::isfinite(v)) bad = std::string(field) + " = " + std::to_string(v);
    return v;
  }
  Blob tensor(schema::Tensor::Reader t) {
    auto view = read_tensor(t, options);
    if (!view) {
      if (!tensor_error) tensor_error = std::move(view).error();
      return 0;
    }
    tensors.push_back(std::move(view.value()));
    return tensors.size();
  }
};

}  // namespace

void fill_train(schema::TrainMessage::Builder out, const TrainMessage& m, capnp::Orphanage orphanage) {
  out.setSeq(m.msg.seq);
  out.setTo(m.msg.to);
  auto body = out.initBody();
  auto tensor = [&](schema::Tensor::Builder b, Blob blob) { fill_tensor(b, m.tensors.at(blob - 1), orphanage); };
  std::visit(Overloaded{
                 [&](const train::Activation& a) {
                   auto b = body.initActivation();
                   b.setIteration(a.iter);
                   b.setMicrobatch(a.mb);
                   tensor(b.initTensor(), a.data);
                   put_list(b.initRoute(static_cast<unsigned>(a.route.size())), a.route);
                   b.setOverflow(a.overflow);
                 },
                 [&](const Forwarded& f) {
                   auto b = body.initForwarded();
                   b.setIteration(f.iter);
                   b.setMicrobatch(f.mb);
                   put_list(b.initPath(static_cast<unsigned>(f.path.size())), f.path);
                   auto c = b.initConfirmed(static_cast<unsigned>(f.confirmed.size()));
                   for (unsigned k = 0; k < f.confirmed.size(); ++k) c.set(k, f.confirmed[k]);
                 },
                 [&](const train::Gradient& g) {
                   auto b = body.initGradient();
                   b.setIteration(g.iter);
                   b.setMicrobatch(g.mb);
                   tensor(b.initTensor(), g.data);
                 },
                 [&](const WhoHolds& w) {
                   auto b = body.initWhoHolds();
                   b.setIteration(w.iter);
                   put_list(b.initDead(static_cast<unsigned>(w.dead.size())), w.dead);
                 },
                 [&](const Adopt& a) {
                   auto b = body.initAdopt();
                   b.setIteration(a.iter);
                   put_list(b.initDead(static_cast<unsigned>(a.dead.size())), a.dead);
                   put_list(b.initHeld(static_cast<unsigned>(a.held.size())), a.held);
                   auto paths = b.initPaths(static_cast<unsigned>(a.paths.size()));
                   for (unsigned k = 0; k < a.paths.size(); ++k)
                     put_list(paths.init(k, static_cast<unsigned>(a.paths[k].size())), a.paths[k]);
                 },
                 [&](const Progress& p) {
                   auto b = body.initProgress();
                   b.setIteration(p.iter);
                   put_list(b.initDone(static_cast<unsigned>(p.done.size())), p.done);
                   put_list(b.initEndDone(static_cast<unsigned>(p.end_done.size())), p.end_done);
                   b.setVersion(p.version);
                   put_list(b.initOrphaned(static_cast<unsigned>(p.orphaned.size())), p.orphaned);
                   put_list(b.initEndOrphaned(static_cast<unsigned>(p.end_orphaned.size())), p.end_orphaned);
                 },
                 [&](const Collect& c) {
                   if (c.owners.empty() && c.round == 0) return body.setCollect(c.iter);
                   auto b = body.initShardedCollect();
                   b.setIteration(c.iter);
                   b.setRound(c.round);
                   put_list(b.initOwners(static_cast<unsigned>(c.owners.size())), c.owners);
                 },
                 [&](const GradSum& g) {
                   auto b = body.initGradSum();
                   b.setIteration(g.iter);
                   put_list(b.initDone(static_cast<unsigned>(g.done.size())), g.done);
                   put_list(b.initEndDone(static_cast<unsigned>(g.end_done.size())), g.end_done);
                   if (g.data) tensor(b.initSum().initTensor(), g.data);
                   else b.initSum().setNone();
                   b.setLossSum(g.loss_sum);
                   b.setVersion(g.version);
                   b.setRound(g.round);
                   b.setSliced(g.sliced);
                 },
                 [&](const Reduced& r) {
                   auto b = body.initReduced();
                   b.setIteration(r.iter);
                   tensor(b.initTensor(), r.data);
                   b.setLoss(r.loss);
                   put_list(b.initDone(static_cast<unsigned>(r.done.size())), r.done);
                   put_list(b.initEndDone(static_cast<unsigned>(r.end_done.size())), r.end_done);
                 },
                 [&](const Committed& c) {
                   auto b = body.initCommitted();
                   b.setIteration(c.iter);
                   b.setStage(static_cast<uint16_t>(c.stage));
                 },
                 [&](const StateAsk&) { body.setStateAsk(); },
                 [&](const StateOffer& o) {
                   auto b = body.initStateOffer();
                   b.setVersion(o.manifest.version);
                   b.setSize(o.manifest.size);
                   b.setChunkSize(o.manifest.chunk_size);
                   put_list(b.initChunkCrcs(static_cast<unsigned>(o.manifest.chunk_crcs.size())), o.manifest.chunk_crcs);
                   b.setCrc(o.manifest.crc);
                 },
                 [&](const ChunkAsk& c) {
                   auto b = body.initChunkAsk();
                   b.setVersion(c.version);
                   b.setIndex(c.index);
                 },
                 [&](const Chunk& c) {
                   auto b = body.initChunk();
                   b.setVersion(c.version);
                   b.setIndex(c.index);
                   b.setBytes(kj::arrayPtr(reinterpret_cast<const kj::byte*>(c.bytes.data()), c.bytes.size()));
                 },
                 [&](const StateDone&) { body.setStateDone(); },
                 [&](const Ready& r) { body.setReady(r.seniority); },
                 [&](const Retract& x) {
                   auto b = body.initRetract();
                   b.setIteration(x.iter);
                   b.setMb(x.mb);
                   b.setEnd(x.end);
                   b.setVersion(x.version);
                   b.setKept(x.kept);
                 },
                 [&](const Leaving&) { body.setLeaving(); },
                 [&](const Slice& x) {
                   auto b = body.initSlice();
                   b.setIteration(x.iter);
                   b.setLeader(x.leader);
                   b.setRound(x.round);
                   b.setVersion(x.version);
                   b.setIndex(x.index);
                   b.setCount(x.count);
                   b.setReduced(x.reduced);
                   tensor(b.initTensor(), x.data);
                 },
                 [&](const ReducePlan& p) {
                   auto b = body.initReducePlan();
                   b.setIteration(p.iter);
                   b.setRound(p.round);
                   put_list(b.initOwners(static_cast<unsigned>(p.owners.size())), p.owners);
                   put_list(b.initMembers(static_cast<unsigned>(p.members.size())), p.members);
                   put_list(b.initVersions(static_cast<unsigned>(p.versions.size())), p.versions);
                   b.setLoss(p.loss);
                   put_list(b.initDone(static_cast<unsigned>(p.done.size())), p.done);
                   put_list(b.initEndDone(static_cast<unsigned>(p.end_done.size())), p.end_done);
                   put_list(b.initRecipients(static_cast<unsigned>(p.recipients.size())), p.recipients);
                 },
                 [&](const Assembled& a) { body.setAssembled(a.iter); },
                 [&](const StepApplied& a) {
                   auto b = body.initApplied();
                   b.setIteration(a.iter);
                   b.setStage(static_cast<uint16_t>(a.stage));
                 },
                 [&](const Busy& x) {
                   auto b = body.initBusy();
                   b.setIteration(x.iter);
                   b.setMicrobatch(x.mb);
                   b.setSeq(x.seq);
                   b.setRefused(x.refused);
                 },
                 [&](const Ack& a) { body.setAck(a.seq); },
             },
             m.msg.body);
}

Result<TrainMessage, WireError> read_train(schema::TrainMessage::Reader in, uint64_t from, const DecodeOptions& options) {
  TrainMessage m;
  m.msg.from = from;
  m.msg.seq = in.getSeq();
  m.msg.to = in.getTo();
  Reader r{options, m.tensors, {}, {}};
  auto body = in.getBody();
  using W = schema::TrainMessage::Body;
  switch (body.which()) {
    case W::ACTIVATION: {
      auto a = body.getActivation();
      m.msg.body = train::Activation{a.getIteration(), a.getMicrobatch(), r.tensor(a.getTensor()),
                              r.list<NodeId>(a.getRoute(), "route"), a.getOverflow()};
      break;
    }
    case W::FORWARDED: {
      auto f = body.getForwarded();
      Forwarded out{f.getIteration(), f.getMicrobatch(), r.list<NodeId>(f.getPath(), "path"),
                    r.list<bool>(f.getConfirmed(), "confirmed")};
      if (out.confirmed.size() > out.path.size() && r.bad.empty())
        r.bad = "forwarded path has " + std::to_string(out.path.size()) + " entries and " +
                std::to_string(out.confirmed.size()) + " flags";
      m.msg.body = std::move(out);
      break;
    }
    case W::GRADIENT: {
      auto g = body.getGradient();
      m.msg.body = train::Gradient{g.getIteration(), g.getMicrobatch(), r.tensor(g.getTensor())};
      break;
    }
    case W::WHO_HOLDS: {
      auto w = body.getWhoHolds();
      m.msg.body = WhoHolds{w.getIteration(), r.list<NodeId>(w.getDead(), "dead")};
      break;
    }
    case W::ADOPT: {
      auto a = body.getAdopt();
      Adopt out{a.getIteration(), r.list<NodeId>(a.getDead(), "dead"), r.list<Mb>(a.getHeld(), "held"), {}};
      auto paths = a.getPaths();
      if (paths.size() > out.held.size() && r.bad.empty())
        r.bad = "adopt has " + std::to_string(paths.size()) + " paths for " + std::to_string(out.held.size()) +
                " microbatches";
      else
        for (auto p : paths) out.paths.push_back(r.list<NodeId>(p, "adopted path"));
      m.msg.body = std::move(out);
      break;
    }
    case W::PROGRESS: {
      auto p = body.getProgress();
      m.msg.body = Progress{p.getIteration(),       r.list<Mb>(p.getDone(), "done"),
                            r.list<Mb>(p.getEndDone(), "endDone"), p.getVersion(),
                            r.list<Mb>(p.getOrphaned(), "orphaned"), r.list<Mb>(p.getEndOrphaned(), "endOrphaned")};
      break;
    }
    case W::COLLECT: m.msg.body = Collect{body.getCollect(), 0, {}}; break;
    case W::SHARDED_COLLECT: {
      auto c = body.getShardedCollect();
      m.msg.body = Collect{c.getIteration(), c.getRound(), r.list<NodeId>(c.getOwners(), "owners")};
      break;
    }
    case W::GRAD_SUM: {
      auto g = body.getGradSum();
      GradSum out{g.getIteration(), r.list<Mb>(g.getDone(), "done"), r.list<Mb>(g.getEndDone(), "endDone"), 0,
                  r.finite(g.getLossSum(), "lossSum"), g.getVersion(), g.getRound(), g.getSliced()};
      if (g.getSum().isTensor()) out.data = r.tensor(g.getSum().getTensor());
      if (out.sliced && out.data && r.bad.empty()) r.bad = "a sliced gradient sum carries a tensor";
      m.msg.body = std::move(out);
      break;
    }
    case W::SLICE: {
      auto x = body.getSlice();
      Slice out{x.getIteration(), x.getLeader(), x.getRound(), x.getVersion(), x.getIndex(), x.getCount(),
                x.getReduced(), r.tensor(x.getTensor())};
      if (r.bad.empty() && (out.count < 2 || out.index >= out.count))
        r.bad = "slice " + std::to_string(out.index) + " of " + std::to_string(out.count);
      m.msg.body = out;
      break;
    }
    case W::REDUCE_PLAN: {
      auto p = body.getReducePlan();
      ReducePlan out{p.getIteration(),
                     p.getRound(),
                     r.list<NodeId>(p.getOwners(), "owners"),
                     r.list<NodeId>(p.getMembers(), "members"),
                     r.list<uint64_t>(p.getVersions(), "versions"),
                     r.finite(p.getLoss(), "loss"),
                     r.list<Mb>(p.getDone(), "done"),
                     r.list<Mb>(p.getEndDone(), "endDone"),
                     r.list<NodeId>(p.getRecipients(), "recipients")};
      if (r.bad.empty() && out.members.size() != out.versions.size())
        r.bad = "reduce plan has " + std::to_string(out.versions.size()) + " versions for " +
                std::to_string(out.members.size()) + " members";
      m.msg.body = std::move(out);
      break;
    }
    case W::ASSEMBLED: m.msg.body = Assembled{body.getAssembled()}; break;
    case W::REDUCED: {
      auto x = body.getReduced();
      m.msg.body = Reduced{x.getIteration(), r.tensor(x.getTensor()), r.finite(x.getLoss(), "loss"),
                           r.list<Mb>(x.getDone(), "done"), r.list<Mb>(x.getEndDone(), "endDone")};
      break;
    }
    case W::COMMITTED: {
      auto c = body.getCommitted();
      m.msg.body = Committed{c.getIteration(), c.getStage()};
      break;
    }
    case W::APPLIED: {
      auto a = body.getApplied();
      m.msg.body = StepApplied{a.getIteration(), a.getStage()};
      break;
    }
    case W::STATE_ASK: m.msg.body = StateAsk{}; break;
    case W::STATE_OFFER: {
      auto o = body.getStateOffer();
      StateManifest man{o.getVersion(), o.getSize(), o.getChunkSize(), r.list<uint32_t>(o.getChunkCrcs(), "chunkCrcs"),
                        o.getCrc()};
      const uint64_t chunks = man.chunk_size == 0 ? 0 : (man.size + man.chunk_size - 1) / man.chunk_size;
      if (r.bad.empty() && ((man.size > 0 && man.chunk_size == 0) || chunks != man.chunk_crcs.size()))
        r.bad = "state of " + std::to_string(man.size) + " bytes in chunks of " + std::to_string(man.chunk_size) +
                " with " + std::to_string(man.chunk_crcs.size()) + " checksums";
      m.msg.body = StateOffer{std::move(man)};
      break;
    }
    case W::CHUNK_ASK: {
      auto c = body.getChunkAsk();
      m.msg.body = ChunkAsk{c.getVersion(), c.getIndex()};
      break;
    }
    case W::CHUNK: {
      auto c = body.getChunk();
      auto bytes = c.getBytes();
      m.msg.body = Chunk{c.getVersion(), c.getIndex(), std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size())};
      break;
    }
    case W::STATE_DONE: m.msg.body = StateDone{}; break;
    case W::READY: m.msg.body = Ready{body.getReady()}; break;
    case W::ACK: m.msg.body = Ack{body.getAck()}; break;
    case W::LEAVING: m.msg.body = Leaving{}; break;
    case W::BUSY: {
      auto b = body.getBusy();
      m.msg.body = Busy{b.getIteration(), b.getMicrobatch(), b.getSeq(), b.getRefused()};
      break;
    }
    case W::RETRACT: {
      auto x = body.getRetract();
      m.msg.body = Retract{x.getIteration(), x.getMb(), x.getEnd(), x.getVersion(), x.getKept()};
      break;
    }
    default:
      return Err<WireError>{WireError{WireErrc::kUnknownKind,
                                      "unknown kind: train message " + std::to_string(static_cast<unsigned>(body.which()))}};
  }
  if (r.tensor_error) return Err<WireError>{std::move(*r.tensor_error)};
  if (!r.bad.empty()) return invalid(std::move(r.bad));
  return m;
}

}  // namespace gwtf::wire
