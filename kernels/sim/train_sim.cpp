#include "kernels/sim/train_sim.hpp"

// GCC 12 reports moves of the event queue's std::variant inputs as maybe-uninitialized (a known false positive of
// its -O2 flow analysis on variants: every alternative here is fully initialized).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cmath>
#include <ostream>
#include <sstream>

#include "kernels/base/overloaded.hpp"

namespace gwtf::sim {

using namespace gwtf::train;

namespace {

// A modeled loss that falls with the iteration and differs per microbatch, so a lost or doubled microbatch shows.
double modeled_loss(Iter i, Mb mb) { return 5.0 / (1.0 + 0.05 * static_cast<double>(i)) + 0.001 * (mb % 7); }

std::string describe(const Body& b) {
  std::ostringstream o;
  o << body_name(b);
  std::visit(Overloaded{
                 [&](const Activation& a) {
                   o << " i" << a.iter << " mb" << a.mb;
                   for (NodeId n : a.route) o << " >" << n;
                 },
                 [&](const Forwarded& f) {
                   o << " i" << f.iter << " mb" << f.mb;
                   for (size_t k = 0; k < f.path.size(); ++k)
                     o << " >" << f.path[k] << (k < f.confirmed.size() && f.confirmed[k] ? "" : "?");
                 },
                 [&](const Gradient& g) { o << " i" << g.iter << " mb" << g.mb; },
                 [&](const WhoHolds& w) {
                   o << " i" << w.iter << " dead";
                   for (NodeId d : w.dead) o << ' ' << d;
                 },
                 [&](const Adopt& a) {
                   o << " i" << a.iter << " dead";
                   for (NodeId d : a.dead) o << ' ' << d;
                   o << " held";
                   for (Mb mb : a.held) o << ' ' << mb;
                 },
                 [&](const Progress& p) { o << " i" << p.iter << " n" << p.done.size() << "+" << p.end_done.size(); },
                 [&](const Collect& c) { o << " i" << c.iter; },
                 [&](const GradSum& g) { o << " i" << g.iter << " n" << g.done.size() << "+" << g.end_done.size(); },
                 [&](const Reduced& r) { o << " i" << r.iter; },
                 [&](const Committed& c) { o << " i" << c.iter << " stage " << c.stage; },
                 [&](const StepApplied& a) { o << " i" << a.iter << " stage " << a.stage; },
                 [&](const StateOffer& f) {
                   o << " version " << f.manifest.version << " chunks " << f.manifest.chunk_crcs.size();
                 },
                 [&](const ChunkAsk& c) { o << " version " << c.version << " #" << c.index; },
                 [&](const Chunk& c) { o << " version " << c.version << " #" << c.index << " " << c.bytes.size() << "B"; },
                 [&](const Ready& r) { o << " seniority " << r.seniority; },
                 [&](const Ack& a) { o << " seq " << a.seq; },
                 [&](const auto&) {},
             },
             b);
  return o.str();
}

}  // namespace

TrainSim::TrainSim(TrainSimConfig cfg) : cfg_(std::move(cfg)), rng_(cfg_.seed), nic_(cfg_.nic_Bps) {
  cfg_.params.relay_stages = static_cast<Stage>(cfg_.replicas.size());
  std::vector<std::pair<NodeId, Stage>> all;
  for (int h = 0; h < cfg_.holders; ++h) all.push_back({next_id_++, 0});
  for (size_t s = 0; s < cfg_.replicas.size(); ++s)
    for (int r = 0; r < cfg_.replicas[s]; ++r) all.push_back({next_id_++, static_cast<Stage>(s + 1)});
  for (const auto& [id, stage] : all) {
    nodes_[id].sm = std::make_unique<TrainNode>(id, stage, cfg_.params);
    if (cfg_.slowdown) nodes_[id].speed = 1.0 / cfg_.slowdown(id);
    if (cfg_.trace) *cfg_.trace << 0 << " " << id << " FOUNDER stage " << stage << "\n";
  }
  for (const auto& [id, stage] : all)
    for (const auto& [peer, peer_stage] : all)
      if (peer != id) queue_.push(0, Ev{Ev::kInput, id, PeerUp{peer, peer_stage}, 0});
  queue_.push(0, Ev{Ev::kTick, 0, Tick{}, 0});
}

std::vector<NodeId> TrainSim::stage_nodes(Stage s) const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_)
    if (n.sm->stage() == s) out.push_back(id);
  return out;
}

