#include "kernels/train/train_node.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

#include "kernels/base/overloaded.hpp"
#include "kernels/base/result.hpp"

namespace gwtf::train {

namespace {

std::vector<Mb> as_vector(const std::set<Mb>& s) { return {s.begin(), s.end()}; }

bool contains(const std::vector<NodeId>& v, NodeId n) { return std::find(v.begin(), v.end(), n) != v.end(); }

// Confirmation flags for a path of n entries; entries nobody reported on are unconfirmed.
std::vector<bool> confirmed_flags(std::vector<bool> c, size_t n) {
  c.resize(n, false);
  return c;
}

ComputeTask task(ComputeKind kind, Iter iter, Mb mb = 0, std::vector<Blob> inputs = {}, bool replay = false) {
  ComputeTask t;
  t.kind = kind;
  t.iter = iter;
  t.mb = mb;
  t.inputs = std::move(inputs);
  t.replay = replay;
  return t;
}

bool is_backward(ComputeKind k) {
  return k == ComputeKind::kBackward || k == ComputeKind::kEndBackward || k == ComputeKind::kStartBackward;
}

}  // namespace

TrainNode::TrainNode(NodeId id, Stage stage, TrainParams params, bool joining)
    : id_(id), stage_(stage), params_(params), fetcher_(params.state_window) {
  ready_ = !joining;
  members_[id_] = {stage_, true, ready_, 0};
  if (is_holder()) holders_ever_.push_back(id_);
}

// ---------------------------------------------------------------------------------------------------------------
// Membership

bool TrainNode::alive(NodeId n) const {
  auto it = members_.find(n);
  return it != members_.end() && it->second.alive;
}

bool TrainNode::serves(NodeId n) const {
  auto it = members_.find(n);
  return it != members_.end() && it->second.alive && it->second.ready;
}

// The members serving stage s: alive and ready (a joiner without state yet is not among them).
std::vector<NodeId> TrainNode::live(Stage s) const {
  std::vector<NodeId> out;
  for (const auto& [n, m] : members_)
    if (m.alive && m.ready && m.stage == s) out.push_back(n);
  return out;
}

bool TrainNode::senior(NodeId a, NodeId b) const {
  const Member &ma = members_.at(a), &mb = members_.at(b);
  return ma.seniority != mb.seniority ? ma.seniority < mb.seniority : a < b;
}

std::optional<NodeId> TrainNode::leader(Stage s) const {
  std::optional<NodeId> best;
  for (NodeId n : live(s))
    if (!best || senior(n, *best)) best = n;
  return best;
}

// Microbatch mb belongs to holders_ever_[mb mod n], or, when that one is dead, to the next live one after it.
std::optional<NodeId> TrainNode::owner(Iter, Mb mb) const {
  const size_t n = holders_ever_.size();
  for (size_t k = 0; k < n; ++k) {
    const NodeId h = holders_ever_[(mb + k) % n];
    if (alive(h)) return h;
  }
  return std::nullopt;
}

std::optional<TrainNode::TransferProgress> TrainNode::transfer_progress() const {
  if (ready_ || !fetcher_.has_target()) return std::nullopt;
  return TransferProgress{fetcher_.version(), fetcher_.verified_chunks(), fetcher_.total_chunks(),
                          fetcher_.donors_used().size()};
}

// The hint wins: a replica that already computed this microbatch answers a replay from its cache, any other
// replica would compute it a second time.
std::optional<NodeId> TrainNode::pick_next(Iter i, Mb mb, NodeId avoid, NodeId hint,
                                           const std::vector<NodeId>& refused) const {
  const Stage ns = next_stage();
  if (ns == 0) return owner(i, mb);
  auto serves = [&](NodeId n) {
    return may_serve(n, ns, i) && std::find(refused.begin(), refused.end(), n) == refused.end();
  };
  // A hint is on the microbatch's path: it has it, whatever we heard of its readiness yet.
  if (hint && hint != avoid && alive(hint) && members_.at(hint).stage == ns) return hint;
  std::vector<NodeId> candidates;
  for (NodeId h : next_hops_)
    if (h != avoid && serves(h)) candidates.push_back(h);
  // Routes from the flow layer are a preference; a static schedule (strict_hops) is all there is: work routed
  // through a dead hop waits for the schedule to name its replacement (a live hop that cannot serve this
  // iteration yet — a newcomer with later state — is no reason to wait).
  auto a_hop_died = [&] {
    for (NodeId h : next_hops_)
      if (!alive(h)) return true;
    return false;
  };
  auto busy_all = [&] { return std::all_of(candidates.begin(), candidates.end(), [&](NodeId n) { return busy(n); }); };
  // Every hop at its buffer budget: another replica before going over budget (not for a static schedule).
  const bool widen = candidates.empty() ? !(params_.strict_hops && a_hop_died()) : !params_.strict_hops && busy_all();
  if (widen)
    for (NodeId h : live(ns))
      if (h != avoid && serves(h) && std::find(candidates.begin(), candidates.end(), h) == candidates.end())
        candidates.push_back(h);
  // Replicas at their buffer budget only when every candidate is (the activation then says overflow).
  std::vector<NodeId> free;
  std::copy_if(candidates.begin(), candidates.end(), std::back_inserter(free), [&](NodeId n) { return !busy(n); });
  if (!free.empty()) candidates.swap(free);
  // Every one that could take it refused it once: refusals are a preference, not a ban (they may have refused
  // for a fault downstream, or the replicas that took it since died).
  if (candidates.empty()) return refused.empty() ? std::nullopt : pick_next(i, mb, avoid, hint);
  // The cheapest flows first (next_hops_ lists them so): a microbatch goes to the first next hop with fewer
  // microbatches in flight through it (sent, gradient not back) than flows. While the pipeline holds fewer
  // microbatches than there are flows — latency bound — only the cheapest paths carry them; when all are full,
  // round robin over them all.
  if (!widen && candidates.size() > 1) {
    std::map<NodeId, int> flows, in_flight;
    for (NodeId h : candidates) ++flows[h];
    for (const auto& [k, it] : iters_)
      for (const auto& [m, s] : it.mbs)
        if (s.to && s.fwd_done && !s.bwd_queued && !s.bwd_done && flows.count(s.to) && !(k == i && m == mb))
          ++in_flight[s.to];
    for (NodeId h : candidates)
      if (in_flight[h] < flows[h]) return h;
  }
  return candidates[(i * params_.microbatches + mb) % candidates.size()];
}

// A newcomer serves from the iteration its state was taken at: it has no buffers or old weights before it.
bool TrainNode::may_serve(NodeId n, Stage s, Iter i) const {
  auto it = members_.find(n);
  if (it == members_.end()) return false;
  const Member& m = it->second;
  return m.alive && m.ready && !m.leaving && m.stage == s && (m.seniority == 0 || i + 1 >= m.seniority);
}

bool TrainNode::has_stepped(Stage s, Iter i) const {
  auto it = stage_stepped_.find(s);
  return it != stage_stepped_.end() && it->second > i;
}

bool TrainNode::has_result(Stage s, Iter i) const {
  auto a = stage_applied_.find(s);
  return has_stepped(s, i) || (s == stage_ && stepped_ > i) || (a != stage_applied_.end() && a->second.iters > i);
}

Iter TrainNode::committed() const {
  Iter c = stepped_;
  for (Stage s = 0; s <= params_.relay_stages; ++s) {
    auto it = stage_stepped_.find(s);
    c = std::min(c, it == stage_stepped_.end() ? Iter{0} : it->second);
  }
  return c;
}

std::pair<std::set<Mb>, std::set<Mb>> TrainNode::contributions(Iter i) const {
  auto it = iters_.find(i);
  if (it == iters_.end()) return {};
  return {it->second.done, it->second.end_done};
}

// ---------------------------------------------------------------------------------------------------------------
// The switch

void TrainNode::step(const Input& in, double now, Output& out) {
  now_ = now;
  std::visit(Overloaded{
                 [&](const Receive& r) { on_message(r.msg, out); },
                 [&](const Tick&) {
                   ticking_ = true;
                   catch_up(out);
                   join_tick(out);
                   maybe_ready(out);
                   // Backing off: a message still on its way (a slow link, a long queue at the sender's
                   // interface) is not sent again every period — with 238 MB slices the copies would pile up
                   // faster than a link carries them.
                   for (auto& [seq, p] : outbox_)
                     if (now_ - p.sent_at >= p.wait) {
                       p.sent_at = now_;
                       p.wait = std::min(2 * p.wait, 16 * params_.retransmit_after);
                       out.send.push_back(p.msg);
                     }
                 },
                 [&](const PeerUp& u) { add_member(u.peer, u.stage, true, out); },
                 [&](const PeerJoining& j) { add_member(j.peer, j.stage, false, out); },
                 [&](const PeerDown& d) { on_peer_down(d.peer, out); },
                 [&](const Finished& f) { on_finished(f.done, out); },
                 [&](const Leave&) { leave(out); },
                 [&](const RefusedAtDoor& r) { on_refused_at_door(r.msg, out); },
                 [&](const SetNextHops& h) {
                   next_hops_ = h.hops;
                   if (ready_) resend_unrouted(out);  // new hops may route what found no replica so far
                 },
             },
             in);
  // Holders begin only once ticking: the driver delivers the membership it knows before the first tick, and
  // microbatch ownership depends on it.
  if (ticking_ && is_holder() && !leaving_ && holder_started_ == stepped_ && stepped_ < params_.iterations)
    begin_iteration(out);
  pump(out);
}

void TrainNode::send(NodeId to, Body body, Output& out) {
  if (auto peer = members_.find(to); peer != members_.end() && !peer->second.alive) return;  // nobody to hear it
  Message m{id_, to, next_seq_++, std::move(body)};
  outbox_[m.seq] = {m, now_, params_.retransmit_after};
  out.send.push_back(std::move(m));
}

void TrainNode::on_message(const Message& m, Output& out) {
  if (auto* ack = std::get_if<Ack>(&m.body)) {
    if (auto p = outbox_.find(ack->seq); p != outbox_.end()) {
      const Message acked = std::move(p->second.msg);
      outbox_.erase(p);
      on_ack(acked, out);
      if (std::holds_alternative<Reduced>(acked.body)) try_commit(out);
    }
    return;
  }
  auto it = members_.find(m.from);
  if (it == members_.end()) {
    out.events.push_back({EventKind::kDroppedUnknown, 0, 0, m.from});
    return;
  }
  if (!it->second.alive) {  // a late answer from a peer presumed dead: its work is being redone elsewhere
    // A path it announced is knowledge, not work: which live nodes have the microbatch it passed on (a redo
    // routes through them instead of giving the microbatch to a second replica of their stage).
    if (auto* f = std::get_if<Forwarded>(&m.body)) on_forwarded(m.from, m.seq, *f, out);
    out.events.push_back({EventKind::kDroppedFromDead, 0, 0, m.from});
    return;
  }
  if (!may_send(m.body, it->second.stage, stage_, params_.relay_stages)) {
    out.events.push_back({EventKind::kDroppedMisrouted, 0, 0, m.from});
    Body body = m.body;
    for_each_blob(body, [&](Blob& b) {
      if (b) out.release.push_back(b);
    });
    return;
  }
  if (auto* a = std::get_if<Activation>(&m.body); a && turned_away(m.from, m.seq, *a, out)) return;
  out.send.push_back(Message{id_, m.from, 0, Ack{m.seq}});
  std::visit(Overloaded{
                 [&](const Activation& a) { on_activation(m.from, m.seq, a, out); },
                 [&](const Forwarded& f) { on_forwarded(m.from, m.seq, f, out); },
                 [&](const Gradient& g) { on_gradient(m.from, g, out); },
                 [&](const WhoHolds& w) { on_who_holds(m.from, w, out); },
                 [&](const Adopt& a) { on_adopt(m.from, a, out); },
                 [&](const Progress& p) { on_progress(m.from, p, out); },
                 [&](const Collect& c) { on_collect(m.from, c, out); },
                 [&](const GradSum& g) { on_gradsum(m.from, g, out); },
                 [&](const Reduced& r) { on_reduced(m.from, r, out); },
                 [&](const Committed& c) { on_committed(c, out); },
                 [&](const StepApplied& a) { on_applied(m.from, a); },
                 [&](const StateAsk&) { on_state_ask(m.from, out); },
                 [&](const StateOffer& o) { on_state_offer(m.from, o, out); },
                 [&](const ChunkAsk& c) { on_chunk_ask(m.from, c, out); },
                 [&](const Chunk& c) { on_chunk(m.from, c, out); },
                 [&](const StateDone&) {
                   fetching_.erase(m.from);
                   if (fetching_.empty() && state_askers_.empty()) snapshot_.reset();  // memory back
                 },
                 [&](const Ready& r) { on_ready(m.from, r, out); },
                 [&](const Retract& r) { on_retract(m.from, r, out); },
                 [&](const Leaving&) { it->second.leaving = true; },
                 [&](const Busy& b) { on_busy(m.from, b, out); },
                 [&](const Ack&) {},
                 [&](const Slice& s) { on_slice(m.from, s, out); },
                 [&](const ReducePlan& p) { on_reduce_plan(m.from, p, out); },
                 [&](const Assembled& a) { on_assembled(m.from, a, out); },
             },
             m.body);
}

// ---------------------------------------------------------------------------------------------------------------
// Forward and backward

void TrainNode::on_activation(NodeId from, uint64_t seq, const Activation& a, Output& out) {
  // Relays receive their stage's input; holders receive stage S's output, the end part (loss and its gradient).
  const bool end = is_holder();
  // This stage already stepped that iteration: only a replay by a replacement upstream can want an answer.
  const bool stale = a.iter < stepped_;
  auto found = iters_.find(a.iter);
  if (stale && found == iters_.end()) {  // committed everywhere: nobody can still need it
    out.release.push_back(a.data);
    out.events.push_back({EventKind::kDroppedStale, a.iter, a.mb, from});
    return;
  }
  MbState& st = (stale ? found->second : iters_[a.iter]).mbs[a.mb];
  NodeId& up = end ? st.end_from : st.from;
  uint64_t& taken_seq = end ? st.end_in_seq : st.in_seq;
  if (up == 0) {  // new work; after our step, a replay whose cached answer died with a neighbour: recompute
    up = from;
    taken_seq = seq;
    (end ? st.end_input : st.input) = a.data;
    if (!end) st.route = a.route;  // (a holder's route is its start part's)
    st.fwd_queued = !end;
    st.replay = stale;
    queue(task(end ? ComputeKind::kEndBackward : ComputeKind::kForward, a.iter, a.mb, {a.data}, stale));
    return;
  }
  out.release.push_back(a.data);
  out.events.push_back({EventKind::kDuplicate, a.iter, a.mb, from});
  if (up != from && alive(up)) {
    // Two live senders: a replacement's replay and a late copy from the node it replaced (slow, presumed dead by
    // others, or delayed in the network), or two replays, arrive in either order. Both get the answer; the
    // second takes over if the first dies.
    (end ? st.end_alt : st.alt) = from;
    (end ? st.end_alt_seq : st.alt_seq) = seq;
    if (end ? st.end_done : st.bwd_done) send(from, Gradient{a.iter, a.mb, end ? st.end_grad : st.grad_out}, out);
    if (!stale) replayed(a.iter, a.mb, st, end);
    return;
  }
  if (up != from || stale) {  // a replay by a replacement upstream: our work stands, answer from the buffers
    if (!stale && up != from) replayed(a.iter, a.mb, st, end);
    up = from;
    taken_seq = seq;  // (sequence numbers are the sender's own)
    if (!end) announce_path(a.iter, a.mb, st, out);
    if (end ? st.end_done : st.bwd_done) send(from, Gradient{a.iter, a.mb, end ? st.end_grad : st.grad_out}, out);
    return;
  }
  // The same sender again, in a newer message (a sender numbers its messages in order; an older one is a late
  // retransmission): it gave the microbatch back and took it again, forgetting our answer (see give_back). The
  // answer goes again.
  if (seq <= taken_seq) return;
  taken_seq = seq;
  if (end ? st.end_done : st.bwd_done) send(from, Gradient{a.iter, a.mb, end ? st.end_grad : st.grad_out}, out);
}

// The receiver of an activation we sent acknowledged it: it has the microbatch (see redo).
void TrainNode::on_ack(const Message& acked, Output& out) {
  if (std::holds_alternative<Busy>(acked.body)) {  // a microbatch we gave back: a sender has it now
    auto h = std::find_if(handed_back_.begin(), handed_back_.end(), [&](const HandedBack& k) {
      return std::find(k.busy.begin(), k.busy.end(), acked.seq) != k.busy.end();
    });
    if (h == handed_back_.end()) return;
    release(h->st, out);
    handed_back_.erase(h);
    return;
  }
  const auto* a = std::get_if<Activation>(&acked.body);
  if (!a) return;
  auto it = iters_.find(a->iter);
  if (it == iters_.end()) return;
  auto st = it->second.mbs.find(a->mb);
  if (st == it->second.mbs.end() || st->second.to != acked.to || st->second.to_confirmed) return;
  st->second.to_confirmed = true;
  announce_path(a->iter, a->mb, st->second, out);
}

void TrainNode::on_forwarded(NodeId from, uint64_t seq, const Forwarded& f, Output& out) {
  // A holder that took over a dead owner's microbatch hears its path from the stage-1 relay that has it (a relay
  // we know dead tells us nothing about what is in the pipeline: WhoHolds asks the live ones).
  if (is_holder() && f.iter >= stepped_ && alive(from)) {
    MbState& st = iters_[f.iter].mbs[f.mb];
    st.injected = true;
    if (!st.to) st.point_to(from, true);
  }
  auto it = iters_.find(f.iter);
  if (it == iters_.end()) return;
  auto found = it->second.mbs.find(f.mb);
  if (found == it->second.mbs.end() || found->second.to != from) return;
  MbState& st = found->second;
  // A retransmission of an older announcement may arrive after a newer one: a sender's sequence numbers order them.
  if (seq <= st.down_seq) return;
  st.down_seq = seq;
  auto confirmed = confirmed_flags(f.confirmed, f.path.size());
  if (st.to_confirmed && st.down == f.path && st.down_confirmed == confirmed) return;
  st.to_confirmed = true;  // it forwarded the microbatch, so it has it
  st.down = f.path;
  st.down_confirmed = std::move(confirmed);
  announce_path(f.iter, f.mb, st, out);
  if (!alive(from)) redo(f.iter, f.mb, st, from, out);  // the path of a node we know dead: what must be redone
}

// Tell our upstream the path the microbatch takes from us on, so that when we die (with nodes after us) its
// replay goes through the nodes that already have it. Holders have no upstream for the start part.
void TrainNode::announce_path(Iter i, Mb mb, const MbState& st, Output& out) {
  if (is_holder() || !st.to || !st.from || !alive(st.from)) return;
  Forwarded f{i, mb, {st.to}, {st.to_confirmed}};
  f.path.insert(f.path.end(), st.down.begin(), st.down.end());
  const auto down_confirmed = confirmed_flags(st.down_confirmed, st.down.size());
  f.confirmed.insert(f.confirmed.end(), down_confirmed.begin(), down_confirmed.end());
  const size_t n = std::min<size_t>(f.path.size(), params_.relay_stages + 1u);
  f.path.resize(n);
  f.confirmed.resize(n);
  send(st.from, std::move(f), out);
}

void TrainNode::on_gradient(NodeId from, const Gradient& g, Output& out) {
  // A holder takes a start-part gradient of an unstepped iteration even for a microbatch it never injected: the
  // relay sends it to the microbatch's new owner when the old one died, and may learn of that death first (the
  // gradient may also overtake the Adopt).
  if (is_holder() && g.iter >= stepped_) iters_[g.iter].mbs[g.mb].injected = true;
  auto it = iters_.find(g.iter);
  auto found = it == iters_.end() ? nullptr : &it->second.mbs;
  MbState* known = found && found->count(g.mb) ? &found->at(g.mb) : nullptr;
  // After our step a gradient is wanted only by a replay we are recomputing (holders: never).
  if (!known || (g.iter < stepped_ && (!known->replay || is_holder()))) {
    out.events.push_back({EventKind::kDroppedStale, g.iter, g.mb, from});
    out.release.push_back(g.data);
    return;
  }
  MbState& st = *known;
  const NodeId previous_to = st.to;
  st.point_to(from, true);
  const bool started = is_holder() ? st.injected && (st.bwd_queued || st.bwd_done) : st.bwd_queued || st.bwd_done;
  if (started) {  // the upstream answer to a replay we already handled
    if (is_holder() && g.iter >= stepped_ && from != previous_to) replayed(g.iter, g.mb, st, false);
    out.events.push_back({EventKind::kDuplicate, g.iter, g.mb, from});
    out.release.push_back(g.data);
    return;
  }
  st.grad_in = g.data;
  st.bwd_queued = true;
  if (is_holder()) queue(task(ComputeKind::kStartBackward, g.iter, g.mb, {g.data}));
  else queue(task(ComputeKind::kBackward, g.iter, g.mb, {st.input, g.data}, st.replay));
}

// Our output of a forward goes to the next stage (a redo's route first); with no serving replica there yet, it
// waits for one to come up or become ready (resend_unrouted).
void TrainNode::send_output(Iter i, Mb mb, MbState& st, Output& out) {
  auto next = pick_next(i, mb, 0, st.route.empty() ? 0 : st.route.front(), st.refused_by);
  if (!next) return;
  if (!st.route.empty()) {
    st.down.assign(st.route.begin() + 1, st.route.end());
    st.down_confirmed.assign(st.down.size(), false);
  }
  offer(i, mb, st, *next, out);
}

// Our output of a microbatch goes to `next`, a replica of the next stage, with the path we know after it: it holds
// the microbatch from now on as far as we know (a Busy naming this activation says otherwise).
void TrainNode::offer(Iter i, Mb mb, MbState& st, NodeId next, Output& out) {
  st.point_to(next, false);
  st.out_seq = next_seq_;  // the activation's number (send takes it)
  send(next, Activation{i, mb, st.output, st.down, busy(next)}, out);
  announce_path(i, mb, st, out);
}

// New work for a relay at its buffer budget: answered with Busy instead of an acknowledgement, and another replica
// takes it — unless every one is full (overflow), then we take it beyond the budget.
bool TrainNode::turned_away(NodeId from, uint64_t seq, const Activation& a, Output& out) {
  if (is_holder() || !params_.buffer_budget || a.iter < stepped_ || buffered() < params_.buffer_budget) return false;
  if (auto it = iters_.find(a.iter); it != iters_.end() && it->second.mbs.count(a.mb)) return false;  // not new
  if (a.overflow) {
    out.events.push_back({EventKind::kOverBudget, a.iter, a.mb, from, static_cast<double>(buffered() + 1)});
    return false;
  }
  out.release.push_back(a.data);
  out.events.push_back({EventKind::kBusy, a.iter, a.mb, from});
  send(from, Busy{a.iter, a.mb, seq}, out);
  return true;
}

// Our work on a microbatch failed twice (its forward or backward; a holder's end part), or every replica of the
// next stage refused our output: we forget it (nothing of it is in our sum; a relay keeps its buffers until a
// sender acknowledges, see HandedBack) and the sender gives it to another replica of our stage, avoiding us for a
// while. A backward given back is recomputed there with the rest of the path as its route: the next stage answers
// from its cache, nothing else is redone.
void TrainNode::give_back(Iter i, Mb mb, bool end, Output& out, const ComputeTask& retry) {
  auto& it = iters_[i];
  auto f = it.mbs.find(mb);
  if (f == it.mbs.end()) return;
  MbState& st = f->second;
  const NodeId up = end ? st.end_from : st.from;
  const NodeId alt = end ? st.end_alt : st.alt;  // a second sender waits for it too
  const uint64_t taken = end ? st.end_in_seq : st.in_seq;  // the activation we took (0: not known)
  const uint64_t alt_taken = end ? st.end_alt_seq : st.alt_seq;
  // Its work waiting here is dropped (a task already running finds the microbatch gone, see on_finished).
  tasks_.erase(std::remove_if(tasks_.begin(), tasks_.end(),
                              [&](const ComputeTask& t) {
                                return t.iter == i && t.mb == mb && is_work(t.kind) &&
                                       (t.kind == ComputeKind::kEndBackward) == end;
                              }),
               tasks_.end());
  HandedBack kept;
  if (end) {
    for (Blob b : {st.end_input, st.end_grad})
      if (b) out.release.push_back(b);
    st.end_from = st.end_alt = 0;
    st.end_input = st.end_grad = 0;
    st.end_failures = 0;
  } else {
    kept.st = std::move(st);
    kept.retry = retry;
    it.mbs.erase(f);
  }
  out.events.push_back({EventKind::kGaveBack, i, mb, up});
  for (auto [n, seq] : {std::pair{up, taken}, std::pair{alt, alt_taken}}) {
    if (!n || !alive(n)) continue;
    kept.busy.push_back(next_seq_);
    kept.to.push_back(n);
    send(n, Busy{i, mb, seq, true}, out);
  }
  if (end) return;
  handed_back_.push_back(std::move(kept));
  if (handed_back_.back().to.empty()) take_back_if_untaken(out);  // no live sender to give it to: ours after all
}

void TrainNode::release(const MbState& st, Output& out) {
  for (Blob b : {st.input, st.output, st.grad_in})
    if (b) out.release.push_back(b);
}

void TrainNode::take_back_if_untaken(Output& out) {
  for (auto h = handed_back_.begin(); h != handed_back_.end();) {
    if (std::any_of(h->to.begin(), h->to.end(), [&](NodeId n) { return alive(n); })) {
      ++h;
      continue;
    }
    ComputeTask t = h->retry;
    auto it = iters_.find(t.iter);
    if (it != iters_.end() && !it->second.mbs.count(t.mb)) {  // not sent to us again meanwhile
      MbState& st = it->second.mbs.emplace(t.mb, std::move(h->st)).first->second;
      if (t.kind == ComputeKind::kForward && st.output) {  // refused everywhere: computed anew, sent on afresh
        out.release.push_back(std::exchange(st.output, 0));
        st.fwd_done = false;
        st.point_to(0, false);
        st.route.clear();
      }
      (t.kind == ComputeKind::kForward ? st.fwd_queued : st.bwd_queued) = true;
      t.replay = t.replay || t.iter < stepped_;  // our stage stepped meanwhile: on the old weights, adding nothing
      out.events.push_back({EventKind::kTakenBack, t.iter, t.mb, id_});
      queue(t);
      // Our next hop may have died while the microbatch was not ours: its redo was left out then (soak seed
      // 1055771: the stage after ours lost its part for good).
      if (st.to && !alive(st.to)) redo(t.iter, t.mb, st, st.to, out);
    } else {
      release(h->st, out);
    }
    h = handed_back_.erase(h);
  }
}

// An activation whose tensor the driver refused (see RefusedAtDoor): in place of the acknowledgement, Busy-refused,
// and its sender gives it to another replica. A retransmission of one we hold already is simply acknowledged.
void TrainNode::on_refused_at_door(const Message& m, Output& out) {
  const auto* a = std::get_if<Activation>(&m.body);
  if (!a || !alive(m.from) || m.from == id_) return;
  out.events.push_back({EventKind::kRefusedAtDoor, a->iter, a->mb, m.from});
  if (auto it = iters_.find(a->iter); it != iters_.end())
    if (auto st = it->second.mbs.find(a->mb);
        st != it->second.mbs.end() && (is_holder() ? st->second.end_from : st->second.from) != 0) {
      out.send.push_back(Message{id_, m.from, 0, Ack{m.seq}});
      return;
    }
  send(m.from, Busy{a->iter, a->mb, m.seq, true}, out);
}

bool TrainNode::refused_by_all(Iter i, Mb mb, const MbState& st) const {
  const Stage ns = next_stage();
  if (ns == 0) {
    const auto o = owner(i, mb);
    return !o || st.refused(*o);
  }
  for (const auto& [n, m] : members_)
    if (may_serve(n, ns, i) && !st.refused(n)) return false;
  return true;
}

// Every replica that could take our output of a microbatch refused it: the output is suspect, not all of them.
// A relay gives the microbatch back (another replica of our stage computes it from the input; a bad input is
// refused there too and travels back the same way). Where our work on it stands — a holder's microbatch, or a
// relay that has its gradient already (the refusers were a redo's) — the output is computed again, once (a fault
// of this device); refused everywhere after that, a holder says the microbatch cannot be processed (the model or
// the data give NaN/Inf), and the output is offered on regardless.
void TrainNode::refused_everywhere(Iter i, Mb mb, MbState& st, Output& out) {
  st.refused_by.clear();
  ++st.refusals;
  out.events.push_back({EventKind::kRefusedEverywhere, i, mb, id_, static_cast<double>(st.refusals)});
  if (!is_holder() && !st.bwd_queued && !st.bwd_done)
    return give_back(i, mb, false, out, task(ComputeKind::kForward, i, mb, {st.input}, i < stepped_));
  if (st.refusals == 1 && (is_holder() || st.input)) {
    out.release.push_back(std::exchange(st.output, 0));
    st.fwd_done = false;
    st.point_to(0, false);
    if (is_holder()) return regenerate(i, mb, st);
    st.fwd_queued = true;
    st.route.clear();  // sent on with the path we know after us (st.down), as a redo is
    queue(task(ComputeKind::kForward, i, mb, {st.input}, i < stepped_));  // after our step: on the old weights
    return;
  }
  if (is_holder()) out.events.push_back({EventKind::kUnprocessable, i, mb, id_, static_cast<double>(st.refusals)});
  send_output(i, mb, st, out);
}

size_t TrainNode::buffered() const {
  size_t n = 0;
  for (const auto& [i, it] : iters_)
    for (const auto& [mb, st] : it.mbs) n += st.from != 0;
  return n;
}

bool TrainNode::busy(NodeId n) const {
  auto b = busy_until_.find(n);
  return b != busy_until_.end() && b->second > now_;
}

// The replica we sent a microbatch to is at its buffer budget: another one takes it (or, when every live one said
// so lately, that one beyond its budget).
void TrainNode::on_busy(NodeId from, const Busy& b, Output& out) {
  // The activation it answers is still unacknowledged when turned away at a budget or refused at the door, and was
  // acknowledged before when given back after failing there. Either way its retransmission stops (a pending one
  // would make the replica take it again).
  auto sent = b.seq ? outbox_.find(b.seq) : outbox_.end();
  const bool pending = sent != outbox_.end() && sent->second.msg.to == from &&
                       std::holds_alternative<Activation>(sent->second.msg.body);
  if (!b.refused && !pending) return;  // turned away, then acknowledged after all (a retransmission found room)
  if (pending) outbox_.erase(sent);
  if (b.seq == 0)  // given back by one that does not know our activation's number (it took over from another)
    for (auto p = outbox_.begin(); p != outbox_.end();) {
      const auto* a = std::get_if<Activation>(&p->second.msg.body);
      p = p->second.msg.to == from && a && a->iter == b.iter && a->mb == b.mb ? outbox_.erase(p) : std::next(p);
    }
  auto it = iters_.find(b.iter);
  if (it == iters_.end()) return;
  auto found = it->second.mbs.find(b.mb);
  // A dead owner's microbatch given back by its stage-1 relay before that relay's answer to our WhoHolds came: it
  // holds nothing of it any more, whatever that answer says (on_adopt).
  if (b.refused && is_holder() && b.iter >= stepped_ && owner(b.iter, b.mb) == id_ &&
      (found == it->second.mbs.end() || !found->second.injected)) {
    it->second.mbs[b.mb].refuse(from);
    return;
  }
  if (found == it->second.mbs.end() || found->second.to != from) return;
  MbState& st = found->second;
  if (b.seq && b.seq != st.out_seq) return;  // about an activation we sent it before the current one (a retransmission)
  if (!st.output) {
    // A microbatch adopted from a dead owner (which computed its start part) and given back by the relay holding
    // it: its new owner regenerates it (after our step: on the old weights).
    if (is_holder() && (b.seq == 0 || b.refused) && st.injected && !st.fwd_queued) {
      st.point_to(0, false);
      regenerate(b.iter, b.mb, st);
    }
    return;
  }
  busy_until_[from] = now_ + params_.retransmit_after;
  if (b.seq == 0 || b.refused) {
    st.refuse(from);
    if (refused_by_all(b.iter, b.mb, st)) return refused_everywhere(b.iter, b.mb, st, out);
  }
  auto next = pick_next(b.iter, b.mb, from, 0, st.refused_by);
  if (!next) next = from;  // the stage's only replica
  offer(b.iter, b.mb, st, *next, out);
}

void TrainNode::resend_unrouted(Output& out) {
  for (auto& [i, it] : iters_)
    for (auto& [mb, st] : it.mbs)
      if (st.fwd_done && !st.to && st.output) send_output(i, mb, st, out);
}

void TrainNode::add_member(NodeId peer, Stage stage, bool ready, Output& out) {
  auto [m, fresh] = members_.try_emplace(peer, Member{stage, true, ready, 0});
  m->second.stage = stage;
  m->second.ready = m->second.ready || ready;  // a Ready may arrive before the driver's notice
  if (stage == 0 && !std::binary_search(holders_ever_.begin(), holders_ever_.end(), peer))
    holders_ever_.insert(std::upper_bound(holders_ever_.begin(), holders_ever_.end(), peer), peer);
  if (!ready && ready_) send(peer, Ready{seniority_}, out);  // the newcomer learns who serves
  if (m->second.ready) resend_unrouted(out);
}

// Work on a microbatch this node gave back while the task ran (see give_back).
bool TrainNode::given_back(const ComputeTask& t) const {
  if (t.kind != ComputeKind::kForward && t.kind != ComputeKind::kBackward && t.kind != ComputeKind::kEndBackward)
    return false;
  auto it = iters_.find(t.iter);
  if (it == iters_.end()) return false;  // a freed iteration: handled below
  auto f = it->second.mbs.find(t.mb);
  return f == it->second.mbs.end() || (t.kind == ComputeKind::kEndBackward ? f->second.end_from : f->second.from) == 0;
}

void TrainNode::on_finished(const ComputeDone& d, Output& out) {
  if (!running_ || running_->id != d.id) return;  // not ours (a stale completion after a restart)
  const ComputeTask t = *running_;
  running_.reset();
  if (given_back(t)) {  // nobody waits for it here any more
    if (d.output) out.release.push_back(d.output);
    return;
  }
  if (!d.finite && t.kind != ComputeKind::kImport) {  // never accumulated: run it again (an import: refused)
    out.events.push_back({EventKind::kRejectedNonFinite, t.iter, t.mb, id_});
    if (d.output) out.release.push_back(d.output);
    // Work failing again here (a bad input, or this device): another replica of our stage computes it — a relay's
    // forward, or its backward while nothing of the microbatch is in our sum; a holder's end part goes back to
    // its sender, which tries another replica of its stage (the end part has one place: the owner). A holder's
    // start part has no other place either: it is retried here. So is a relay's work whose senders are all dead: the
    // path before them counts on us to hold it and would never redo it (soak seed 386197: given back to nobody,
    // lost). A holder's end part goes back as ever: the holder itself redoes what it does not hold.
    if (auto it = iters_.find(t.iter); it != iters_.end() && !t.retract) {  // (a replay too: it never contributed)
      const bool end = t.kind == ComputeKind::kEndBackward;
      const bool relay_work = t.kind == ComputeKind::kForward ||
                              (t.kind == ComputeKind::kBackward && !it->second.done.count(t.mb));
      auto st = it->second.mbs.find(t.mb);
      const bool taker = st != it->second.mbs.end() && (is_holder() || alive(st->second.from) || alive(st->second.alt));
      if ((relay_work || (end && !it->second.end_done.count(t.mb))) && taker &&
          ++(end ? st->second.end_failures : st->second.failures) >= 2) {
        give_back(t.iter, t.mb, end, out, t);
        return;
      }
    }
    if (!is_work(t.kind) || iters_.count(t.iter)) queue(t);  // work of a freed iteration is needed no more
    return;
  }
  auto it = iters_.find(t.iter);
  const bool iteration_free = t.kind == ComputeKind::kApply || t.kind == ComputeKind::kExport ||
                              t.kind == ComputeKind::kImport;  // need no state of their iteration
  if (it == iters_.end() && !iteration_free) {  // the iteration was freed meanwhile
    if (d.output) out.release.push_back(d.output);
    return;
  }
  if (t.retract) return on_retracted(t, d, it->second, out);
  switch (t.kind) {
    case ComputeKind::kStartForward:
    case ComputeKind::kForward: {
      MbState& st = it->second.mbs[t.mb];
      st.output = d.output;
      st.fwd_done = true;
      send_output(t.iter, t.mb, st, out);
      return;
    }
    case ComputeKind::kBackward:
    case ComputeKind::kStartBackward: {
      MbState& st = it->second.mbs[t.mb];
      st.bwd_done = true;
      if (t.kind == ComputeKind::kBackward) {
        if (st.grad_out && st.grad_out != d.output) out.release.push_back(st.grad_out);  // contributed again
        st.grad_out = d.output;
        send(st.from, Gradient{t.iter, t.mb, d.output}, out);
        if (st.alt && alive(st.alt)) send(st.alt, Gradient{t.iter, t.mb, d.output}, out);
      }
      if (t.replay) return;
      it->second.done.insert(t.mb);
      st.part.stamp = progress_version_ + 1;  // the report below
      report_progress(t.iter, out);
      if (is_holder()) inject(out);
      return;
    }
    case ComputeKind::kEndBackward: {
      MbState& st = it->second.mbs[t.mb];
      st.end_done = true;
      if (st.end_grad && st.end_grad != d.output) out.release.push_back(st.end_grad);  // contributed again
      st.end_grad = d.output;
      send(st.end_from, Gradient{t.iter, t.mb, d.output}, out);
      if (st.end_alt && alive(st.end_alt)) send(st.end_alt, Gradient{t.iter, t.mb, d.output}, out);
      if (t.replay) return;
      it->second.end_done.insert(t.mb);
      it->second.loss_sum += d.loss;
      st.end_part.stamp = progress_version_ + 1;
      report_progress(t.iter, out);
      return;
    }
    case ComputeKind::kSnapshot: {
      it->second.snapshot_queued = false;
      ShardState& sh = it->second.shard;
      GradSum g{t.iter,   as_vector(it->second.done), as_vector(it->second.end_done),
                d.output, it->second.loss_sum,        it->second.reported, sh.round, false};
      auto lead = leader(stage_);
      if (!lead || sh.leader != *lead) return;  // the Collect's sender leads no more: the new leader asks anew
      if (sh.owners.size() > 1) {  // sharded: cut it, a slice per owner, then answer
        sh.scratch.insert(d.output);
        g.data = 0;
        g.sliced = true;
        sh.cut_sum = g;
        sh.cut_from = d.output;
        sh.cuts_left = static_cast<uint32_t>(sh.owners.size());
        for (uint32_t k = 0; k < sh.cuts_left; ++k) {
          ComputeTask c = task(ComputeKind::kSlice, t.iter, 0, {d.output});
          c.slice = k;
          c.slices = sh.cuts_left;
          c.attempt = {sh.leader, sh.round};  // a newer Collect cuts anew
          queue(std::move(c));
        }
        return;
      }
      if (*lead == id_) on_gradsum(id_, g, out);
      else send(*lead, g, out);
      return;
    }
    case ComputeKind::kSlice: {
      ShardState& sh = it->second.shard;
      sh.scratch.insert(d.output);
      if (!sh.cut_sum || !sh.current(t.attempt.first, t.attempt.second)) return;  // a newer Collect
      const Slice s{t.iter, sh.leader, sh.round, sh.cut_sum->version, t.slice, t.slices, false, d.output};
      if (sh.owners[t.slice] == id_) on_slice(id_, s, out);
      else send(sh.owners[t.slice], s, out);
      if (--sh.cuts_left > 0) return;
      // Every cut of it is made: the sum itself is needed no more (a newer Collect cuts a new one).
      if (sh.scratch.erase(sh.cut_from)) out.release.push_back(std::exchange(sh.cut_from, 0));
      const GradSum g = *std::exchange(sh.cut_sum, std::nullopt);
      if (sh.leader == id_) on_gradsum(id_, g, out);
      else send(sh.leader, g, out);
      return;
    }
    case ComputeKind::kReduce: {
      if (t.slices > 0) {  // our slice of a sharded reduce: to every recipient of the plan
        ShardState& sh = it->second.shard;
        sh.scratch.insert(d.output);
        if (!sh.plan || !sh.current(t.attempt.first, t.attempt.second)) return;
        sh.reduced[{sh.leader, sh.round}][t.slice] = d.output;
        share_slice(t.iter, *sh.plan, out);
        assemble(t.iter);
        return;
      }
      auto& lead = it->second.lead;
      lead.reducing = false;
      if (it->second.reduced) {  // adopted an earlier leader's result meanwhile
        out.release.push_back(d.output);
        return;
      }
      Reduced r = ledger_entry(t.iter);
      r.data = d.output;
      on_reduced(id_, r, out);
      return;
    }
    case ComputeKind::kConcat: {
      ShardState& sh = it->second.shard;
      // Applied another way meanwhile, a newer Collect answered, or the plan's leader died meanwhile: as its
      // Reduced would be, the result is dropped (a member that applied it first hands it to the new leader).
      if (it->second.reduced || !sh.plan || !sh.current(t.attempt.first, t.attempt.second) || !alive(sh.leader)) {
        sh.scratch.insert(d.output);
        return;
      }
      sh.concatenating = false;
      const ReducePlan& p = *sh.plan;
      const Reduced r{t.iter, d.output, p.loss, p.done, p.end_done};
      const NodeId lead = sh.leader;
      if (lead == id_) {  // every recipient assembles it; a member ready since the Collect gets the whole
        LeaderState& ls = it->second.lead;
        ls.sharded_result = true;
        for (NodeId n : live(stage_))
          if (n != id_ && !contains(p.recipients, n) &&
              ls.sent_whole.insert(n).second)
            send(n, r, out);
      }
      on_reduced(lead, r, out, /*pass_on=*/false);
      if (lead == id_) on_assembled(id_, Assembled{t.iter}, out);
      else send(lead, Assembled{t.iter}, out);
      return;
    }
    case ComputeKind::kImport:
      return on_imported(t, d.finite, out);
    case ComputeKind::kExport:
      exporting_ = false;
      if (!d.state) return;
      snapshot_ = d.state;
      snapshot_manifest_ = make_manifest(stepped_, *snapshot_, params_.state_chunk);
      offer_to_askers(out);
      return;
    case ComputeKind::kApply: {
      ++stepped_;
      // Work of the stepped iteration still in progress or queued was not needed for the stage's sum: it may
      // only answer (its backward runs on the old weights, accumulating nothing).
      if (it != iters_.end())
        for (auto& [mb, st] : it->second.mbs)
          if (!st.bwd_done) st.replay = true;
      for (auto q = tasks_.begin(); q != tasks_.end();) {
        if (q->iter != t.iter || q->replay) {
          ++q;
        } else if (is_work(q->kind)) {
          q->replay = true;
          if (it != iters_.end()) it->second.mbs[q->mb].replay = true;
          ++q;
        } else if (q->kind == ComputeKind::kSnapshot || q->kind == ComputeKind::kReduce ||
                   q->kind == ComputeKind::kSlice || q->kind == ComputeKind::kConcat) {
          q = tasks_.erase(q);  // aggregation of a stepped iteration
        } else {
          ++q;  // a state export (it runs between any two steps)
        }
      }
      out.events.push_back({EventKind::kStepped, t.iter, 0, id_,
                            it != iters_.end() && it->second.reduced ? it->second.reduced->loss : 0});
      if (it != iters_.end()) {
        out.applied.push_back({t.iter, {it->second.done.begin(), it->second.done.end()},
                               {it->second.end_done.begin(), it->second.end_done.end()}, {}, {}});
        if (it->second.reduced) {
          out.applied.back().stage_done = it->second.reduced->done;
          out.applied.back().stage_end_done = it->second.reduced->end_done;
        }
      }
      announce_applied(t.iter, out);
      if (leader(stage_) == id_) {
        commit_pending_.insert(t.iter);
        send_whole_if_lost(t.iter, out);  // an owner may have died before we assembled it
        try_commit(out);
        // The members' reports of the next iteration may have come first (we assembled our step last).
        if (iters_.count(stepped_)) leader_check(stepped_, out);
      }
      if (auto e = early_reduced_.find(stepped_); e != early_reduced_.end()) {
        Reduced r = e->second;
        early_reduced_.erase(e);
        on_reduced(0, r, out);
      }
      maybe_ready(out);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Holders: iterations and injection

void TrainNode::begin_iteration(Output& out) {
  const Iter i = holder_started_++;
  IterState& it = iters_[i];
  it.injection_open = true;
  if (any_holder_died_ && i <= ask_until_) ask_who_holds(i, out);
  inject(out);
}

// We own microbatches a dead holder may have injected: the relays say which they have (every stage: a stage-1
// relay that had one may have died too), we regenerate only the others, through the relays that have them.
void TrainNode::ask_who_holds(Iter i, Output& out) {
  IterState& it = iters_[i];
  bool adopting = false;
  for (Mb mb = 0; mb < params_.microbatches; ++mb) {
    const NodeId primary = holders_ever_[mb % holders_ever_.size()];
    adopting = adopting || (primary != id_ && !alive(primary) && owner(i, mb) == id_ && !it.mbs[mb].injected);
  }
  if (!adopting) return;
  // Every dead holder, not only the microbatches' first owners: a stage-1 relay may have handed a microbatch to
  // an owner in between that died too.
  std::vector<NodeId> asked;
  for (NodeId h : holders_ever_)
    if (!alive(h)) asked.push_back(h);
  for (const auto& [r, m] : members_) {
    if (!m.alive || m.stage == 0) continue;
    auto [w, fresh] = it.adopt_wait.emplace(r, asked);
    if (!fresh && w->second == asked) continue;  // that question is out already
    w->second = asked;
    send(r, WhoHolds{i, asked}, out);
  }
}

void TrainNode::on_who_holds(NodeId from, const WhoHolds& w, Output& out) {
  for (NodeId d : w.dead)
    if (alive(d)) on_peer_down(d, out);  // the asker knows it dead: drop its late messages
  Adopt a{w.iter, w.dead, {}, {}};
  // Stage 1: what came from the asker or the dead holders. Later stages: every microbatch we have an input of.
  auto wanted = [&](const MbState& st) {
    return stage_ == 1 ? st.from == from || std::binary_search(w.dead.begin(), w.dead.end(), st.from) : st.from != 0;
  };
  if (auto it = iters_.find(w.iter); it != iters_.end())
    for (auto& [mb, st] : it->second.mbs)
      if (wanted(st)) {
        a.held.push_back(mb);
        std::vector<NodeId> path{st.to};
        path.insert(path.end(), st.down.begin(), st.down.end());
        a.paths.push_back(st.to ? path : std::vector<NodeId>{});
      }
  send(from, a, out);
}

void TrainNode::inject(Output&) {
  for (auto& [i, it] : iters_) {
    if (!it.injection_open || !it.adopt_wait.empty()) continue;
    for (auto& [mb, st] : it.mbs)
      if (!st.regen_path.empty() && !st.fwd_queued) regenerate(i, mb, st);
    // After our stage stepped the iteration no gradient finishes a microbatch any more (it is dropped as stale):
    // only the relays' redo needs the ones we still inject, and nothing counts as in flight.
    uint32_t in_flight = 0;
    for (const auto& [mb, st] : it.mbs)
      if (i >= stepped_ && st.injected && !st.bwd_done && owner(i, mb) == id_) ++in_flight;
    for (Mb mb = 0; mb < params_.microbatches && (i < stepped_ || in_flight < params_.max_in_flight); ++mb) {
      if (owner(i, mb) != id_) continue;
      MbState& st = it.mbs[mb];
      if (st.injected) continue;
      st.injected = true;
      st.fwd_queued = true;
      st.replay = i < stepped_;  // a dead owner's microbatch after our stage stepped: only for the relays' redo
      queue(task(ComputeKind::kStartForward, i, mb, {}, st.replay));
      ++in_flight;
    }
  }
}

void TrainNode::on_adopt(NodeId from, const Adopt& a, Output& out) {
  auto found = iters_.find(a.iter);
  if (found == iters_.end()) return;
  IterState& it = found->second;
  const auto sender = members_.find(from);
  const Stage stage = sender == members_.end() ? 1 : sender->second.stage;
  for (size_t k = 0; k < a.held.size(); ++k) {
    if (owner(a.iter, a.held[k]) != id_) continue;  // another live holder's
    MbState& st = it.mbs[a.held[k]];
    if (stage > 1) {
      // A later stage has it, its stage-1 relay is gone: regenerate it through `from` (no hint before it). The
      // lowest stage that answers sets the route.
      std::vector<NodeId> route(stage - 1, 0);
      route.push_back(from);
      if (k < a.paths.size()) route.insert(route.end(), a.paths[k].begin(), a.paths[k].end());
      auto leading_unknown = [](const std::vector<NodeId>& r) {
        return std::find_if(r.begin(), r.end(), [](NodeId n) { return n != 0; }) - r.begin();
      };
      // (kept when a stage-1 relay holds it too: if that one dies, the regeneration routes through `from`)
      if (st.route.empty() || leading_unknown(route) < leading_unknown(st.route)) st.route = route;
      continue;
    }
    if (!st.injected && !st.refused(from)) {
      st.injected = true;  // already in the pipeline: its gradient will come to us, the new owner
      st.point_to(from, true);
    }
    // The path after the relay — also when its gradient overtook this answer (it made us point to the relay but
    // told no path; the relay's own announcement may be lost with it): a later crash on that path is redone.
    if (st.to == from && st.down.empty() && k < a.paths.size()) {
      st.down = a.paths[k];
      st.down_confirmed.assign(st.down.size(), false);
    }
  }
  if (auto w = it.adopt_wait.find(from); w != it.adopt_wait.end() && w->second == a.dead)
    it.adopt_wait.erase(w);  // the answer to our latest question (an older one may arrive first)
  out.events.push_back({EventKind::kAdopted, a.iter, static_cast<Mb>(a.held.size()), from});
  inject(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Churn

// Redo: an activation we sent on goes to another replica of the next stage (for the holders' end part: the
// microbatch's new owner) when the node right after us died and `peer` is on the path the microbatch took from
// us on — the nodes after a live one are that one's business — and the work is needed: a stage on the dead
// stretch has not stepped (its contribution died with it), or the first live node after it is not known to have
// received the microbatch (the dead node's activation may have been lost on the wire), or we still wait for the
// gradient. A stage that stepped recomputes on its old weights, accumulating nothing; the redo's route passes
// through the live node, which answers from its cache if it did receive it.
void TrainNode::redo(Iter i, Mb mb, MbState& st, NodeId peer, Output& out) {
  std::vector<NodeId> path;
  std::vector<bool> confirmed;
  if (st.to) {
    path.push_back(st.to);
    confirmed.push_back(st.to_confirmed);
  }
  path.insert(path.end(), st.down.begin(), st.down.end());
  const auto down_confirmed = confirmed_flags(st.down_confirmed, st.down.size());
  confirmed.insert(confirmed.end(), down_confirmed.begin(), down_confirmed.end());
  // A holder that took the end part knows who sent it, the path's last relay: when the path is short (an
  // announcement lost with its sender), that one's death must still redo the microbatch (soak seed 137241: stage
  // 2 lost it for good). Relays between that nobody announced stand as 0, treated as lost.
  if (is_holder() && st.end_from && !path.empty() && path.size() < params_.relay_stages) {
    const auto last = members_.find(st.end_from);
    if (last != members_.end() && last->second.stage == params_.relay_stages) {
      path.resize(params_.relay_stages - 1, 0);
      confirmed.resize(path.size(), false);
      path.push_back(st.end_from);
      confirmed.push_back(true);
    }
  }
  // The path ends with its stage-S node: after it comes the microbatch's owner (the announcement may be lost) —
  // for a relay, not known to have received it: when the stage-S node died with the end part's announcement lost
  // and its stage stepped, the owner (or the one after it, when it died too) gets the end part by our redo.
  if (!path.empty() && path.size() == params_.relay_stages - (is_holder() ? 0u : stage_)) {
    if (is_holder() && owner(i, mb) == id_) {
      path.push_back(id_);
      confirmed.push_back(st.end_from != 0);
    } else if (auto o = owner(i, mb); o && !is_holder()) {
      path.push_back(*o);
      confirmed.push_back(false);
    }
  }
  // A holder at the end of the path counts as a lost node when the end part never reached it (the activation
  // was lost and its sender died before retransmitting).
  auto has_it = [&](NodeId n) { return alive(n) && !(n == id_ && is_holder() && !st.end_from); };
  if (path.empty() || has_it(path.front()) || std::find(path.begin(), path.end(), peer) == path.end()) return;
  bool needed = !st.bwd_done && (i >= stepped_ || st.replay);
  Stage s = next_stage();
  size_t k = 0;
  for (; k < path.size() && !has_it(path[k]); ++k, s = flow::next_stage(s, params_.relay_stages))
    needed = needed || !has_result(s, i);
  // An unconfirmed node may never have received it: then nothing after it did either.
  if (k < path.size() && !confirmed[k])
    for (; k < path.size(); ++k, s = flow::next_stage(s, params_.relay_stages)) needed = needed || !has_result(s, i);
  if (!needed) return;
  if (st.fwd_done) {
    auto next = pick_next(i, mb, st.to, 0, st.refused_by);
    if (!next) return;
    offer(i, mb, st, *next, out);
    out.events.push_back({EventKind::kRedo, i, mb, peer});
  } else if (is_holder() && st.injected && !st.fwd_queued) {
    // adopted from a dead owner, held by a stage-1 relay that died too: regenerate it here (after our stage
    // stepped: on the old weights, only for stage 1 to redo its part) — once every relay said what it holds
    st.regen_path = path;
    if (iters_[i].adopt_wait.empty()) regenerate(i, mb, st);
  }
}

void TrainNode::regenerate(Iter i, Mb mb, MbState& st) {
  st.fwd_queued = true;
  st.replay = i < stepped_;
  // What later stages told us (WhoHolds) fills what the path does not know: no stage computes it twice.
  std::vector<NodeId> route = std::move(st.regen_path);
  st.regen_path.clear();
  if (route.size() < st.route.size()) route.resize(st.route.size(), 0);
  for (size_t j = 0; j < st.route.size(); ++j)
    if (!route[j] || !alive(route[j])) route[j] = st.route[j] ? st.route[j] : route[j];
  st.route = std::move(route);
  queue(task(ComputeKind::kStartForward, i, mb, {}, st.replay));
}

// A graceful leave: the others route around us from now on (Leaving); work not begun yet is handed over — a relay
// gives each queued forward back to its sender, who gives it to another replica at once instead of waiting for
// this node's queue — and what we began we finish, going once it is committed (drained): nobody redoes anything.
void TrainNode::leave(Output& out) {
  if (leaving_) return;
  leaving_ = true;
  members_[id_].leaving = true;
  for (const auto& [n, m] : members_)
    if (n != id_ && m.alive) send(n, Leaving{}, out);
  if (is_holder()) return;  // a holder's queued work is its own microbatches' ends: no other node can take them
  // Only to a stage that has another replica to take it (else the sender, refused by every replica, would take its
  // own output for the culprit).
  const bool another = std::any_of(members_.begin(), members_.end(), [&](const auto& m) {
    return m.first != id_ && m.second.stage == stage_ && m.second.alive && m.second.ready && !m.second.leaving;
  });
  if (!another) return;
  std::vector<ComputeTask> queued;
  for (const auto& t : tasks_)
    if (t.kind == ComputeKind::kForward) queued.push_back(t);
  for (const auto& t : queued) give_back(t.iter, t.mb, false, out, t);
}

bool TrainNode::drained() const {
  if (!leaving_ || running_ || !tasks_.empty() || !outbox_.empty() || !commit_pending_.empty()) return false;
  for (const auto& [i, it] : iters_)
    if (!it.mbs.empty()) return false;  // work or buffers of an iteration not committed everywhere yet
  return true;
}

void TrainNode::on_peer_down(NodeId peer, Output& out) {
  auto pm = members_.find(peer);
  if (pm == members_.end() || !pm->second.alive) return;
  const bool was_leader = leader(pm->second.stage) == peer;
  const Stage dead_stage = pm->second.stage;
  pm->second.alive = false;
  if (dead_stage == 0) {
    any_holder_died_ = true;
    ask_until_ = std::max(ask_until_, stepped_ + 1);  // the dead holder may have begun the next iteration
  }
  for (auto it = outbox_.begin(); it != outbox_.end();)
    it = it->second.msg.to == peer ? outbox_.erase(it) : std::next(it);
  // State transfer: a dead donor's chunks are asked from the others; a dead newcomer needs no copy any more.
  fetcher_.on_donor_down(peer);
  fetching_.erase(peer);
  state_askers_.erase(peer);
  if (fetching_.empty() && state_askers_.empty()) snapshot_.reset();
  fetch_state(out);
  // Our stage's leader died: the steps it may not have announced yet are the new leader's to announce, once every
  // live member holds their reduced gradients (it may lag and adopts them from us). The same for a step whose
  // leader died though we did not take it for ours (its Ready never reached us): we applied its result, and a
  // redo may have been left out on our word that we hold it (StepApplied; soak seed 192141).
  if (auto l = leader(stage_); l && dead_stage == stage_) {
    auto known = stage_stepped_.find(stage_);
    // The dead leader's last announcement may have reached some nodes only (a retransmission dies with its
    // sender): we repeat it. A newcomer whose Ready the dead leader never heard and whose copy of the announcement
    // was lost would otherwise never learn that the stage stepped and wait forever for that step's gradient.
    if (was_leader && *l == id_ && known != stage_stepped_.end() && known->second > 0)
      for (const auto& [n, m] : members_)
        if (m.alive && n != id_) send(n, Committed{known->second - 1, stage_}, out);
    for (Iter i = known == stage_stepped_.end() ? 0 : known->second; i < stepped_; ++i) {
      auto r = reduced_log_.find(i);
      if (r == reduced_log_.end()) continue;
      const auto applied = iters_.find(i);
      if (!was_leader && (applied == iters_.end() || applied->second.reduced_by != peer)) continue;
      if (*l != id_) {
        send(*l, r->second, out);
        continue;
      }
      for (NodeId n : live(stage_))
        if (n != id_) send(n, r->second, out);
      commit_pending_.insert(i);
    }
  }
  for (Iter i : commit_pending_) send_whole_if_lost(i, out);
  try_commit(out);
  take_back_if_untaken(out);  // before the redos below: one taken back may need them (its sender died)
  // A step that only dead members held may die with them (a new leader reduces anew without the dead's sums).
  bool forgotten = false;
  if (auto a = stage_applied_.find(dead_stage); a != stage_applied_.end() && a->second.by.erase(peer) &&
                                                a->second.by.empty()) {
    stage_applied_.erase(a);
    forgotten = true;
  }

  for (auto& [i, it] : iters_) {
    bool orphaned = false;  // a contribution of ours lost its upstream: the leader keeps another copy if any
    for (auto& [mb, st] : it.mbs) {
      redo(i, mb, st, peer, out);
      // A redo we left out since on that word, for an earlier death: needed now when nobody else holds the step.
      if (forgotten && st.to && !alive(st.to)) redo(i, mb, st, st.to, out);
      // Our upstream died, and another sender of the same microbatch is alive: it is the one waiting now.
      if (st.from == peer && st.alt && alive(st.alt)) {
        st.from = std::exchange(st.alt, 0);
        st.in_seq = st.alt_seq;
        announce_path(i, mb, st, out);
        if (st.bwd_done) send(st.from, Gradient{i, mb, st.grad_out}, out);
      }
      if (st.end_from == peer && st.end_alt && alive(st.end_alt)) {
        st.end_from = std::exchange(st.end_alt, 0);
        st.end_in_seq = st.end_alt_seq;
        if (st.end_done) send(st.end_from, Gradient{i, mb, st.end_grad}, out);
      }
      // A dead holder was our upstream (we are stage 1): the microbatch's new owner takes its start part.
      if (st.from == peer && dead_stage == 0 && stage_ == 1) {
        if (auto o = owner(i, mb)) {
          st.from = *o;
          st.in_seq = 0;
          announce_path(i, mb, st, out);  // it knows nothing of this microbatch's path yet
          if (st.bwd_done) send(*o, Gradient{i, mb, st.grad_out}, out);
        }
      }
      orphaned |= (st.from == peer && it.done.count(mb)) || (st.end_from == peer && it.end_done.count(mb));
      if (i >= stepped_ && st.part.kept == peer) replayed(i, mb, st, false);
      if (i >= stepped_ && st.end_part.kept == peer) replayed(i, mb, st, true);
    }
    if (orphaned && i >= stepped_) report_progress(i, out);
    if (is_holder() && dead_stage == 0 && it.injection_open) ask_who_holds(i, out);
    if (is_holder()) it.adopt_wait.erase(peer);

    // Aggregation: a dead member's sums are never used; a new leader hears everyone's progress again.
    it.lead.progress.erase(peer);
    it.lead.sums.erase(peer);
    if (dead_stage == stage_ && i >= stepped_) {
      if (was_leader) {
        // We hold the old leader's result (applied or being applied): the new leader must have it — and when we
        // lead now, every member, before we announce the step (try_commit waits for their acknowledgements).
        if (it.reduced) {
          if (auto l = leader(stage_); l && *l != id_) send(*l, *it.reduced, out);
          else if (l)
            for (NodeId n : live(stage_))
              if (n != id_) send(n, *it.reduced, out);
        }
        report_progress(i, out);
        it.lead.reducing = false;
      }
      if (leader(stage_) == id_) leader_check(i, out);
    }
  }
  inject(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Aggregation

// Our contributions (those being retracted no longer count), and which of them lost their upstream.
void TrainNode::report_progress(Iter i, Output& out) {
  auto l = leader(stage_);
  if (!l) return;
  auto& it = iters_[i];
  Progress p{i, {}, {}, ++progress_version_, {}, {}};
  it.reported = p.version;
  for (bool end : {false, true})
    for (Mb mb : end ? it.end_done : it.done) {
      const MbState& st = it.mbs[mb];
      if ((end ? st.end_part : st.part).retracting) continue;
      (end ? p.end_done : p.done).push_back(mb);
      const NodeId up = end ? st.end_from : st.from;
      if (up && !alive(up)) (end ? p.end_orphaned : p.orphaned).push_back(mb);
    }
  if (*l == id_) on_progress(id_, p, out);
  else send(*l, p, out);
}

void TrainNode::on_progress(NodeId from, const Progress& p, Output& out) {
  if (p.iter < stepped_) {  // the sender lags (its leader died before its Reduced arrived): what we applied since
    for (auto r = reduced_log_.lower_bound(p.iter); r != reduced_log_.end(); ++r) send(from, r->second, out);
    return;
  }
  // Kept even when we do not (yet) see ourselves as the leader: the sender may know of the old one's death first.
  // A retransmitted older report arriving late changes nothing.
  auto& known = iters_[p.iter].lead.progress[from];
  if (p.version < known.version) return;
  known = p;
  if (leader(stage_) == id_) leader_check(p.iter, out);
}

// Covered: every microbatch exactly once (and, for holders, the end part too) over the given sets.
template <class Sets>
static bool covers_exactly(const Sets& sets, uint32_t m, bool holders) {
  std::vector<int> start(m, 0), end(m, 0);
  for (const auto& [n, s] : sets) {
    for (Mb mb : s.done)
      if (mb < m) ++start[mb];
    for (Mb mb : s.end_done)
      if (mb < m) ++end[mb];
  }
  for (uint32_t k = 0; k < m; ++k)
    if (start[k] != 1 || (holders && end[k] != 1)) return false;
  return true;
}

// The leader reduces once the work is complete and every live member answered with a sum that matches its
// progress (members without work answer with an empty one). Hearing from all of them matters beyond the sums:
// a member that already applied an earlier leader's result answers with it instead, and the leader adopts it
// (on_collect, on_reduced), so two leaders of one iteration never apply different gradients.
void TrainNode::leader_check(Iter i, Output& out) {
  auto& it = iters_[i];
  auto& lead = it.lead;
  if (i != stepped_ || it.reduced) return;
  const auto any_dead = [&](const std::vector<NodeId>& v) {
    return std::any_of(v.begin(), v.end(), [&](NodeId n) { return !alive(n); });
  };
  // A summed member that died after the plan may not have cut its slices to every owner: that attempt too.
  if (params_.sharded_reduce &&
      (lead.round == 0 || any_dead(lead.owners) || (lead.reducing && any_dead(lead.summed)))) {
    // The most senior live members own the slices. When one dies the attempt starts over: every member cuts its
    // sum anew for the living owners (the dead one's slice would never come).
    lead.owners = live(stage_);
    std::stable_sort(lead.owners.begin(), lead.owners.end(), [&](NodeId a, NodeId b) { return senior(a, b); });
    if (lead.owners.size() > params_.reduce_owners) lead.owners.resize(params_.reduce_owners);
    if (lead.owners.size() < 2) lead.owners.clear();
    ++lead.round;
    lead.sums.clear();
    lead.asked.clear();
    lead.reducing = false;
    // A member that assembled the abandoned attempt applied it: that is the iteration's result, ours to adopt
    // (it answers a Collect with it) — the redo of the dead owner's work may never cover the stage again.
    for (NodeId n : lead.assembled)
      if (n != id_ && alive(n)) send(n, Collect{i, lead.round, lead.owners}, out);
  }
  if (lead.reducing) return;
  resolve_doubles(i, out);
  if (!covers_exactly(lead.progress, params_.microbatches, is_holder())) return;
  bool answered = true;
  for (NodeId n : live(stage_)) {
    auto p = lead.progress.find(n);
    auto s = lead.sums.find(n);
    const uint64_t version = p == lead.progress.end() ? 0 : p->second.version;
    if (s != lead.sums.end() && s->second.version == version && s->second.round == lead.round &&
        (p == lead.progress.end() || (s->second.done == p->second.done && s->second.end_done == p->second.end_done)))
      continue;
    answered = false;
    auto asked = lead.asked.find(n);
    if (asked != lead.asked.end() && asked->second == version) continue;  // asked for exactly this already
    lead.asked[n] = version;
    const Collect c{i, lead.round, lead.owners};
    if (n == id_) on_collect(id_, c, out);
    else send(n, c, out);
  }
  if (!answered || !covers_exactly(lead.sums, params_.microbatches, is_holder())) return;
  lead.reducing = true;
  if (!lead.owners.empty()) {  // sharded: every owner reduces its slice over the members' sums
    const Reduced entry = ledger_entry(i);
    ReducePlan p{i, lead.round, lead.owners, {}, {}, entry.loss, entry.done, entry.end_done, {}};
    for (const auto& [n, g] : lead.sums) {  // member order: every owner sums alike
      p.recipients.push_back(n);
      if (g.sliced) {
        p.members.push_back(n);
        p.versions.push_back(g.version);
      }
    }
    lead.recipients = p.recipients;
    lead.summed = p.members;
    for (NodeId o : p.recipients)
      if (o == id_) on_reduce_plan(id_, p, out);
      else send(o, p, out);
    return;
  }
  ComputeTask t = task(ComputeKind::kReduce, i);
  t.microbatches = params_.microbatches;
  for (const auto& [n, g] : lead.sums)  // member order: every leader sums alike
    if (g.data) t.inputs.push_back(g.data);
  queue(t);
}

// The leader's result without its data: every member's contributions (sorted: the stage's ledger entry) and the
// iteration's mean loss (holders).
Reduced TrainNode::ledger_entry(Iter i) const {
  double loss_sum = 0;
  Reduced r{i, 0, 0, {}, {}};
  for (const auto& [n, g] : iters_.at(i).lead.sums) {
    loss_sum += g.loss_sum;
    r.done.insert(r.done.end(), g.done.begin(), g.done.end());
    r.end_done.insert(r.end_done.end(), g.end_done.begin(), g.end_done.end());
  }
  r.loss = loss_sum / params_.microbatches;
  std::sort(r.done.begin(), r.done.end());
  std::sort(r.end_done.begin(), r.end_done.end());
  return r;
}

// A sharded reduce's data. Kept by attempt (leader, round): a member's slice may reach its owner before the
// owner's Collect does; only the attempt answered last is ever reduced or assembled.
void TrainNode::on_slice(NodeId from, const Slice& s, Output& out) {
  if (s.iter < stepped_ || iters_[s.iter].reduced) {
    if (s.data && from != id_) out.release.push_back(s.data);
    return;
  }
  ShardState& sh = iters_[s.iter].shard;
  sh.scratch.insert(s.data);
  const std::pair attempt{s.leader, s.round};
  if (s.reduced) {
    sh.reduced[attempt][s.index] = s.data;
    assemble(s.iter);
  } else {
    sh.parts[attempt][{from, s.version}] = s.data;
    reduce_slice(s.iter);
  }
}

void TrainNode::on_reduce_plan(NodeId from, const ReducePlan& p, Output& out) {
  auto it = iters_.find(p.iter);
  // A member ready since the Collect that the leader made a recipient (see on_ready): with no sum to cut, it
  // assembles that attempt like everyone else instead of waiting for the whole from the leader's one link — also
  // when it had answered a dead leader's Collect before it served (soak seed 574310: it never assembled, and the
  // leader waited for it forever).
  const bool added = p.iter == stepped_ && ready_ && contains(p.recipients, id_) &&
                     (it == iters_.end() || ((it->second.shard.leader == 0 || !alive(it->second.shard.leader)) &&
                                             it->second.done.empty() && it->second.end_done.empty()));
  if (added) {
    it = iters_.try_emplace(p.iter).first;
    it->second.shard.begin_attempt(from, p.round);
    it->second.shard.owners = p.owners;
  }
  if (it == iters_.end()) return;
  ShardState& sh = it->second.shard;
  if (!sh.current(from, p.round)) return;  // we answered a newer Collect (or another leader's)
  share_slice(p.iter, p, out);  // an owner: to recipients the plan added since our slice went out
  if (p.iter < stepped_ || it->second.reduced) return;
  if (!sh.plan) sh.plan = p;
  for (NodeId r : p.recipients)  // a retransmitted older copy of the plan lacks the recipients added since
    if (!contains(sh.plan->recipients, r)) sh.plan->recipients.push_back(r);
  reduce_slice(p.iter);
  assemble(p.iter);
}

// Our reduced slice of the current attempt to every recipient of `p` that has not had it (also once we applied
// the step: the plan may add a recipient after that).
void TrainNode::share_slice(Iter i, const ReducePlan& p, Output& out) {
  ShardState& sh = iters_[i].shard;
  const auto me = std::find(p.owners.begin(), p.owners.end(), id_);
  if (me == p.owners.end()) return;
  const auto index = static_cast<uint32_t>(me - p.owners.begin());
  const auto bucket = sh.reduced.find({sh.leader, sh.round});
  if (bucket == sh.reduced.end() || !bucket->second.count(index)) return;
  const Slice s{i, sh.leader, sh.round, 0, index, static_cast<uint32_t>(p.owners.size()), true,
                bucket->second.at(index)};
  for (NodeId r : p.recipients)
    if (r != id_ && sh.shared.insert(r).second) send(r, s, out);
}

void TrainNode::reduce_slice(Iter i) {
  ShardState& sh = iters_[i].shard;
  if (!sh.plan || sh.reducing) return;
  const ReducePlan& p = *sh.plan;
  const auto me = std::find(p.owners.begin(), p.owners.end(), id_);
  if (me == p.owners.end()) return;
  const auto& parts = sh.parts[{sh.leader, sh.round}];
  ComputeTask t = task(ComputeKind::kReduce, i);
  t.microbatches = params_.microbatches;
  t.slice = static_cast<uint32_t>(me - p.owners.begin());
  t.slices = static_cast<uint32_t>(p.owners.size());
  t.attempt = {sh.leader, sh.round};
  for (size_t k = 0; k < p.members.size(); ++k) {
    auto f = parts.find({p.members[k], p.versions[k]});
    if (f == parts.end()) return;  // not all here yet
    t.inputs.push_back(f->second);
  }
  sh.reducing = true;
  queue(std::move(t));
}

void TrainNode::assemble(Iter i) {
  auto& it = iters_[i];
  ShardState& sh = it.shard;
  if (!sh.plan || sh.concatenating || it.reduced) return;
  const auto& got = sh.reduced[{sh.leader, sh.round}];
  if (got.size() < sh.plan->owners.size()) return;
  ComputeTask t = task(ComputeKind::kConcat, i);
  t.attempt = {sh.leader, sh.round};
  for (uint32_t k = 0; k < sh.plan->owners.size(); ++k) t.inputs.push_back(got.at(k));
  sh.concatenating = true;
  queue(std::move(t));
}

void TrainNode::on_assembled(NodeId from, const Assembled& a, Output& out) {
  auto it = iters_.find(a.iter);
  if (it == iters_.end()) return;
  LeaderState& lead = it->second.lead;
  lead.assembled.insert(from);
  // It applied an attempt we abandoned since (an owner died): its result is the iteration's, ours to adopt.
  if (!it->second.reduced && !lead.reducing && a.iter == stepped_ && leader(stage_) == id_)
    send(from, Collect{a.iter, lead.round, lead.owners}, out);
  try_commit(out);
}

void TrainNode::on_collect(NodeId from, const Collect& c, Output& out) {
  if (c.iter < stepped_) {  // we applied an earlier leader's result: the new leader adopts it
    if (auto r = reduced_log_.find(c.iter); r != reduced_log_.end() && from != id_) send(from, r->second, out);
    return;
  }
  if (auto r = iters_.find(c.iter); r != iters_.end() && r->second.reduced) {  // being applied: the same
    if (from != id_) send(from, *r->second.reduced, out);
    return;
  }
  // The sender leads our stage in its view, so every member below it is dead to it: to us too from now on (a
  // late Reduced from one of them must not be applied after we answered the new leader).
  for (NodeId n : live(stage_))
    if (n != id_ && n != from && senior(n, from)) on_peer_down(n, out);
  auto& it = iters_[c.iter];
  ShardState& sh = it.shard;
  if (!sh.current(from, c.round)) sh.begin_attempt(from, c.round);
  sh.owners = c.owners;
  if (it.done.empty() && it.end_done.empty()) {  // no work: an empty answer, no snapshot needed
    const GradSum empty{c.iter, {}, {}, 0, 0, it.reported, c.round, false};
    if (from == id_) on_gradsum(id_, empty, out);
    else send(from, empty, out);
    return;
  }
  if (it.snapshot_queued) return;
  it.snapshot_queued = true;
  queue(task(ComputeKind::kSnapshot, c.iter));
}

void TrainNode::on_gradsum(NodeId from, const GradSum& g, Output& out) {
  if (g.iter < stepped_) return;
  auto& sums = iters_[g.iter].lead.sums;
  if (auto known = sums.find(from);
      known != sums.end() && std::pair(g.round, g.version) < std::pair(known->second.round, known->second.version))
    return;  // older
  sums[from] = g;
  if (leader(stage_) == id_) leader_check(g.iter, out);
}

// Two live members contributed the same microbatch: a recomputation that could not know of the first copy (the
// path to it died with two nodes in a row). Keep one — a copy whose upstream lives (the living know its path, so
// a later crash gets it redone), the lowest id among equals — and ask the others to take theirs back out. A
// member stops reporting a copy once asked, so a later decision never retracts the last copy.
void TrainNode::resolve_doubles(Iter i, Output& out) {
  auto& lead = iters_[i].lead;
  for (bool end : {false, true}) {
    std::map<Mb, std::vector<NodeId>> holders;
    for (const auto& [n, p] : lead.progress)
      if (alive(n))
        for (Mb mb : end ? p.end_done : p.done) holders[mb].push_back(n);
    for (const auto& [mb, ns] : holders) {
      if (ns.size() < 2) continue;
      if (lead.doubled.insert(mb).second) out.events.push_back({EventKind::kDoubleContribution, i, mb, ns[1]});
      auto orphan = [&, mb = mb](NodeId n) {
        const auto& o = end ? lead.progress[n].end_orphaned : lead.progress[n].orphaned;
        return std::find(o.begin(), o.end(), mb) != o.end();
      };
      auto keep = std::find_if(ns.begin(), ns.end(), [&](NodeId n) { return !orphan(n); });
      const NodeId kept = keep == ns.end() ? ns.front() : *keep;
      for (NodeId n : ns) {
        if (n == kept) continue;
        const Retract r{i, mb, end, lead.progress[n].version, kept};
        if (!lead.retracts.insert({n, mb, end, r.version}).second) continue;
        if (n == id_) on_retract(id_, r, out);
        else send(n, r, out);
      }
    }
  }
}

// Only the leader in our view decides (a Retract of a leader we learnt dead is dropped with its messages; the new
// one decides on what we report to it), and only on the contribution it saw: one made since is another.
void TrainNode::on_retract(NodeId from, const Retract& r, Output& out) {
  if (r.iter != stepped_ || leader(stage_) != from) return;
  auto it = iters_.find(r.iter);
  if (it == iters_.end() || !(r.end ? it->second.end_done : it->second.done).count(r.mb)) return;
  MbState& st = it->second.mbs[r.mb];
  auto& c = r.end ? st.end_part : st.part;
  if (c.retracting || c.stamp > r.version || !alive(r.kept)) return;
  c.retracting = true;
  c.kept = r.kept;
  contribute(r.iter, r.mb, st, r.end, /*retract=*/true);
  report_progress(r.iter, out);  // no longer ours
}

void TrainNode::on_retracted(const ComputeTask& t, const ComputeDone& d, IterState& it, Output& out) {
  if (d.output) out.release.push_back(d.output);
  const bool end = t.kind == ComputeKind::kEndBackward;
  MbState& st = it.mbs[t.mb];
  auto& c = end ? st.end_part : st.part;
  c.retracting = false;
  (end ? it.end_done : it.done).erase(t.mb);
  if (end) it.loss_sum -= d.loss;
  out.events.push_back({EventKind::kRetracted, t.iter, t.mb, id_, end ? 1.0 : 0.0});
  if (std::exchange(c.again, false)) contribute(t.iter, t.mb, st, end, /*retract=*/false);
  else c.retracted = true;
  report_progress(t.iter, out);
}

// A replay reached us for a microbatch whose contribution we took back out, or the member whose copy was kept
// instead died: the stage needs ours again — from the buffers, the backward only.
void TrainNode::replayed(Iter i, Mb mb, MbState& st, bool end) {
  auto& c = end ? st.end_part : st.part;
  c.kept = 0;
  if (c.retracting) c.again = true;
  else if (std::exchange(c.retracted, false)) contribute(i, mb, st, end, /*retract=*/false);
}

// The backward of a contribution from the buffers: to add it (again) or, negated, to take it back out.
void TrainNode::contribute(Iter i, Mb mb, const MbState& st, bool end, bool retract) {
  ComputeTask t = end          ? task(ComputeKind::kEndBackward, i, mb, {st.end_input})
                  : is_holder() ? task(ComputeKind::kStartBackward, i, mb, {st.grad_in})
                                : task(ComputeKind::kBackward, i, mb, {st.input, st.grad_in});
  t.retract = retract;
  queue(std::move(t));
}

void TrainNode::on_reduced(NodeId by, const Reduced& r, Output& out, bool pass_on) {
  if (r.iter < stepped_ || (!ready_ && !imported_)) return;
  if (r.iter > stepped_) {  // we have not applied the one before yet
    early_reduced_[r.iter] = r;
    return;
  }
  auto& it = iters_[r.iter];
  if (it.reduced) return;
  it.reduced = r;
  it.reduced_by = by;
  it.shard.plan.reset();  // nothing of the sharded reduce is assembled any more
  reduced_log_[r.iter] = r;
  while (reduced_log_.size() > params_.reduced_log) {
    out.release.push_back(reduced_log_.begin()->second.data);
    reduced_log_.erase(reduced_log_.begin());
  }
  queue(task(ComputeKind::kApply, r.iter, 0, {r.data}));
  // The leader's own result, or one it adopted (a new leader that received the old leader's result passes it
  // on, so no member computes another). A sharded result every member assembles itself.
  if (pass_on && leader(stage_) == id_)
    for (NodeId n : live(stage_))
      if (n != id_) {
        it.lead.sent_whole.insert(n);
        send(n, r, out);
      }
}

// Our stage stepped further than we did and the Reduced we lack died with its sender: ask a live member, the most
// senior first, another one each time we still lag, less often each time (answered from its reduced-gradient log,
// see on_progress). Asking every member at once brought a copy of every missing step (238 MB each) from each.
void TrainNode::catch_up(Output& out) {
  if (!ready_ && !imported_) return;  // a newcomer catches up from the state it imports
  auto s = stage_stepped_.find(stage_);
  const bool lagging = s != stage_stepped_.end() && s->second > stepped_ && !iters_[stepped_].reduced;
  if (!lagging) {
    catch_up_wait_ = 0;
    return;
  }
  if (now_ - last_catch_up_ < catch_up_wait_) return;
  std::vector<NodeId> others;
  for (NodeId n : live(stage_))
    if (n != id_) others.push_back(n);
  if (others.empty()) return;
  std::stable_sort(others.begin(), others.end(), [&](NodeId a, NodeId b) { return senior(a, b); });
  last_catch_up_ = now_;
  catch_up_wait_ = catch_up_wait_ == 0 ? params_.retransmit_after
                                       : std::min(2 * catch_up_wait_, 16 * params_.retransmit_after);
  const auto& it = iters_[stepped_];
  send(others[catch_up_turn_++ % others.size()],
       Progress{stepped_, as_vector(it.done), as_vector(it.end_done), 0, {}, {}}, out);
}

// A sharded step we announce waits for every member to assemble it: one that may miss a dead node's slice (an
// owner's reduced slice, or a summed member's cut its owner lacked) gets the whole result instead — whether the
// death came before our own assembly or after. Anyone else's death changes nothing there: sending 238 MB to every
// member on every crash held the step for seconds.
void TrainNode::send_whole_if_lost(Iter i, Output& out) {
  auto it = iters_.find(i);
  auto r = reduced_log_.find(i);
  if (it == iters_.end() || r == reduced_log_.end() || !it->second.lead.sharded_result) return;
  auto& lead = it->second.lead;
  const auto dead = [&](NodeId n) { return !alive(n); };
  if (std::none_of(lead.owners.begin(), lead.owners.end(), dead) &&
      std::none_of(lead.summed.begin(), lead.summed.end(), dead))
    return;
  for (NodeId n : lead.recipients)
    if (n != id_ && alive(n) && !lead.assembled.count(n) && lead.sent_whole.insert(n).second) send(n, r->second, out);
}

// The leader announces its stage's step only when every live member acknowledged the reduced gradient: other
// stages free that iteration's buffers on it, so the result must survive the leader (a member that lost it
// could not redo its work any more).
void TrainNode::try_commit(Output& out) {
  for (auto i = commit_pending_.begin(); i != commit_pending_.end();) {
    const Iter iter = *i;
    // A sharded step: every live recipient assembled it or was sent the whole (a member ready since gets it from our
    // log as a Reduced, see on_ready: the acknowledgement below). Whoever assembled it holds it: a whole copy on
    // its way there need not arrive first. Nor need a copy to a newcomer still catching up (it answered its
    // Progress): nobody waits for it until it serves — its 238 MB over a slow link held steps for seconds.
    const LeaderState* sharded = nullptr;
    if (auto it = iters_.find(iter); it != iters_.end() && it->second.lead.sharded_result) sharded = &it->second.lead;
    const bool unacked = std::any_of(outbox_.begin(), outbox_.end(), [&](const auto& p) {
      const auto* r = std::get_if<Reduced>(&p.second.msg.body);
      const NodeId to = p.second.msg.to;
      return r && r->iter == iter && serves(to) && !(sharded && sharded->assembled.count(to));
    });
    bool unassembled = false;
    if (sharded)
      for (NodeId n : sharded->recipients)
        unassembled |= n != id_ && alive(n) && !sharded->assembled.count(n) && !sharded->sent_whole.count(n);
    if (unacked || unassembled) {
      ++i;
      continue;
    }
    i = commit_pending_.erase(i);
    const Committed c{iter, stage_};
    for (const auto& [n, m] : members_)
      if (m.alive && n != id_) send(n, c, out);
    on_committed(c, out);
  }
}

// Any serving member that applied a step holds it: while it lives, every later leader adopts that result, so
// the stage's step sums every microbatch once, a dead member's part included. Others redo less on that word.
void TrainNode::announce_applied(Iter i, Output& out) {
  // Not a newcomer's before it serves: no leader asks it, so its copy keeps no step alive (soak seed 192141).
  if (!ready_ || has_stepped(stage_, i)) return;
  const auto members = live(stage_);
  const auto seniors = std::count_if(members.begin(), members.end(), [&](NodeId n) { return senior(n, id_); });
  if (static_cast<uint64_t>(seniors) >= params_.step_announcers) return;
  // To whoever may redo through our stage: the stages before it on a path (every relay for the holders' end part).
  for (const auto& [n, m] : members_)
    if (m.alive && n != id_ && (is_holder() || m.stage < stage_)) send(n, StepApplied{i, stage_}, out);
}

void TrainNode::on_applied(NodeId from, const StepApplied& a) {
  auto m = members_.find(from);
  if (m == members_.end() || m->second.stage != a.stage) return;  // only a member of that stage knows
  auto& known = stage_applied_[a.stage];
  if (a.iter + 1 < known.iters) return;  // older news
  if (a.iter + 1 > known.iters) known = {a.iter + 1, {}};
  known.by.insert(from);
}

void TrainNode::on_committed(const Committed& c, Output& out) {
  Iter& s = stage_stepped_[c.stage];
  s = std::max(s, c.iter + 1);
  if (c.stage == stage_) offer_to_askers(out);
  free_committed(out);
}

void TrainNode::free_committed(Output& out) {
  const Iter c = committed();
  while (!iters_.empty() && iters_.begin()->first < c && iters_.begin()->first < stepped_) {
    const Iter i = iters_.begin()->first;
    for (const auto& [mb, st] : iters_.begin()->second.mbs)
      for (Blob b : {st.input, st.output, st.grad_in, st.grad_out, st.end_input, st.end_grad})
        if (b) out.release.push_back(b);
    std::set<Blob> unsent;  // a slice still to be acknowledged travels again: its blob stays
    for (const auto& [seq, p] : outbox_)
      if (const auto* s = std::get_if<Slice>(&p.msg.body)) unsent.insert(s->data);
    for (Blob b : iters_.begin()->second.shard.scratch)
      if (b && !unsent.count(b)) out.release.push_back(b);
    iters_.erase(iters_.begin());
    // Queued work of the freed iteration (a replay nobody needs any more): its inputs were just released.
    for (auto q = tasks_.begin(); q != tasks_.end();)
      q = q->iter == i && is_work(q->kind) ? tasks_.erase(q) : std::next(q);
    out.events.push_back({EventKind::kIterationCommitted, i, 0, id_});
    busy_until_.clear();  // every node frees that iteration's buffers now: room again
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Joining. The newcomer asks the stage's serving replicas for their state, fetches its chunks from every donor
// that offers the same state (they are bit-identical), imports it, catches up with the reduced gradients applied
// since (the members' logs, see catch_up), and only then announces itself Ready: until then no leader waits for
// it and no microbatch is routed to it.

void TrainNode::join_tick(Output& out) {
  if (ready_ || importing_ || imported_) return;
  // Every serving replica of the stage is asked once as we learn of it; everyone again when no donor offers the
  // state we fetch any more.
  if (fetcher_.needs_offers() && now_ - last_state_ask_ >= 2 * params_.retransmit_after) asked_donors_.clear();
  for (NodeId d : live(stage_))
    if (asked_donors_.insert(d).second) {
      last_state_ask_ = now_;
      send(d, StateAsk{}, out);
    }
  fetch_state(out);
}

void TrainNode::fetch_state(Output& out) {
  if (ready_ || importing_ || imported_) return;
  for (const auto& [donor, index] : fetcher_.requests()) send(donor, ChunkAsk{fetcher_.version(), index}, out);
  if (!fetcher_.complete()) return;
  const Iter version = fetcher_.version();
  auto state = fetcher_.assemble();
  if (!state) {  // the chunks verified but the whole did not: start over (the fetcher was reset)
    out.events.push_back({EventKind::kRejectedChunk, version, 0, 0});
    return;
  }
  importing_ = true;
  ComputeTask t = task(ComputeKind::kImport, version);
  t.state = std::make_shared<const std::string>(std::move(*state));
  queue(std::move(t));
  for (NodeId d : std::exchange(asked_donors_, {}))
    if (alive(d)) send(d, StateDone{}, out);
  fetcher_.reset();
}

void TrainNode::on_state_offer(NodeId from, const StateOffer& o, Output& out) {
  if (ready_ || importing_ || imported_) return;
  fetcher_.on_manifest(from, o.manifest);
  fetch_state(out);
}

void TrainNode::on_chunk(NodeId from, const Chunk& c, Output& out) {
  if (ready_ || importing_ || imported_) return;
  if (fetcher_.on_chunk(from, c.version, c.index, c.bytes) == StateFetcher::ChunkResult::kRejected)
    out.events.push_back({EventKind::kRejectedChunk, c.version, c.index, from});
  fetch_state(out);
}

void TrainNode::on_imported(const ComputeTask& t, bool ok, Output& out) {
  importing_ = false;
  if (!ok) {  // the driver refused the state (wrong stage or model): fetch again
    out.events.push_back({EventKind::kRejectedChunk, t.iter, 0, 0});
    last_state_ask_ = -1e300;
    return;
  }
  imported_ = true;
  stepped_ = t.iter;
  while (!iters_.empty() && iters_.begin()->first < stepped_) iters_.erase(iters_.begin());
  while (!early_reduced_.empty() && early_reduced_.begin()->first < stepped_) early_reduced_.erase(early_reduced_.begin());
  maybe_ready(out);
}

// Ready once caught up with the stage as far as we heard (its Committed messages); a stage that moved on further
// than its members' reduced-gradient logs reach means fetching a newer state.
void TrainNode::maybe_ready(Output& out) {
  if (ready_ || !imported_) return;
  auto s = stage_stepped_.find(stage_);
  const Iter stage_at = s == stage_stepped_.end() ? 0 : s->second;
  if (stage_at > stepped_ + params_.reduced_log) {
    imported_ = false;
    last_state_ask_ = -1e300;
    return;
  }
  if (stage_at > stepped_) return;  // catch_up applies what the stage applied since
  ready_ = true;
  seniority_ = stepped_ + 1;
  members_[id_].ready = true;
  members_[id_].seniority = seniority_;
  for (const auto& [n, m] : members_)
    if (m.alive && n != id_) send(n, Ready{seniority_}, out);
  out.events.push_back({EventKind::kJoined, stepped_, 0, id_, static_cast<double>(stepped_)});
}

void TrainNode::on_ready(NodeId from, const Ready& r, Output& out) {
  Member& m = members_[from];
  const auto lead = leader(stage_);
  m.ready = true;
  m.seniority = r.seniority;
  // It serves: it fetches no copy from us any more (a late retransmitted StateAsk after its StateDone would
  // otherwise keep it listed, and our copy — stale by then — would be offered to every later newcomer).
  fetching_.erase(from);
  state_askers_.erase(from);
  if (fetching_.empty() && state_askers_.empty()) snapshot_.reset();
  // A newcomer hears the founders' Ready in any order: when one it had not heard of yet leads our stage, our
  // progress goes to that one.
  if (m.stage == stage_ && leader(stage_) != lead)
    for (auto& [i, it] : iters_)
      if (i >= stepped_) report_progress(i, out);
  // We lead: the newcomer is one more member to hear from (its progress may have come first). When our sharded
  // reduce's plan is already out, it is added as a recipient: the owners send it their reduced slices, so it
  // assembles the step as fast as the others (the whole from our one link took seconds, and its stage's work of the
  // next iteration waited for it).
  if (m.stage == stage_ && leader(stage_) == id_ && iters_.count(stepped_)) {
    IterState& it = iters_[stepped_];
    LeaderState& ls = it.lead;
    ShardState& sh = it.shard;
    if (!it.reduced && ls.reducing && !ls.owners.empty() && r.seniority == stepped_ + 1 &&
        !contains(ls.recipients, from) && sh.plan && sh.current(id_, ls.round)) {
      ls.recipients.push_back(from);
      sh.plan->recipients = ls.recipients;
      const ReducePlan p = *sh.plan;
      for (NodeId o : p.owners)
        if (o == id_) on_reduce_plan(id_, p, out);
        else send(o, p, out);
      send(from, p, out);
    }
    leader_check(stepped_, out);
  }
  if (m.stage == stage_ && !ready_) join_tick(out);  // a donor for us
  // A newcomer of our stage whose state is older than ours (it never heard of our latest steps): the reduced
  // gradients it lacks, from our log.
  if (m.stage == stage_ && ready_ && r.seniority > 0)
    for (auto e = reduced_log_.lower_bound(r.seniority - 1); e != reduced_log_.end() && e->first < stepped_; ++e)
      send(from, e->second, out);
  // Work that found no serving replica (the whole next stage had died) goes to the newcomer now.
  resend_unrouted(out);
  for (auto& [i, it] : iters_)
    for (auto& [mb, st] : it.mbs)
      if (st.to && !alive(st.to)) redo(i, mb, st, st.to, out);
}

void TrainNode::on_state_ask(NodeId from, Output& out) {
  if (!ready_ || is_holder() || members_[from].ready) return;  // (a late retransmission from a newcomer that serves)
  // A copy someone still fetches stays the offer (the newcomer catches up from it), as long as the reduced-
  // gradient log still covers the steps since; otherwise a fresh one.
  state_askers_.insert(from);
  if (snapshot_ && (snapshot_manifest_.version == stepped_ ||
                    (!fetching_.empty() && snapshot_manifest_.version + params_.reduced_log > stepped_))) {
    offer_to_askers(out);
    return;
  }
  if (exporting_) return;
  exporting_ = true;
  queue(task(ComputeKind::kExport, stepped_));
}

// Our copy goes out only once our stage announced every step in it. A step not announced yet can still die with
// its leader (a member that never assembled it redoes it); a newcomer that imported it could not pass it on, and
// the member waited forever for that step (soak seed 83450). The askers wait for the announcement (on_committed).
void TrainNode::offer_to_askers(Output& out) {
  auto announced = stage_stepped_.find(stage_);
  if (!snapshot_ || snapshot_manifest_.version > (announced == stage_stepped_.end() ? 0 : announced->second)) return;
  for (NodeId a : std::exchange(state_askers_, {}))
    if (alive(a)) offer_state(a, out);
}

void TrainNode::offer_state(NodeId to, Output& out) {
  fetching_.insert(to);
  send(to, StateOffer{snapshot_manifest_}, out);
}

void TrainNode::on_chunk_ask(NodeId from, const ChunkAsk& c, Output& out) {
  if (members_[from].ready) return;
  if (!snapshot_ || c.version != snapshot_manifest_.version || c.index >= chunk_count(snapshot_manifest_)) {
    on_state_ask(from, out);  // we no longer have that copy: offer what we have now
    return;
  }
  send(from, Chunk{c.version, c.index, std::string(chunk_of(*snapshot_, snapshot_manifest_, c.index))}, out);
}

// ---------------------------------------------------------------------------------------------------------------
// Compute: one task at a time; optimizer work first, then backward (1F1B), then forward; an iteration's
// forward/backward waits until the stage stepped the one before.

void TrainNode::queue(ComputeTask t) {
  t.id = next_task_++;
  tasks_.push_back(std::move(t));
}

bool TrainNode::runnable(const ComputeTask& t) const {
  if (t.kind == ComputeKind::kExport || t.kind == ComputeKind::kImport) return true;  // between any two steps
  return t.iter == stepped_ || (t.replay && t.iter + 1 == stepped_);
}

void TrainNode::pump(Output& out) {
  if (running_) return;
  auto rank = [](const ComputeTask& t) {
    if (!is_work(t.kind) || t.retract) return 0;  // aggregation and state transfer first
    return is_backward(t.kind) ? 1 : 2;
  };
  auto best = tasks_.end();
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it)
    if (runnable(*it) && (best == tasks_.end() || rank(*it) < rank(*best))) best = it;
  if (best == tasks_.end()) return;
  running_ = *best;
  tasks_.erase(best);
  out.compute.push_back(*running_);
}

// ---------------------------------------------------------------------------------------------------------------

const char* body_name(const Body& b) {
  static constexpr const char* kNames[] = {"activation", "forwarded",   "gradient",  "who-holds", "adopt",
                                           "progress",   "collect",     "gradsum",   "reduced",   "committed",
                                           "state-ask",  "state-offer", "chunk-ask", "chunk",     "state-done",
                                           "ready",      "retract",     "leaving",   "busy",      "ack",
                                           "slice",      "reduce-plan", "assembled", "applied"};
  static_assert(std::size(kNames) == std::variant_size_v<Body>);
  return kNames[b.index()];
}

bool is_work(ComputeKind k) {
  return k == ComputeKind::kStartForward || k == ComputeKind::kForward || k == ComputeKind::kEndBackward ||
         k == ComputeKind::kBackward || k == ComputeKind::kStartBackward;
}

const char* compute_name(ComputeKind k) {
  static constexpr const char* kNames[] = {"start-forward", "forward", "end-backward", "backward", "start-backward",
                                           "snapshot",      "reduce",  "apply",        "export",   "import",
                                           "slice",         "concat"};
  static_assert(std::size(kNames) == static_cast<size_t>(ComputeKind::kConcat) + 1, "a name per kind");
  return kNames[static_cast<int>(k)];
}

bool may_send(const Body& b, Stage from, Stage to, Stage relay_stages) {
  return std::visit(Overloaded{
                        [&](const Activation&) { return from == flow::prev_stage(to, relay_stages); },
                        [&](const Gradient&) { return from == flow::next_stage(to, relay_stages); },
                        [&](const Progress&) { return from == to; },
                        [&](const Collect&) { return from == to; },
                        [&](const GradSum&) { return from == to; },
                        [&](const Reduced&) { return from == to; },
                        [&](const Retract&) { return from == to; },
                        [&](const StateAsk&) { return from == to; },
                        [&](const StateOffer&) { return from == to; },
                        [&](const ChunkAsk&) { return from == to; },
                        [&](const Chunk&) { return from == to; },
                        [&](const StateDone&) { return from == to; },
                        [&](const Slice&) { return from == to; },
                        [&](const ReducePlan&) { return from == to; },
                        [&](const Assembled&) { return from == to; },
                        [&](const auto&) { return true; },  // protocol messages any member may send
                    },
                    b);
}

const char* event_name(EventKind k) {
  static constexpr const char* kNames[] = {"dropped-from-dead", "dropped-unknown", "dropped-stale",
                                           "duplicate",         "rejected-non-finite", "redo",
                                           "adopted",           "stepped",          "iteration-committed",
                                           "rejected-chunk",    "joined",           "double-contribution",
                                           "retracted",         "busy",             "over-budget",
                                           "gave-back",         "dropped-misrouted", "refused-at-door",
                                           "refused-everywhere", "unprocessable",   "taken-back"};
  static_assert(std::size(kNames) == static_cast<size_t>(EventKind::kTakenBack) + 1, "a name per event");
  return kNames[static_cast<int>(k)];
}

}  // namespace gwtf::train