void TrainSim::crash_at(NodeId n, double t) { queue_.push(t, Ev{Ev::kCrash, n, Tick{}, 0}); }
void TrainSim::leave_at(NodeId n, double t) { queue_.push(t, Ev{Ev::kInput, n, train::Leave{}, 0}); }
void TrainSim::corrupt_chunks(NodeId donor, int count) { nodes_.at(donor).corrupt += count; }

NodeId TrainSim::join_at(Stage s, double t) {
  const NodeId id = next_id_++;
  queue_.push(t, Ev{Ev::kJoin, id, PeerJoining{id, s}, 0});
  return id;
}

// The newcomer hears of every node there ever was (the dead as dead: microbatch ownership depends on them), and
// every running node hears of it.
void TrainSim::join(NodeId id, Stage s) {
  Node& node = nodes_[id];
  node.sm = std::make_unique<TrainNode>(id, s, cfg_.params, /*joining=*/true);
  if (cfg_.slowdown) node.speed = 1.0 / cfg_.slowdown(id);
  node.started = now_;
  if (cfg_.trace) *cfg_.trace << now_ << " " << id << " JOIN stage " << s << "\n";
  for (const auto& [other, n] : nodes_) {
    if (other == id) continue;
    deliver(id, PeerJoining{other, n.sm->stage()});
    if (n.crashed || n.expelled) deliver(id, PeerDown{other});
  }
  for (auto& [other, n] : nodes_)
    if (other != id && !n.crashed) queue_.push(now_, Ev{Ev::kInput, other, PeerJoining{id, s}, 0});
}

// Identical bytes on replicas in the same state (a header, then filler drawn from it): several donors serve one
// newcomer, and the import checks it got the state of its stage after the iterations it was told.
std::string TrainSim::modeled_state(Stage s, Iter version, uint64_t chain) const {
  std::string out = "gwtf-sim-state " + std::to_string(s) + " " + std::to_string(version) + " " +
                    std::to_string(chain) + "\n";
  Rng fill(chain ^ (uint64_t{s} << 48) ^ version);
  while (out.size() < cfg_.state_bytes) out.push_back(static_cast<char>(fill.below(256)));
  return out;
}
void TrainSim::crash_when(CrashPoint p) { crash_points_.push_back(p); }
void TrainSim::slow_down(NodeId n, double factor) { nodes_.at(n).speed = 1.0 / factor; }
void TrainSim::poison(NodeId n, ComputeKind kind, Iter iter, int times, int64_t mb) {
  nodes_.at(n).poison[{static_cast<int>(kind), iter, mb}] += times;
  if (cfg_.trace)
    *cfg_.trace << 0 << " " << n << " POISON " << compute_name(kind) << " i" << iter << " mb" << mb << " x" << times << "\n";
}
void TrainSim::corrupt_output(NodeId n, ComputeKind kind, Iter iter, int times, int64_t mb) {
  nodes_.at(n).bad_outputs[{static_cast<int>(kind), iter, mb}] += times;
  if (cfg_.trace)
    *cfg_.trace << 0 << " " << n << " CORRUPT " << compute_name(kind) << " i" << iter << " mb" << mb << " x" << times << "\n";
}

namespace {
// Takes one of the counted faults planned for this task (by microbatch, else for any), if any is left.
bool take_fault(std::map<std::tuple<int, Iter, int64_t>, int>& faults, const train::ComputeTask& t) {
  auto f = faults.find({static_cast<int>(t.kind), t.iter, static_cast<int64_t>(t.mb)});
  if (f == faults.end()) f = faults.find({static_cast<int>(t.kind), t.iter, -1});
  if (f == faults.end() || f->second <= 0) return false;
  if (--f->second == 0) faults.erase(f);
  return true;
}
}  // namespace

void TrainSim::presume_dead_at(NodeId n, double t) {
  queue_.push(t, Ev{Ev::kDown, 0, Tick{}, n});  // node 0: tell everyone, keep n running
}

Blob TrainSim::store(Payload p) {
  blobs_[next_blob_] = std::move(p);
  return next_blob_++;
}

double TrainSim::task_time(const Node& node, const ComputeTask& t) const {
  double base = cfg_.aggregate_time;
  switch (t.kind) {
    case ComputeKind::kForward: base = cfg_.forward_time; break;
    case ComputeKind::kBackward: base = 2 * cfg_.forward_time; break;
    case ComputeKind::kStartForward:
    case ComputeKind::kEndBackward:
    case ComputeKind::kStartBackward: base = cfg_.holder_time; break;
    default: break;
  }
  return base / node.speed;
}

bool TrainSim::last_server(NodeId n) const {
  const Node& node = nodes_.at(n);
  if (node.crashed || node.expelled || node.sm->is_holder() || !node.sm->ready()) return false;
  return std::none_of(nodes_.begin(), nodes_.end(), [&](const auto& other) {
    const Node& o = other.second;
    return other.first != n && !o.crashed && !o.expelled && o.sm->stage() == node.sm->stage() && o.sm->ready() &&
           o.sm->stepped() >= node.sm->stepped();
  });
}

void TrainSim::crash(NodeId n, const char* how) {
  Node& node = nodes_.at(n);
  if (node.crashed) return;
  node.crashed = true;
  node.left = std::min(node.left, now_);
  node.died = now_;
  if (cfg_.trace) *cfg_.trace << now_ << " " << n << " " << how << "\n";
  node.accumulator.clear();  // its memory is gone
  if (cfg_.compute) cfg_.compute->crash(n);
  crashed_at_[n] = now_;
  if (cfg_.router) cfg_.router->crashed(n, now_);
  for (auto& [id, other] : nodes_)
    if (id != n && !other.crashed)
      queue_.push(now_ + cfg_.detect_after * (1 + 0.5 * rng_.uniform()), Ev{Ev::kInput, id, PeerDown{n}, 0});
}

void TrainSim::deliver(NodeId n, const Input& in) {
  Node& node = nodes_.at(n);
  if (node.crashed) return;
  if (cfg_.trace) {
    if (auto* r = std::get_if<Receive>(&in); r && !std::holds_alternative<Ack>(r->msg.body))
      *cfg_.trace << now_ << " " << n << " <- " << r->msg.from << " " << describe(r->msg.body) << "\n";
    if (auto* d = std::get_if<PeerDown>(&in)) *cfg_.trace << now_ << " " << n << " down " << d->peer << "\n";
  }
  Output out;
  if (auto* r = std::get_if<Receive>(&in)) {
    // As in the runtime, a received tensor is the receiver's own copy under a handle of its own: releasing it
    // (a duplicate, say) frees nothing the sender or an earlier copy still uses.
    Receive own = *r;
    for_each_blob(own.msg.body, [&](Blob& b) {
      if (!b || !blobs_.count(b)) return;
      const Blob copy = store(blobs_.at(b));
      if (cfg_.compute) cfg_.compute->alias(b, copy);
      b = copy;
    });
    node.sm->step(own, now_, out);
  } else {
    node.sm->step(in, now_, out);
  }
  if (!node.sm->is_holder()) report_.peak_buffered = std::max(report_.peak_buffered, node.sm->buffered());
  carry_out(n, out);
}

uint64_t TrainSim::wire_bytes(NodeId from, train::Body& body) {
  uint64_t bytes = 256;
  train::for_each_blob(body, [&](Blob& b) {
    if (!b) return;
    auto p = blobs_.find(b);
    const bool sum = p != blobs_.end() && p->second.kind == Payload::kSum && p->second.stage < cfg_.sum_bytes.size();
    bytes += sum ? cfg_.sum_bytes[p->second.stage] / p->second.slices : cfg_.tensor_bytes;
  });
  if (const auto* c = std::get_if<Chunk>(&body)) {
    const Stage s = nodes_.at(from).sm->stage();
    bytes += s < cfg_.state_wire_bytes.size() && cfg_.state_bytes > 0
                 ? static_cast<uint64_t>(static_cast<double>(cfg_.state_wire_bytes[s]) *
                                         static_cast<double>(c->bytes.size()) / static_cast<double>(cfg_.state_bytes))
                 : c->bytes.size();
  }
  return bytes;
}

void TrainSim::carry_out(NodeId n, Output& out) {
  for (auto& m : out.send) {
    // A stream transport does not send again what it is still delivering: a retransmission of a copy still on its
    // way is dropped (else, at 1 Gbit/s, copies of 238 MB results queued behind each other for good). Acks (seq
    // 0) are never retransmitted.
    if (auto copy = in_transit_.find({n, m.seq}); copy != in_transit_.end() && copy->second > now_) {
      ++report_.retransmissions_held;
      continue;
    }
    ++report_.messages;
    if (std::holds_alternative<Chunk>(m.body)) ++report_.chunks_served[n];
    if (cfg_.loss_rate > 0 && rng_.chance(cfg_.loss_rate)) {
      ++report_.lost_messages;
      if (cfg_.trace && !std::holds_alternative<Ack>(m.body))
        *cfg_.trace << now_ << " " << m.to << " LOST <- " << n << " " << describe(m.body) << "\n";
      continue;
    }
    if (auto* c = std::get_if<Chunk>(&m.body); c && nodes_.at(n).corrupt > 0 && !c->bytes.empty()) {
      --nodes_.at(n).corrupt;
      c->bytes[c->bytes.size() / 2] ^= 0x5a;  // one byte flipped on the way
    }
    Nic::Transfer t{now_, now_};
    if (cfg_.delay) {
      const uint64_t bytes = wire_bytes(n, m.body);
      t = nic_.send(n, m.to, now_, bytes, cfg_.delay(n, m.to, bytes));
      if (m.seq) in_transit_[{n, m.seq}] = t.arrives;
    } else {
      t.arrives += cfg_.latency * (0.5 + rng_.uniform());
    }
    queue_.push(t.arrives, Ev{Ev::kInput, m.to, Receive{m}, 0, t.leaves});
  }
  for (const auto& e : out.events) {
    ++report_.events[event_name(e.kind)];
    if (cfg_.trace)
      *cfg_.trace << now_ << " " << n << " event " << event_name(e.kind) << " i" << e.iter << " mb" << e.mb << " peer "
                  << e.peer << "\n";
    if (e.kind == EventKind::kRedo) {
      ++report_.iterations[e.iter].redos;
      auto c = crashed_at_.find(e.peer);
      if (c != crashed_at_.end()) {
        recovery_latencies_.push_back(now_ - c->second);
        report_.iterations[e.iter].recovery_latencies.push_back(now_ - c->second);
        crashed_at_.erase(c);  // the first redo of its work counts
      }
    }
    if (e.kind == EventKind::kJoined)
      report_.joins.push_back({n, now_ - nodes_.at(n).started, nodes_.at(n).imported});
    if (e.kind == EventKind::kIterationCommitted) {
      auto& a = report_.iterations[e.iter];
      if (a.committed_at < 0) a.committed_at = now_;
    }
    if (e.kind == EventKind::kStepped && nodes_.at(n).sm->is_holder()) {
      // Live holders agree; a holder that died after applying left no trace (see applied_).
      auto& reported = holder_loss_[e.iter];
      for (const auto& [other, loss] : reported)
        if (loss != e.value && !nodes_.at(other).crashed && !nodes_.at(other).expelled)
          report_.violations.push_back("holders report different losses for iteration " + std::to_string(e.iter));
      reported[n] = e.value;
      report_.loss[e.iter] = e.value;
    }
  }
  for (Blob b : out.release) released_.insert({n, b});
  for (const auto& t : out.compute) start_compute(n, t);
}

void TrainSim::start_compute(NodeId n, const ComputeTask& t) {
  Node& node = nodes_.at(n);
  if (cfg_.trace) *cfg_.trace << now_ << " " << n << " run " << compute_name(t.kind) << " i" << t.iter << " mb" << t.mb << "\n";
  for (const auto& p : crash_points_)
    if (p.node == n && p.kind == t.kind && p.iter == t.iter && (p.mb == t.mb || !is_work(t.kind))) {
      crash(n);  // in the middle of this very piece of work
      return;
    }
  const Stage s = node.sm->stage();
  const Stage S = cfg_.params.relay_stages;
  auto violation = [&](const std::string& what) {
    report_.violations.push_back("node " + std::to_string(n) + " " + compute_name(t.kind) + " iter " +
                                 std::to_string(t.iter) + " mb " + std::to_string(t.mb) + ": " + what);
  };
  auto input = [&](size_t k, Payload::Kind kind, Stage from_stage) -> const Payload* {
    if (k >= t.inputs.size() || !blobs_.count(t.inputs[k])) {
      violation("missing input");
      return nullptr;
    }
    if (released_.count({n, t.inputs[k]})) violation("reads a blob this node released (its memory is gone)");
    const Payload& p = blobs_.at(t.inputs[k]);
    if (p.kind != kind || (is_work(t.kind) && (p.iter != t.iter || p.mb != t.mb || p.stage != from_stage)))
      violation("wrong input (iter " + std::to_string(p.iter) + " mb " + std::to_string(p.mb) + " stage " +
                std::to_string(p.stage) + ")");
    return &p;
  };
  ComputeDone done;
  done.id = t.id;
  const double time = task_time(node, t);
  // A result holding NaN: planned (poison), or from an input another node corrupted.
  const bool bad_input = is_work(t.kind) && std::any_of(t.inputs.begin(), t.inputs.end(), [&](train::Blob b) {
                           auto p = blobs_.find(b);
                           return p != blobs_.end() && p->second.bad;
                         });
  const bool poisoned = take_fault(node.poison, t) || bad_input;
  // A replay runs on the weights from before the node's last step (the only old copy a driver keeps) and
  // accumulates into nothing.
  if (t.replay && node.sm->stepped() != t.iter + 1) violation("replay needs weights older than one step");
  Payload scratch;
  Payload& acc = t.replay ? scratch : node.accumulator[t.iter];
  const int sign = t.retract ? -1 : 1;  // a retraction takes an earlier contribution back out
  switch (t.kind) {
    case ComputeKind::kStartForward:
      done.output = store({Payload::kActivation, t.iter, t.mb, 0, {}, {}, 0, 0});
      break;
    case ComputeKind::kForward:
      input(0, Payload::kActivation, static_cast<Stage>(s - 1));
      done.output = store({Payload::kActivation, t.iter, t.mb, s, {}, {}, 0, 0});
      break;
    case ComputeKind::kEndBackward:
      input(0, Payload::kActivation, S);
      done.loss = modeled_loss(t.iter, t.mb);
      if (!t.retract) done.output = store({Payload::kGradient, t.iter, t.mb, static_cast<Stage>(S + 1), {}, {}, 0, 0});
      if (!poisoned) acc.end[t.mb] += sign;
      break;
    case ComputeKind::kBackward:
      input(0, Payload::kActivation, static_cast<Stage>(s - 1));
      input(1, Payload::kGradient, static_cast<Stage>(s + 1));
      if (!t.retract) done.output = store({Payload::kGradient, t.iter, t.mb, s, {}, {}, 0, 0});
      if (!poisoned) acc.start[t.mb] += sign;
      break;
    case ComputeKind::kStartBackward:
      input(0, Payload::kGradient, 1);
      if (!poisoned) acc.start[t.mb] += sign;
      break;
    case ComputeKind::kSnapshot: {
      Payload p = acc;
      p.kind = Payload::kSum;
      p.summed = {n};
      p.iter = t.iter;
      p.stage = s;
      done.output = store(std::move(p));
      break;
    }
    case ComputeKind::kSlice:
      if (const Payload* p = input(0, Payload::kSum, s)) {
        Payload cut = *p;
        if (p->slices != 1) violation("cuts a slice");
        cut.slice = t.slice;
        cut.slices = t.slices;
        done.output = store(std::move(cut));
      }
      break;
    case ComputeKind::kReduce: {
      Payload sum{Payload::kSum, t.iter, 0, s, {}, {}, 0, next_identity_++};
      if (t.slices > 0) {
        sum.slice = t.slice;
        sum.slices = t.slices;
      }
      for (size_t k = 0; k < t.inputs.size(); ++k)
        if (const Payload* p = input(k, Payload::kSum, s)) {
          if (p->slice != sum.slice || p->slices != sum.slices) violation("reduces another cut");
          for (const auto& [mb, c] : p->start) sum.start[mb] += c;
          for (const auto& [mb, c] : p->end) sum.end[mb] += c;
          sum.summed.insert(p->summed.begin(), p->summed.end());
        }
      done.output = store(std::move(sum));
      break;
    }
    case ComputeKind::kConcat: {
      // The slices must be one reduce's: the same contributions summed in every cut, each cut once, in order.
      Payload whole{Payload::kSum, t.iter, 0, s, {}, {}, 0, 0};
      for (size_t k = 0; k < t.inputs.size(); ++k)
        if (const Payload* p = input(k, Payload::kSum, s)) {
          if (p->slice != k || p->slices != t.inputs.size()) violation("concatenates a wrong cut");
          if (k == 0) {
            whole.start = p->start;
            whole.end = p->end;
            whole.summed = p->summed;
          } else if (p->start != whole.start || p->end != whole.end || p->summed != whole.summed) {
            violation("concatenates slices of different reduces");
          }
          whole.identity = (whole.identity ^ p->identity) * 0x9E3779B97F4A7C15ull + 1;
        }
      done.output = store(std::move(whole));
      break;
    }
    case ComputeKind::kApply: {
      if (const Payload* p = input(0, Payload::kSum, s)) {
        // The ledger, checked on the modeled gradient itself: each microbatch exactly once at this stage. The first
        // member to apply a stage's iteration counts what is missing or doubled (the others apply the same sum).
        const bool first = !node.expelled && applied_[{s, t.iter}].empty();
        if (first) credited_[{s, t.iter}] = p->summed;
        for (Mb mb = 0; mb < cfg_.params.microbatches; ++mb) {
          auto count = [&](const std::map<Mb, int>& m) { auto f = m.find(mb); return f == m.end() ? 0 : f->second; };
          if (first) {
            const int c = count(p->start);
            report_.lost_contributions += c == 0;
            report_.duplicated_contributions += c > 1 ? static_cast<uint64_t>(c - 1) : 0;
          }
          if (count(p->start) != 1) violation("microbatch " + std::to_string(mb) + " counted " +
                                              std::to_string(count(p->start)) + " times");
          if (s == 0 && count(p->end) != 1) violation("microbatch " + std::to_string(mb) + " loss counted " +
                                                      std::to_string(count(p->end)) + " times");
        }
        // A node presumed dead is out of the swarm (it must join anew): what it applies afterwards is its own.
        if (!node.expelled) {
          auto& applied = applied_[{s, t.iter}];
          for (const auto& [other, identity] : applied)
            if (identity != p->identity && !nodes_.at(other).crashed && !nodes_.at(other).expelled)
              violation("live members of the stage applied different gradients (node " + std::to_string(other) + ")");
          applied[n] = p->identity;
        }
        node.chain = (node.chain ^ p->identity) * 0x9E3779B97F4A7C15ull + 1;
      }
      node.accumulator.erase(t.iter);
      break;
    }
    case ComputeKind::kExport:
      exported_chain_[{s, node.sm->stepped()}] = node.chain;
      if (cfg_.compute) done.state = std::make_shared<const std::string>(cfg_.compute->export_state(n, s, node.sm->stepped()));
      else done.state = std::make_shared<const std::string>(modeled_state(s, node.sm->stepped(), node.chain));
      break;
    case ComputeKind::kImport: {
      node.imported = t.iter;
      if (!t.state) {
        violation("import without a state");
        done.finite = false;
        break;
      }
      std::istringstream header(t.state->substr(0, t.state->find('\n')));
      std::string magic;
      Stage stage = 0;
      Iter version = 0;
      uint64_t chain = 0;
      if (!cfg_.compute) {
        header >> magic >> stage >> version >> chain;
        if (magic != "gwtf-sim-state" || stage != s || version != t.iter ||
            *t.state != modeled_state(stage, version, chain)) {
          violation("imported a wrong state (" + magic + " stage " + std::to_string(stage) + " version " +
                    std::to_string(version) + ")");
          done.finite = false;
        }
        node.chain = chain;
      } else if (!cfg_.compute->import_state(n, s, *t.state)) {
        violation("the state a joiner received was refused");
        done.finite = false;
      } else {
        node.chain = exported_chain_[{s, t.iter}];  // real bytes carry no chain: the donors' at that version
      }
      break;
    }
  }
  if (poisoned) done.finite = false;
  else if (done.output && take_fault(node.bad_outputs, t)) blobs_.at(done.output).bad = true;
  if (cfg_.compute && !poisoned && t.kind != ComputeKind::kExport && t.kind != ComputeKind::kImport) {
    const double loss = cfg_.compute->run(n, s, t, done.output);
    if (t.kind == ComputeKind::kEndBackward) done.loss = loss;
  }
  node.busy.push_back({now_, now_ + time});
  if (t.kind == ComputeKind::kSnapshot) node.reducing.insert(t.iter);
  if (is_work(t.kind)) {
    ++report_.work_tasks[s];
    ++report_.total_tasks;
    auto& a = report_.iterations[t.iter];
    a.work_seconds += time * node.speed;  // nominal: the same work costs the same wherever it runs
    if (t.replay) ++a.replays;
    else {
      node.work[t.iter] += s == 0 ? cfg_.holder_time : 1.5 * cfg_.forward_time;  // wasted_fraction's unit
      if (t.kind == ComputeKind::kBackward) node.backwards[t.iter].push_back(now_ + time);
    }
  }
  queue_.push(now_ + time, Ev{Ev::kInput, n, Finished{done}, 0});
}

std::string TrainSim::stall_report() const {
  auto live = [](const Node& n) { return !n.crashed && !n.expelled && n.sm->ready(); };
  Iter oldest = cfg_.params.iterations;
  for (const auto& [id, n] : nodes_)
    if (live(n)) oldest = std::min(oldest, n.sm->stepped());
  if (oldest >= cfg_.params.iterations) return "";
  std::ostringstream o;
  o << "iteration " << oldest << ":";
  for (Stage s = 0; s <= cfg_.params.relay_stages; ++s) {
    std::map<Mb, std::vector<NodeId>> start, end;
    bool behind = false;
    for (const auto& [id, n] : nodes_) {
      if (!live(n) || n.sm->stage() != s) continue;
      behind |= n.sm->stepped() <= oldest;
      const auto [done, end_done] = n.sm->contributions(oldest);
      for (Mb mb : done) start[mb].push_back(id);
      for (Mb mb : end_done) end[mb].push_back(id);
    }
    if (!behind) continue;
    o << " stage " << s << " {";
    auto describe = [&](const std::map<Mb, std::vector<NodeId>>& part, const char* label) {
      o << label;
      bool exact = true;
      for (Mb mb = 0; mb < cfg_.params.microbatches; ++mb) {
        auto f = part.find(mb);
        if (f != part.end() && f->second.size() == 1) continue;
        exact = false;
        if (f == part.end()) {
          o << " missing " << mb;
          continue;
        }
        o << " doubled " << mb << " (nodes";
        for (NodeId id : f->second) o << " " << id;
        o << ")";
      }
      if (exact) o << " every microbatch once";
    };
    describe(start, s == 0 ? "start part:" : "");
    if (s == 0) describe(end, "; end part:");
    o << " }";
  }
  return o.str();
}

void TrainSim::relay_idle(double from, double to, double& live, double& idle) const {
  for (const auto& [id, n] : nodes_) {
    if (n.sm->stage() == 0) continue;
    const double a = std::max(from, n.started), b = std::min(to, n.left);
    if (b <= a) continue;
    double busy = 0;
    for (const auto& [s, e] : n.busy) busy += std::max(0.0, std::min(b, e) - std::max(a, s));
    live += b - a;
    idle += std::max(0.0, b - a - busy);
  }
}

TrainSimReport TrainSim::run(double time_limit) {
  // Done when every live node that serves has stepped every iteration: a newcomer still fetching the state has no
  // part in the training yet (as SWARM's run ends once every stage stepped, whoever is still downloading). With
  // state downloads that take seconds and a replacement for every crash, some newcomer is nearly always fetching.
  auto all_done = [&] {
    for (const auto& [id, n] : nodes_)
      if (!n.crashed && !n.expelled && n.sm->ready() && !n.sm->finished()) return false;
    return true;
  };
  while (!queue_.empty() && queue_.next_time() <= time_limit) {
    auto [t, ev] = queue_.pop();
    now_ = t;
    switch (ev.kind) {
      case Ev::kInput:
        // Still queued at its sender's interface when the sender died: it never left.
        if (const auto* r = std::get_if<Receive>(&ev.input); r && nodes_.at(r->msg.from).died < ev.leaves) break;
        deliver(ev.node, ev.input);
        break;
      case Ev::kCrash:
        if (cfg_.spare_last_server && last_server(ev.node)) {
          ++report_.crash_seconds_deferred;
          queue_.push(now_ + 1, ev);  // tried again each second
        } else {
          crash(ev.node);
        }
        break;
      case Ev::kJoin:
        join(ev.node, std::get<PeerJoining>(ev.input).stage);
        if (cfg_.router) cfg_.router->joined(ev.node, std::get<PeerJoining>(ev.input).stage, now_);
        break;
      case Ev::kDown:
        nodes_.at(ev.about).expelled = true;
        nodes_.at(ev.about).left = std::min(nodes_.at(ev.about).left, now_);
        for (auto& [id, other] : nodes_)
          if (id != ev.about && !other.crashed)
            queue_.push(now_ + cfg_.detect_after * 0.5 * rng_.uniform(), Ev{Ev::kInput, id, PeerDown{ev.about}, 0});
        break;
      case Ev::kTick:
        if (all_done()) {
          report_.finished = true;
          break;
        }
        if (cfg_.router)
          for (auto& [id, hops] : cfg_.router->route(now_)) {
            auto n = nodes_.find(id);
            if (n == nodes_.end() || n->second.crashed || hops_given_[id] == hops) continue;
            hops_given_[id] = hops;
            deliver(id, SetNextHops{hops});
          }
        for (auto& [id, n] : nodes_) deliver(id, Tick{});
        for (auto m = in_transit_.begin(); m != in_transit_.end();)
          m = m->second <= now_ ? in_transit_.erase(m) : std::next(m);
        for (auto& [id, n] : nodes_)
          if (!n.crashed && !n.expelled && n.sm->drained()) {  // left gracefully: gone, as if its process ended
            ++report_.departures;
            crash(id, "LEFT");
          }
        queue_.push(now_ + cfg_.tick, Ev{Ev::kTick, 0, Tick{}, 0});
        // Where every unfinished stage stands, every 10 simulated seconds: a stall reads off the trace.
        if (cfg_.trace && std::floor(now_ / 10) != std::floor((now_ - cfg_.tick) / 10))
          *cfg_.trace << now_ << " 0 STANDING " << stall_report() << "\n";
        if (cfg_.progress) {
          train::Iter stepped = cfg_.params.iterations;
          for (const auto& [id, n] : nodes_)
            if (n.sm->is_holder() && !n.crashed && !n.expelled) stepped = std::min(stepped, n.sm->stepped());
          cfg_.progress(now_, stepped);
        }
        break;
    }
    if (report_.finished) break;
  }
  report_.time = now_;
  // Replicas of a stage that finished hold the same state: the same reduces applied in the same order (a
  // newcomer: from the state it imported on; one still fetching it holds none yet).
  if (report_.finished)
    for (Stage st = 1; st <= cfg_.params.relay_stages; ++st) {
      std::set<uint64_t> chains;
      for (const auto& [id, n] : nodes_)
        if (n.sm->stage() == st && !n.crashed && !n.expelled && n.sm->ready()) chains.insert(n.chain);
      if (chains.size() > 1) report_.violations.push_back("replicas of stage " + std::to_string(st) + " diverged");
    }
  if (!report_.finished) report_.stall = stall_report();
  const double M = cfg_.params.microbatches, I = static_cast<double>(cfg_.params.iterations);
  const double S = cfg_.params.relay_stages;
  report_.useful_tasks = static_cast<uint64_t>(I * M * (3 + 2 * S));
  // Compute in nominal seconds: useful work vs all work started (including work lost in a crash).
  double total = 0;
  for (const auto& [stage, count] : report_.work_tasks)
    total += static_cast<double>(count) * (stage == 0 ? cfg_.holder_time : 1.5 * cfg_.forward_time);
  const double useful = I * M * (3 * cfg_.holder_time + S * 3 * cfg_.forward_time);
  report_.wasted_fraction = total > 0 ? std::max(0.0, 1 - useful / total) : 0;
  // Work that died with a crashed node: of iterations whose applied gradient does not add up its sum.
  double crash_lost = 0, in_reduce = 0;
  std::map<double, double> durable;  // the deposit bound: of the lost work, what had become durable
  for (const auto& [id, n] : nodes_)
    if (n.crashed)
      for (const auto& [iter, seconds] : n.work) {
        const auto credited = credited_.find({n.sm->stage(), iter});
        if (credited != credited_.end() && credited->second.count(id)) continue;
        crash_lost += seconds;
        if (n.reducing.count(iter)) in_reduce += seconds;
        const auto ended = n.backwards.find(iter);
        if (ended == n.backwards.end()) continue;
        for (double after : kDurableAfter) {
          const auto kept = std::count_if(ended->second.begin(), ended->second.end(),
                                          [&](double t) { return t <= n.died - after; });
          durable[after] += std::min(seconds, static_cast<double>(kept) * 3 * cfg_.forward_time);  // fwd + bwd
        }
      }
  report_.crash_lost_fraction = total > 0 ? crash_lost / total : 0;
  report_.crash_lost_in_reduce_fraction = total > 0 ? in_reduce / total : 0;
  for (double after : kDurableAfter)
    report_.wasted_if_durable_after[after] =
        total - durable[after] > 0 ? std::max(0.0, 1 - useful / (total - durable[after])) : 0;
  for (auto& [i, a] : report_.iterations) a.wasted_seconds = std::max(0.0, a.work_seconds - useful / I);
  // Idle: relay time in the swarm (from start or join to crash, expulsion or the end) not computing, over the
  // whole run and per iteration (from the previous commit to this one).
  double live = 0, idle = 0;
  relay_idle(0, report_.time, live, idle);
  report_.idle_fraction = live > 0 ? idle / live : 0;
  double from = 0;
  for (auto& [i, a] : report_.iterations) {
    if (a.committed_at < 0) continue;
    double l = 0;
    relay_idle(from, a.committed_at, l, a.idle_seconds);
    a.idle_fraction = l > 0 ? a.idle_seconds / l : 0;
    from = a.committed_at;
  }
  if (!recovery_latencies_.empty()) {
    double sum = 0;
    for (double l : recovery_latencies_) sum += l;
    report_.mean_recovery_latency = sum / static_cast<double>(recovery_latencies_.size());
  }
  return report_;
}

}  // namespace gwtf::sim
