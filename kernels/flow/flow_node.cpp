#include "kernels/flow/flow_node.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>

#include "kernels/base/overloaded.hpp"

namespace gwtf::flow {

namespace {
constexpr double kEps = 1e-9;

bool differs(double a, double b) { return std::fabs(a - b) > kEps * (1 + std::fabs(a) + std::fabs(b)); }
}  // namespace

FlowNode::FlowNode(FlowConfig config, Rng rng) : cfg_(config), rng_(rng) {}

// ------------------------------------------------------------------------------------------------------------
// Entry point

void FlowNode::step(const Input& input, double now, Output& out) {
  now_ = now;
  out_ = &out;
  std::visit(Overloaded{
                 [&](const Receive& r) { on_receive(r.from, r.body); },
                 [&](const Tick&) { on_tick(); },
                 [&](const PeerUp& p) { on_peer_up(p); },
                 [&](const PeerDown& p) { on_peer_down(p.peer); },
                 [&](const LinkCost& c) { on_link_cost(c); },
             },
             input);
  out_ = nullptr;
}

void FlowNode::on_receive(NodeId from, const FlowBody& body) {
  // Shared checks first: messages from peers we do not know, or know to be dead, are dropped.
  auto p = peers_.find(from);
  if (p == peers_.end() || !p->second.alive) {
    event(EventKind::kDropped, from, std::string("from unknown or dead peer: ") + body_name(body));
    return;
  }
  std::visit([&](const auto& m) { on(from, m); }, body);
}

// ------------------------------------------------------------------------------------------------------------
// Membership and measurements

void FlowNode::on_peer_up(const PeerUp& p) {
  dead_.erase(p.peer);
  auto& peer = peers_[p.peer];
  peer.stage = p.stage;
  peer.alive = true;
  if (is_prev(p.peer)) send(p.peer, current_offer());
}

void FlowNode::on_peer_down(NodeId peer) {
  dead_.insert(peer);
  auto it = peers_.find(peer);
  if (it != peers_.end()) {
    it->second.alive = false;
    it->second.has_offer = false;
    it->second.snapshot.reset();
  }
  std::vector<HopId> outs;
  for (const auto& [id, o] : outs_)
    if (o.next == peer) outs.push_back(id);
  for (HopId id : outs) remove_out(id);
  std::vector<HopKey> ins;
  for (const auto& [key, in] : ins_)
    if (key.prev == peer) ins.push_back(key);
  for (const auto& key : ins) remove_in(key, true);
  if (pending_move_ && pending_move_->partner == peer) {
    if (auto o = outs_.find(pending_move_->mine); o != outs_.end()) o->second.locked = false;
    pending_move_.reset();
  }
  build();
  advertise(false);
}

void FlowNode::on_link_cost(const LinkCost& c) {
  auto& peer = peers_[c.peer];
  peer.link = c.cost;
  for (auto& [id, o] : outs_) {
    if (o.next != c.peer || !differs(o.link, c.cost)) continue;
    o.link = c.cost;
    if (o.in) send(o.in->prev, SuffixUpdate{o.in->id, suffix(o), o.sink});
    if (o.in || is_holder()) {
      const double prefix = o.in ? ins_.at(*o.in).prefix : 0.0;
      send(o.next, PrefixUpdate{id, prefix + o.link, source_of(o.in)});
    }
  }
}

// ------------------------------------------------------------------------------------------------------------
// Periodic work

void FlowNode::on_tick() {
  ++round_;
  if (temperature_ < 0) temperature_ = cfg_.params.temperature0 * mean_link();
  else temperature_ *= cfg_.params.cooling_per_round;
  if (pending_move_ && now_ > pending_move_->deadline) {
    if (auto o = outs_.find(pending_move_->mine); o != outs_.end()) o->second.locked = false;
    pending_move_.reset();
  }
  expire();
  if (is_holder() && !frozen_) reclaim_lent();
  if (!is_holder()) {
    bind_orphans();
    repair_pairing();
  }
  build();
  if (!frozen_) reroute();
  advertise(round_ - last_advert_round_ >= cfg_.params.advert_every);

  if (round_ % cfg_.params.snapshot_every == 0) {
    // Holders too: their source flows are pairs without an in-hop (prev 0, prefix 0).
    Snapshot snap;
    for (const auto& [id, o] : outs_) {
      if (!o.established || (!o.in && !is_holder())) continue;
      snap.pairs.push_back(PairInfo{id, o.in ? o.in->prev : 0, o.in ? ins_.at(*o.in).prefix : 0.0, o.next, o.link,
                                    o.suffix_after});
    }
    for (const auto& [pid, p] : peers_)
      if (p.alive && std::isfinite(p.link) && (is_prev(p) || is_next(p))) snap.links.push_back({pid, p.link});
    snap.capacity = cfg_.capacity;
    snap.used = used();
    for (const auto& [pid, p] : peers_)
      if (p.alive && p.stage == cfg_.stage && pid != cfg_.id) send(pid, snap);
  }
  if (round_ % cfg_.params.check_every == 0) {
    // Anti-entropy: tell every next-stage peer exactly which established hops we have to it (an empty list too:
    // it lets the peer drop hops we gave up on whose Cancel was lost).
    std::map<NodeId, CheckFlows> checks;
    for (const auto& [pid, p] : peers_)
      if (p.alive && is_next(p)) checks[pid];
    for (const auto& [id, o] : outs_)
      if (o.established) checks[o.next].hops.push_back(id);
    for (auto& [pid, c] : checks) send(pid, std::move(c));
  }
  if (!frozen_ && !pending_move_ && rng_.chance(cfg_.params.move_probability)) try_move();
}

void FlowNode::expire() {
  const double period = cfg_.params.period;
  std::vector<HopId> give_up, idle;
  for (auto& [id, o] : outs_) {
    if (!o.established && now_ - o.since >= cfg_.params.request_timeout * period) {
      if (o.attempts < cfg_.params.request_attempts) {
        ++o.attempts;
        o.since = now_;
        send(o.next, FlowRequest{id, prefix_of(o.for_in) + o.link, o.expected_suffix, o.new_path_to,
                                 source_of(o.for_in)});
      } else {
        give_up.push_back(id);
      }
    } else if (!is_holder() && o.established && !o.in && !o.locked &&
               now_ - o.since >= cfg_.params.idle_timeout * period) {
      idle.push_back(id);
    }
  }
  for (HopId id : give_up) {
    // In case it was accepted and only the answer was lost (a new path: the sink lent a slot for it).
    send(outs_.at(id).next, Cancel{id, outs_.at(id).new_path_to != 0});
    remove_out(id);
  }
  for (HopId id : idle) {
    send(outs_.at(id).next, Cancel{id});
    remove_out(id);
  }
  if (!idle.empty()) backoff_until_ = now_ + period * static_cast<double>(1 + rng_.below(3));
  std::vector<HopKey> orphans;
  for (const auto& [key, in] : ins_)
    if (!is_holder() && !in.out && in.accepted && now_ - in.since >= cfg_.params.orphan_timeout * period)
      orphans.push_back(key);
  for (const auto& key : orphans) {
    send(key.prev, PushBack{key.id});
    remove_in(key, false);
  }
}

// A sink lends slots beyond its capacity to new paths; the flow's old path, released down to this sink, gives
// each back. It may end at another sink after all (a swap downstream moved it while the Cancel travelled): a
// slot not given back within lend_timeout is taken back by pushing back the in-hop that costs most to get here,
// whose flow then finds a sink with room.
void FlowNode::reclaim_lent() {
  const size_t over = ins_.size() > cfg_.capacity ? ins_.size() - cfg_.capacity : 0;
  while (lent_.size() > over) lent_.pop_front();  // given back: the oldest lends are the likeliest returned
  while (!lent_.empty() && now_ - lent_.front() >= cfg_.params.lend_timeout * cfg_.params.period) {
    lent_.pop_front();
    const HopKey key = std::max_element(ins_.begin(), ins_.end(), [](const auto& a, const auto& b) {
                         return a.second.prefix < b.second.prefix;
                       })->first;
    event(EventKind::kDropped, key.prev, "a lent sink slot not given back");
    send(key.prev, PushBack{key.id});
    remove_in(key, false);
    advertise(false);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Building flows (sink first: a relay reserves a path to a sink, then offers it to the previous stage)

std::optional<NodeId> FlowNode::best_next(NodeId exclude, double* cost) const {
  std::optional<NodeId> best;
  double best_cost = kInfCost;
  for (const auto& [pid, p] : peers_) {
    if (pid == exclude || !p.alive || !is_next(p) || !p.has_offer || p.offer.free == 0 || !std::isfinite(p.link))
      continue;
    const double c = p.link + p.offer.best_suffix;
    if (c < best_cost - kEps) {
      best_cost = c;
      best = pid;
    }
  }
  if (cost) *cost = best_cost;
  return best;
}

bool FlowNode::request_path(std::optional<HopKey> for_in, std::optional<HopId> replaces, NodeId exclude) {
  double cost = 0;
  auto w = best_next(exclude, &cost);
  if (!w) return false;
  auto& peer = peers_.at(*w);
  open_request(*w, peer.offer.best_suffix, for_in, replaces, 0, false);
  --peer.offer.free;  // until it tells us otherwise: do not send it more requests than it has paths
  return true;
}

void FlowNode::open_request(NodeId next, double expected, std::optional<HopKey> for_in,
                            std::optional<HopId> replaces, NodeId new_path_to, bool forwarding) {
  const HopId id = new_hop_id();
  OutHop o;
  o.next = next;
  o.link = peers_.at(next).link;
  o.suffix_after = expected;
  o.expected_suffix = expected;
  o.since = now_;
  o.attempts = 1;
  o.for_in = for_in;
  o.replaces = replaces;
  o.sink = new_path_to;
  o.new_path_to = new_path_to;
  o.forwarding = forwarding;
  outs_[id] = o;
  send(next, FlowRequest{id, prefix_of(for_in) + o.link, expected, new_path_to, source_of(for_in)});
}

double FlowNode::prefix_of(const std::optional<HopKey>& in) const {
  return in && ins_.count(*in) ? ins_.at(*in).prefix : 0.0;
}

NodeId FlowNode::source_of(const std::optional<HopKey>& in) const {
  if (is_holder()) return cfg_.id;
  return in && ins_.count(*in) ? ins_.at(*in).source : 0;
}

void FlowNode::build() {
  if (is_holder()) {
    // As a source: one flow per unit of capacity.
    while (outs_.size() < cfg_.capacity && request_path(std::nullopt, std::nullopt, 0)) {
    }
    return;
  }
  // Orphans first: each needs a new path, and already holds the capacity for it.
  std::set<HopKey> served;
  for (const auto& [id, o] : outs_)
    if (!o.established && o.for_in) served.insert(*o.for_in);
  for (const auto& [key, in] : ins_) {
    if (in.out || !in.accepted || served.count(key)) continue;
    if (!request_path(key, std::nullopt, 0)) break;
  }
  // Then reserve paths ahead of demand, a few at a time.
  if (now_ < backoff_until_) return;
  uint32_t pending = 0;
  for (const auto& [id, o] : outs_)
    if (!o.established && !o.for_in) ++pending;
  while (free_outs() + pending < cfg_.params.max_free_outs && used() < cfg_.capacity &&
         request_path(std::nullopt, std::nullopt, 0))
    ++pending;
}

void FlowNode::bind_orphans() {
  for (auto& [key, in] : ins_) {
    if (in.out || !in.accepted) continue;
    std::optional<HopId> best;
    for (const auto& [id, o] : outs_)
      if (o.established && !o.in && !o.locked && (!best || suffix(o) < suffix(outs_.at(*best)))) best = id;
    if (!best) return;
    // A request made for this orphan is no longer needed: withdraw it, or its path would exceed capacity.
    std::vector<HopId> withdrawn;
    for (const auto& [id, o] : outs_)
      if (!o.established && o.for_in && *o.for_in == key) withdrawn.push_back(id);
    for (HopId id : withdrawn) {
      send(outs_.at(id).next, Cancel{id});
      outs_.erase(id);
    }
    match(key, *best);
  }
}

// A matched flow whose onward path costs more than another moves onto it (a local augmenting step): onto a free
// path offered downstream, or onto a new path built through relays with room to the same sink, whose potential the
// next stage advertises (docs/flow.md). The old path is released once the new one is accepted.
void FlowNode::reroute() {
  if (!is_holder() && !has_room_or_reservation()) return;
  if (is_holder() && outs_.size() > cfg_.capacity) return;  // one at a time, beside the flow it replaces
  for (const auto& [id, o] : outs_) {
    if (!o.established || o.locked) continue;
    if (!is_holder() && !o.in) continue;
    if (being_replaced(id)) continue;
    const double now_cost = suffix(o), tolerance = 1e-6 * (1 + now_cost);
    double free_cost = kInfCost, new_cost = kInfCost;
    auto w = best_next(o.next, &free_cost);
    std::optional<NodeId> v;
    if (o.sink && cfg_.params.new_path_reroutes) v = potential_next(o.sink, o.next, &new_cost);
    const bool onto_free = w && free_cost < now_cost - tolerance && free_cost <= new_cost;
    const bool onto_new = v && new_cost < now_cost - tolerance && !onto_free;
    if (!onto_free && !onto_new) continue;
    if (!is_holder() && !make_room()) return;
    if (onto_free) request_path(o.in, id, o.next);
    else open_request(*v, new_cost - peers_.at(*v).link, o.in, id, o.sink, false);
    return;  // one per round: it needs spare capacity while in flight
  }
}

// Min-max pairing: matching the largest prefix with the smallest suffix minimizes the largest path through this
// node without changing any cost sum, so it is always taken (docs/flow.md).
void FlowNode::repair_pairing() {
  std::vector<HopKey> in_keys;
  std::vector<HopId> out_ids;
  for (const auto& [id, o] : outs_) {
    if (!o.in || !o.established || o.locked) continue;
    in_keys.push_back(*o.in);
    out_ids.push_back(id);
  }
  if (in_keys.size() < 2) return;
  auto longest = [&] {
    double m = 0;
    for (size_t k = 0; k < in_keys.size(); ++k)
      m = std::max(m, ins_.at(in_keys[k]).prefix + suffix(outs_.at(out_ids[k])));
    return m;
  };
  // Flows that end where they started; the min-max pairing never lowers their number, or the two rules would
  // undo each other round after round.
  auto homed = [&] {
    size_t n = 0;
    for (size_t k = 0; k < in_keys.size(); ++k) {
      const NodeId s = ins_.at(in_keys[k]).source;
      n += s != 0 && s == outs_.at(out_ids[k]).sink;
    }
    return n;
  };
  const bool homing = cfg_.params.home_slack > 0;
  if (homing) home_crossing_flows(in_keys, out_ids, longest());
  const double before = longest();
  const size_t homed_before = homed();
  std::sort(in_keys.begin(), in_keys.end(),
            [&](const HopKey& a, const HopKey& b) { return ins_.at(a).prefix < ins_.at(b).prefix; });
  std::sort(out_ids.begin(), out_ids.end(),
            [&](HopId a, HopId b) { return suffix(outs_.at(a)) > suffix(outs_.at(b)); });
  if (longest() >= before - 1e-6 * (1 + before) || (homing && homed() < homed_before)) return;
  for (size_t k = 0; k < in_keys.size(); ++k) {
    if (ins_.at(in_keys[k]).out == out_ids[k]) continue;
    ins_.at(in_keys[k]).out = out_ids[k];
    outs_.at(out_ids[k]).in = in_keys[k];
  }
  for (size_t k = 0; k < in_keys.size(); ++k) announce_costs(in_keys[k], out_ids[k]);
}

// Two flows through this node that each end at the other's source (holder 1's at holder 2 and the other way)
// exchange their onward paths: the sum of their costs is unchanged, each now ends where it started, and an
// ordinary reroute to its own sink can then shorten it (docs/flow.md, "A crossing-flow local optimum"). Only
// when neither new path is longer than home_slack times the node's longest path now: the exchange may lengthen a
// path for the moment, since the reroute it enables takes it back down.
void FlowNode::home_crossing_flows(const std::vector<HopKey>& ins, std::vector<HopId>& outs, double longest) {
  const double tolerance = 1e-6 * (1 + longest);
  for (size_t i = 0; i < ins.size(); ++i) {
    const NodeId si = ins_.at(ins[i]).source, ti = outs_.at(outs[i]).sink;
    if (si == 0 || ti == 0 || si == ti) continue;
    for (size_t j = i + 1; j < ins.size(); ++j) {
      const NodeId sj = ins_.at(ins[j]).source, tj = outs_.at(outs[j]).sink;
      if (sj != ti || tj != si) continue;
      const double a = ins_.at(ins[i]).prefix + suffix(outs_.at(outs[j]));
      const double b = ins_.at(ins[j]).prefix + suffix(outs_.at(outs[i]));
      if (std::max(a, b) > longest * cfg_.params.home_slack + tolerance) continue;
      std::swap(outs[i], outs[j]);
      match(ins[i], outs[i]);
      match(ins[j], outs[j]);
      break;
    }
  }
}

// ------------------------------------------------------------------------------------------------------------
// Message handlers: building

void FlowNode::on(NodeId from, const Offer& m) {
  auto& p = peers_.at(from);
  p.offer = m;
  p.has_offer = true;
}

void FlowNode::on(NodeId from, const FlowRequest& m) {
  if (!is_prev(from)) {
    send(from, FlowReject{m.hop, Reason::kWrongStage, current_offer()});
    return;
  }
  const HopKey key{from, m.hop};
  if (auto it = ins_.find(key); it != ins_.end()) {  // a retry whose answer was lost: answer again
    if (!it->second.accepted) return;                // (or not yet: the new path is still being built)
    const OutHop* o = it->second.out ? &outs_.at(*it->second.out) : nullptr;
    send(from, FlowAccept{m.hop, o ? suffix(*o) : 0.0, o ? o->sink : is_holder() ? cfg_.id : 0});
    return;
  }
  if (m.sink != 0) return on_new_path_request(from, m);
  if (is_holder()) return sink_request(from, m, cfg_.capacity);
  std::optional<HopId> best;
  for (const auto& [id, o] : outs_)
    if (o.established && !o.in && !o.locked && (!best || suffix(o) < suffix(outs_.at(*best)))) best = id;
  if (!best) {
    send(from, FlowReject{m.hop, Reason::kNoFreeOutflow, current_offer()});
    return;
  }
  const double s = suffix(outs_.at(*best));
  if (dearer_than_expected(s, m.expected_suffix)) {
    send(from, FlowReject{m.hop, Reason::kStaleCost, current_offer()});
    return;
  }
  ins_[key] = InHop{m.prefix, std::nullopt, now_, true, m.source};
  send(from, FlowAccept{m.hop, s, outs_.at(*best).sink});
  match(key, *best);
  advertise(false);
}

// An upstream reroutes a flow that ends at holder m.sink and asks me for a new path there: a holder lends a slot
// beyond its capacity (the flow's old path gives one back when it is released); a relay with room forwards the
// request along its cheapest potential and answers upstream when the downstream has.
void FlowNode::on_new_path_request(NodeId from, const FlowRequest& m) {
  const HopKey key{from, m.hop};
  if (is_holder()) return sink_request(from, m, cfg_.capacity + cfg_.params.sink_spare);
  double cost = 0;
  const auto next = potential_next(m.sink, 0, &cost);
  if (!next || !has_room_or_reservation()) {
    send(from, FlowReject{m.hop, Reason::kNoFreeOutflow, current_offer()});
    return;
  }
  if (dearer_than_expected(cost, m.expected_suffix)) {
    send(from, FlowReject{m.hop, Reason::kStaleCost, current_offer()});
    return;
  }
  make_room();
  InHop in{m.prefix, std::nullopt, now_, false, m.source};
  ins_[key] = in;
  open_request(*next, cost - peers_.at(*next).link, key, std::nullopt, m.sink, true);
}

// A holder as a sink takes a hop while it holds fewer than `limit` in-hops (a new path only if it ends here).
void FlowNode::sink_request(NodeId from, const FlowRequest& m, size_t limit) {
  if ((m.sink != 0 && m.sink != cfg_.id) || ins_.size() >= limit) {
    send(from, FlowReject{m.hop, Reason::kNoFreeOutflow, current_offer()});
    return;
  }
  if (ins_.size() >= cfg_.capacity) lent_.push_back(now_);
  ins_[HopKey{from, m.hop}] = InHop{m.prefix, std::nullopt, now_, true, m.source};
  send(from, FlowAccept{m.hop, 0.0, cfg_.id});
  advertise(false);
}

bool FlowNode::dearer_than_expected(double mine, double expected) const {
  return mine > expected + cfg_.params.stale_tolerance * (1 + std::fabs(expected)) + kEps;
}

void FlowNode::on(NodeId from, const FlowAccept& m) {
  auto it = outs_.find(m.hop);
  if (it == outs_.end() || it->second.next != from) {
    send(from, Cancel{m.hop, true});  // we gave up on it: release it (down to the sink, which may have lent a slot)
    event(EventKind::kDropped, from, "accept for a request we no longer have");
    return;
  }
  OutHop& o = it->second;
  o.suffix_after = m.suffix;
  o.sink = m.sink;
  if (o.established) return;
  o.established = true;
  o.since = now_;
  event(EventKind::kHopEstablished, from, "");
  if (o.forwarding) {  // the new path I was building for an upstream's request is there: answer it
    o.forwarding = false;
    auto in = o.for_in ? ins_.find(*o.for_in) : ins_.end();
    if (in == ins_.end() || in->second.accepted) {  // the upstream gave up meanwhile
      send(from, Cancel{m.hop, true});
      outs_.erase(it);
      advertise(false);
      return;
    }
    const HopKey key = in->first;
    in->second.accepted = true;
    in->second.since = now_;
    send(key.prev, FlowAccept{key.id, suffix(o), o.sink});
    match(key, m.hop);
    return;
  }
  if (o.replaces && outs_.count(*o.replaces) && o.new_path_to && outs_.at(*o.replaces).sink != o.new_path_to) {
    // The old path ends at another sink now (a swap downstream moved it): releasing it would not give back the
    // slot the new path's sink lent. Keep the old path; give up the new one.
    send(from, Cancel{m.hop, true});
    outs_.erase(it);
    event(EventKind::kDropped, from, "new path to a sink the flow no longer ends at");
    advertise(false);
    return;
  }
  if (is_holder()) {
    send(from, PrefixUpdate{m.hop, o.link, cfg_.id});
    if (o.replaces && outs_.count(*o.replaces)) {
      send(outs_.at(*o.replaces).next, Cancel{*o.replaces, true});
      outs_.erase(*o.replaces);
    } else if (o.replaces && outs_.size() > cfg_.capacity) {  // a move took the old flow away meanwhile
      send(from, Cancel{m.hop, true});
      outs_.erase(it);
      return;
    }
    o.replaces.reset();
    return;
  }
  // A reroute: move the flow from the old out-hop to this one, and release the old one.
  if (o.replaces) {
    auto old = outs_.find(*o.replaces);
    o.replaces.reset();
    if (old != outs_.end() && old->second.in && !old->second.locked) {
      const HopKey in = *old->second.in;
      const NodeId old_next = old->second.next;
      send(old_next, Cancel{old->first, true});
      outs_.erase(old);
      ins_.at(in).out.reset();
      match(in, m.hop);
      return;
    }
  }
  if (o.for_in && ins_.count(*o.for_in) && !ins_.at(*o.for_in).out) {
    match(*o.for_in, m.hop);
    return;
  }
  if (o.new_path_to) {  // the flow it was built for went elsewhere meanwhile: the sink gets its lent slot back
    send(from, Cancel{m.hop, true});
    outs_.erase(it);
    return;
  }
  for (auto& [key, in] : ins_) {
    if (!in.out && in.accepted) {
      match(key, m.hop);
      return;
    }
  }
  advertise(false);
}

void FlowNode::on(NodeId from, const FlowReject& m) {
  auto& p = peers_.at(from);
  p.offer = m.offer;
  p.has_offer = true;
  auto it = outs_.find(m.hop);
  if (it != outs_.end() && it->second.next == from && !it->second.established) {
    if (it->second.forwarding) return remove_out(m.hop);  // and refuse upstream
    outs_.erase(it);
    build();
  }
}

void FlowNode::on(NodeId from, const Cancel& m) {
  const HopKey key{from, m.hop};
  auto it = ins_.find(key);
  if (it == ins_.end()) return;
  if (m.release && it->second.out) {  // not a reserved path for others: release it down to the sink
    const HopId out = *it->second.out;
    it->second.out.reset();
    outs_.at(out).in.reset();
    send(outs_.at(out).next, Cancel{out, true});
    remove_out(out);
  }
  remove_in(key, true);
  advertise(false);
}

void FlowNode::on(NodeId from, const PushBack& m) {
  auto it = outs_.find(m.hop);
  if (it == outs_.end() || it->second.next != from) return;
  remove_out(m.hop);
  build();
  advertise(false);
}

void FlowNode::on(NodeId from, const SuffixUpdate& m) {
  auto it = outs_.find(m.hop);
  if (it == outs_.end() || it->second.next != from) return;
  OutHop& o = it->second;
  if (!differs(o.suffix_after, m.suffix) && o.sink == m.sink) return;
  o.suffix_after = m.suffix;
  o.sink = m.sink;
  if (o.in) send(o.in->prev, SuffixUpdate{o.in->id, suffix(o), o.sink});
  else advertise(false);
}

void FlowNode::on(NodeId from, const PrefixUpdate& m) {
  auto it = ins_.find(HopKey{from, m.hop});
  if (it == ins_.end()) return;
  if (!differs(it->second.prefix, m.prefix) && it->second.source == m.source) return;
  it->second.prefix = m.prefix;
  it->second.source = m.source;
  if (it->second.out) {
    const OutHop& o = outs_.at(*it->second.out);
    send(o.next, PrefixUpdate{*it->second.out, m.prefix + o.link, m.source});
  }
}

// ------------------------------------------------------------------------------------------------------------
// Anti-entropy

void FlowNode::on(NodeId from, const CheckFlows& m) {
  const std::set<HopId> listed(m.hops.begin(), m.hops.end());
  std::vector<HopKey> stale;
  for (const auto& [key, in] : ins_)  // (an in-hop still waiting for its new path is not established upstream)
    if (key.prev == from && in.accepted && !listed.count(key.id) &&
        now_ - in.since >= cfg_.params.grace * cfg_.params.period)
      stale.push_back(key);
  for (const auto& key : stale) {
    event(EventKind::kHopLost, from, "anti-entropy: upstream no longer has the hop");
    remove_in(key, true);
  }
  CheckReply reply;
  for (HopId id : listed)
    if (!ins_.count(HopKey{from, id})) reply.unknown.push_back(id);
  if (!reply.unknown.empty()) send(from, std::move(reply));
  if (!stale.empty()) advertise(false);
}

void FlowNode::on(NodeId from, const CheckReply& m) {
  bool changed = false;
  for (HopId id : m.unknown) {
    auto it = outs_.find(id);
    if (it == outs_.end() || it->second.next != from || !it->second.established || it->second.locked) continue;
    if (now_ - it->second.since < cfg_.params.grace * cfg_.params.period) continue;
    event(EventKind::kHopLost, from, "anti-entropy: downstream does not know the hop");
    remove_out(id);
    changed = true;
  }
  if (changed) build();
}

// ------------------------------------------------------------------------------------------------------------
// Annealing among same-stage peers

double FlowNode::move_score(double c1, double c2, double c1n, double c2n) const {
  return (c1 + c2) - (c1n + c2n) + cfg_.params.max_weight * (std::max(c1, c2) - std::max(c1n, c2n));
}

// Improving moves always pass; a worsening one with probability exp(score / T) (Metropolis); a neutral one never
// (it would cost messages and change nothing).
bool FlowNode::metropolis(double score) {
  const double threshold = 1e-6 * (1 + mean_link());
  if (score > threshold) return true;
  if (score > -threshold || temperature_ <= 0) return false;
  return rng_.uniform() < std::exp(score / temperature_);
}

void FlowNode::on(NodeId from, const Snapshot& m) {
  if (peers_.at(from).stage == cfg_.stage) peers_.at(from).snapshot = m;
}

// Scores every swap and takeover with the same-stage peers' snapshots, picks the best, and proposes it under
// the Metropolis rule. A move's score is the drop in the affected paths' total cost plus `max_weight` times the
// drop in the larger affected path: it lowers total cost and, among equal totals, the slowest flow (docs/flow.md).
void FlowNode::try_move() {
  if (frozen_) return;
  for (const auto& [id, o] : outs_)
    if (o.replaces) return;  // a reroute of mine is on its way: its flow is not to be moved meanwhile
  struct Candidate {
    double score = -kInfCost;
    NodeId partner = 0;
    bool takeover = false;
    HopId mine = 0;
    PairInfo theirs;
    double my_link_a = 0, my_link_b = 0;  // takeover: to X and Y; swap: link to B in my_link_b
  } best;
  const bool room = is_holder() ? outs_.size() < cfg_.capacity : has_room_or_reservation();
  for (const auto& [pid, p] : peers_) {
    if (!p.alive || p.stage != cfg_.stage || !p.snapshot || round_ < p.ignore_until) continue;
    std::map<NodeId, double> their_link;
    for (const auto& e : p.snapshot->links) their_link[e.peer] = e.cost;
    for (const auto& q : p.snapshot->pairs) {
      const double c2 = q.prefix + q.link_next + q.suffix_after_next;
      // Swap next hops with each of my flows.
      const double my_to_b = link_to(q.next);
      for (const auto& [id, o] : outs_) {
        if ((!o.in && !is_holder()) || !o.established || o.locked || o.next == q.next || !std::isfinite(my_to_b))
          continue;
        auto ta = their_link.find(o.next);
        if (ta == their_link.end()) continue;
        const double p1 = o.in ? ins_.at(*o.in).prefix : 0.0;
        const double c1 = p1 + suffix(o);
        const double c1n = p1 + my_to_b + q.suffix_after_next;
        const double c2n = q.prefix + ta->second + o.suffix_after;
        const double score = move_score(c1, c2, c1n, c2n);
        if (score > best.score) best = Candidate{score, pid, false, id, q, 0, my_to_b};
      }
      // Take the flow over. A holder's source flow has no upstream (prev 0): only its first edge changes.
      if (room) {
        const double to_y = link_to(q.next);
        if (!std::isfinite(to_y)) continue;
        double cn = to_y + q.suffix_after_next, to_x = 0;
        if (!is_holder()) {
          to_x = link_to(q.prev);
          auto tx = their_link.find(q.prev);
          if (!std::isfinite(to_x) || tx == their_link.end()) continue;
          cn += q.prefix - tx->second + to_x;
        }
        const double score = move_score(c2, 0, cn, 0);
        if (score > best.score) best = Candidate{score, pid, true, 0, q, to_x, to_y};
      }
    }
  }
  if (try_cycle(best.score)) return;
  if (!std::isfinite(best.score) || !metropolis(best.score)) return;

  if (!best.takeover) {
    propose_swap(best.mine, best.partner, best.theirs.out, best.theirs.next, false, {});
    return;
  }
  if (!is_holder() && !make_room()) return;
  PendingMove pm;
  pm.partner = best.partner;
  pm.new_id = new_hop_id();
  pm.deadline = now_ + cfg_.params.proposal_timeout * cfg_.params.period;
  pm.takeover = true;
  send(best.partner, ProposeTakeover{best.theirs.out, pm.new_id, best.my_link_a, best.my_link_b, best.theirs.prev,
                                     best.theirs.next});
  pending_move_ = pm;
}

void FlowNode::propose_swap(HopId mine, NodeId partner, HopId theirs, NodeId their_next, bool cycle,
                            std::vector<PendingMove::Step> rest) {
  OutHop& o = outs_.at(mine);
  o.locked = true;
  PendingMove pm;
  pm.partner = partner;
  pm.new_id = new_hop_id();
  pm.deadline = now_ + cfg_.params.proposal_timeout * cfg_.params.period;
  pm.mine = mine;
  pm.their_next = their_next;
  pm.rest = std::move(rest);
  send(partner, ProposeSwap{mine, theirs, pm.new_id, o.next, o.in ? ins_.at(*o.in).prefix : 0.0, o.link,
                            link_to(their_next), o.suffix_after, cycle, their_next, o.sink, source_of(o.in)});
  pending_move_ = std::move(pm);
}

// Negative-cycle canceling within my gap (docs/flow.md). With every node's load fixed, the cost of the edges
// between my stage and the next is a transportation problem, optimal exactly when no alternating cycle
// "u adds an edge to w, the current holder of a flow on w gives it up, adds another edge, ..." has negative cost.
// Swaps are the cycles of two; this finds the most negative cycle through me with Bellman-Ford over my
// same-stage peers' snapshots, and runs it as a chain of swaps that all involve me: each partner gets its final
// next hop in one step, so it accepts without a gain of its own.
bool FlowNode::try_cycle(double best_other_score) {
  struct Flow {
    HopId out;
    NodeId next;
  };
  struct Member {
    NodeId id;
    std::vector<Flow> flows;
    const std::vector<LinkCostEntry>* links;  // mine, or as its last snapshot listed them
  };
  std::vector<LinkCostEntry> my_links;
  std::vector<Member> members;
  {
    Member me{cfg_.id, {}, &my_links};
    for (const auto& [id, o] : outs_)
      if (o.established && !o.locked && (o.in || is_holder())) me.flows.push_back({id, o.next});
    if (me.flows.empty()) return false;
    for (const auto& [pid, p] : peers_)
      if (p.alive && is_next(p) && std::isfinite(p.link)) my_links.push_back({pid, p.link});
    members.push_back(std::move(me));
  }
  for (const auto& [pid, p] : peers_) {
    if (!p.alive || p.stage != cfg_.stage || !p.snapshot || round_ < p.ignore_until) continue;
    Member m{pid, {}, &p.snapshot->links};
    for (const auto& q : p.snapshot->pairs) m.flows.push_back({q.out, q.next});
    if (!m.flows.empty()) members.push_back(std::move(m));
  }
  const size_t n = members.size();
  if (n < 3) return false;  // cycles of two are swaps
  // Link costs as a table, member x by next hop (indexed): the searches below read it O(n^2 x flows) times.
  // Filled straight from the link lists (no per-member map: this search was the flow layer's largest CPU item).
  std::map<NodeId, size_t> next_index;
  for (const auto& m : members)
    for (const auto& f : m.flows) next_index.emplace(f.next, next_index.size());
  const size_t nw = next_index.size();
  std::vector<double> table(n * nw, kInfCost);
  for (size_t x = 0; x < n; ++x)
    for (const auto& e : *members[x].links)
      if (auto it = next_index.find(e.peer); it != next_index.end()) table[x * nw + it->second] = e.cost;
  std::vector<std::vector<size_t>> flow_next(n);  // members[y].flows[f].next, as its index
  for (size_t y = 0; y < n; ++y)
    for (const auto& f : members[y].flows) flow_next[y].push_back(next_index.at(f.next));
  auto cost = [&](size_t x, size_t w) { return table[x * nw + w]; };
  // dist[y]: cheapest cost of a path from me that ends with member y giving up one of its flows (Bellman-Ford;
  // it does not depend on which of my flows closes the cycle, so it is computed once).
  std::vector<double> dist(n, kInfCost);
  std::vector<std::pair<size_t, size_t>> pred(n, {SIZE_MAX, SIZE_MAX});  // (previous member, flow of y)
  for (size_t round = 0; round + 1 < n; ++round) {
    bool changed = false;
    for (size_t x = 0; x < n; ++x) {
      const double dx = x == 0 ? 0.0 : dist[x];
      if (!std::isfinite(dx) || (x == 0 && round > 0)) continue;
      for (size_t y = 1; y < n; ++y) {
        if (y == x) continue;
        for (size_t f = 0; f < flow_next[y].size(); ++f) {
          const size_t w = flow_next[y][f];
          const double d = dx + cost(x, w) - cost(y, w);
          if (d < dist[y] - 1e-9) {
            dist[y] = d;
            pred[y] = {x, f};
            changed = true;
          }
        }
      }
    }
    if (!changed) break;
  }
  struct Best {
    double gain = 0;
    size_t my_flow = 0;
    std::vector<std::pair<size_t, size_t>> path;  // (member, flow) given up, in cycle order
  } best;
  for (size_t f1 = 0; f1 < members[0].flows.size(); ++f1) {
    const size_t w1 = flow_next[0][f1];
    for (size_t z = 1; z < n; ++z) {
      const double total = dist[z] + cost(z, w1) - cost(0, w1);
      if (!std::isfinite(total) || -total <= best.gain) continue;
      // Walk back to me; give up on paths that revisit a member (Bellman-Ford's paths need not be simple).
      std::vector<std::pair<size_t, size_t>> path;
      std::vector<bool> seen(n, false);
      size_t y = z;
      bool simple = true;
      while (y != 0 && simple) {
        if (seen[y] || path.size() > n) simple = false;
        seen[y] = true;
        path.push_back({y, pred[y].second});
        y = pred[y].first;
      }
      if (!simple || path.size() < 2) continue;
      // Run as swaps through me, my flow passes every w of the cycle: I need a link to each.
      bool linked = true;
      for (const auto& [member, flow] : path) linked = linked && std::isfinite(cost(0, flow_next[member][flow]));
      if (!linked) continue;
      std::reverse(path.begin(), path.end());
      best = Best{-total, f1, path};
    }
  }
  if (best.path.empty() || best.gain <= 1e-6 * (1 + mean_link()) || best.gain <= best_other_score) return false;
  // Cycle me -> w(u_a) ... -> w1: run it as swaps with the members in reverse order (see the comment above).
  std::vector<PendingMove::Step> steps;
  for (auto it = best.path.rbegin(); it != best.path.rend(); ++it) {
    const auto& m = members[it->first];
    const auto& f = m.flows[it->second];
    steps.push_back({m.id, f.out, f.next});
  }
  const auto first = steps.front();
  steps.erase(steps.begin());
  propose_swap(members[0].flows[best.my_flow].out, first.partner, first.theirs, first.their_next, true,
               std::move(steps));
  return true;
}

// Why a same-stage proposal about my out-hop `theirs` cannot be taken, if it cannot.
std::optional<Reason> FlowNode::proposal_refusal(NodeId from, HopId theirs) const {
  if (peers_.at(from).stage != cfg_.stage) return Reason::kWrongStage;
  if (pending_move_) return Reason::kBusy;
  auto it = outs_.find(theirs);
  if (it == outs_.end() || !it->second.established || (!it->second.in && !is_holder())) return Reason::kUnknownHop;
  if (it->second.locked) return Reason::kBusy;
  if (being_replaced(theirs)) return Reason::kBusy;  // it goes away once the new path is accepted
  return std::nullopt;
}

void FlowNode::on(NodeId from, const ProposeSwap& m) {
  SwapReply r;
  r.mine = m.mine;
  r.theirs = m.theirs;
  auto refuse = [&](Reason why) {
    r.reason = why;
    send(from, r);
  };
  if (auto why = proposal_refusal(from, m.theirs)) return refuse(*why);
  auto it = outs_.find(m.theirs);
  OutHop o2 = it->second;
  const double link_a = link_to(m.my_next);
  if (o2.next != m.expected_their_next || o2.next == m.my_next || !std::isfinite(link_a))
    return refuse(Reason::kStaleCost);
  // Re-score with my current numbers: the proposer saw a snapshot that may be a round old.
  const double p2 = o2.in ? ins_.at(*o2.in).prefix : 0.0;
  const double score = move_score(m.my_prefix + m.my_link_to_my_next + m.my_suffix_after_next, p2 + suffix(o2),
                                   m.my_prefix + m.my_link_to_their_next + o2.suffix_after,
                                   p2 + link_a + m.my_suffix_after_next);
  if (!m.cycle && !metropolis(score)) return refuse(Reason::kStaleCost);

  const std::optional<HopKey> i2 = o2.in;
  const NodeId b = o2.next;
  const HopId p = new_hop_id();
  outs_.erase(it);
  OutHop n;
  n.next = m.my_next;
  n.link = link_a;
  n.suffix_after = m.my_suffix_after_next;
  n.sink = m.my_sink;
  n.in = i2;
  n.established = true;
  n.since = now_;
  outs_[p] = n;
  if (i2) {
    ins_.at(*i2).out = p;
    send(i2->prev, SuffixUpdate{i2->id, suffix(n), n.sink});
  }
  send(b, Switch{m.theirs, from, m.new_id, m.my_prefix + m.my_link_to_their_next, m.my_source});
  r.accept = true;
  r.new_id = p;
  r.their_prefix = p2;
  r.their_suffix_after = o2.suffix_after;
  r.their_link_to_my_next = link_a;
  r.their_sink = o2.sink;
  r.their_source = source_of(i2);
  send(from, r);
  temperature_ *= cfg_.params.cooling_per_move;
  event(EventKind::kMoveAccepted, from, "swap (partner)");
}

void FlowNode::on(NodeId from, const SwapReply& m) {
  const bool mine = pending_move_ && pending_move_->partner == from && !pending_move_->takeover &&
                    pending_move_->mine == m.mine;
  if (!mine) {
    event(EventKind::kDropped, from, "late swap reply");
    return;
  }
  const PendingMove pm = *pending_move_;
  pending_move_.reset();
  auto it = outs_.find(m.mine);
  if (it != outs_.end()) it->second.locked = false;
  if (!m.accept) {
    peers_.at(from).ignore_until = round_ + cfg_.params.ignore_rounds;
    event(EventKind::kMoveRejected, from, std::string("swap: ") + reason_name(m.reason));
    return;
  }
  // Lost meanwhile, or the new next hop died: anti-entropy cleans up both sides.
  if (it == outs_.end() || (!it->second.in && !is_holder()) || !std::isfinite(link_to(pm.their_next))) return;
  const std::optional<HopKey> i1 = it->second.in;
  const NodeId a = it->second.next;
  outs_.erase(it);
  OutHop n;
  n.next = pm.their_next;
  n.link = link_to(pm.their_next);
  n.suffix_after = m.their_suffix_after;
  n.sink = m.their_sink;
  n.in = i1;
  n.established = true;
  n.since = now_;
  outs_[pm.new_id] = n;
  if (i1) {
    ins_.at(*i1).out = pm.new_id;
    send(i1->prev, SuffixUpdate{i1->id, suffix(n), n.sink});
  }
  send(a, Switch{m.mine, from, m.new_id, m.their_prefix + m.their_link_to_my_next, m.their_source});
  temperature_ *= cfg_.params.cooling_per_move;
  event(EventKind::kMoveAccepted, from, "swap");
  if (!pm.rest.empty()) {  // the next swap of a cycle, with my flow's new out-hop
    auto rest = pm.rest;
    const auto next = rest.front();
    rest.erase(rest.begin());
    if (std::isfinite(link_to(next.their_next)) && next.their_next != outs_.at(pm.new_id).next) {
      propose_swap(pm.new_id, next.partner, next.theirs, next.their_next, true, std::move(rest));
      return;
    }
  }
  try_move();  // improvements often come in runs: look for the next one now rather than next round
}

void FlowNode::on(NodeId from, const ProposeTakeover& m) {
  TakeoverReply r;
  r.theirs = m.theirs;
  r.new_id = m.new_id;
  auto refuse = [&](Reason why) {
    r.reason = why;
    send(from, r);
  };
  if (auto why = proposal_refusal(from, m.theirs)) return refuse(*why);
  auto it = outs_.find(m.theirs);
  const OutHop o = it->second;
  const std::optional<HopKey> in = o.in;  // none: a holder's source flow
  if (o.next != m.expected_next || (in ? in->prev : 0) != m.expected_prev) return refuse(Reason::kStaleCost);
  const double link_x = in ? link_to(in->prev) : 0.0;
  if (!std::isfinite(link_x)) return refuse(Reason::kStaleCost);
  const double prefix_here = in ? ins_.at(*in).prefix : 0.0;
  // The previous node's prefix, as far as this node knows it: its link cost to that node is its own measurement
  // and may have moved since the prefix was announced — never below zero (a peer refuses negative costs).
  const double prefix_at_x = std::max(0.0, prefix_here - link_x);
  const double score = move_score(prefix_here + suffix(o), 0,
                                  prefix_at_x + m.my_link_prev + m.my_link_next + o.suffix_after, 0);
  if (!metropolis(score)) return refuse(Reason::kStaleCost);
  const NodeId source = source_of(in);
  outs_.erase(it);
  if (in) {
    ins_.erase(*in);
    send(in->prev, Redirect{in->id, from});
  }
  send(o.next, Switch{m.theirs, from, m.new_id, prefix_at_x + m.my_link_prev + m.my_link_next, source});
  r.accept = true;
  r.prev = in ? in->prev : 0;
  r.prev_hop = in ? in->id : 0;
  r.prefix_at_prev = prefix_at_x;
  r.next = o.next;
  r.suffix_after_next = o.suffix_after;
  r.sink = o.sink;
  r.source = source;
  send(from, r);
  temperature_ *= cfg_.params.cooling_per_move;
  event(EventKind::kMoveAccepted, from, "takeover (partner)");
  advertise(false);
}

void FlowNode::on(NodeId from, const TakeoverReply& m) {
  const bool mine = pending_move_ && pending_move_->partner == from && pending_move_->takeover &&
                    pending_move_->new_id == m.new_id;
  if (mine) pending_move_.reset();
  if (!m.accept) {
    if (mine) {
      peers_.at(from).ignore_until = round_ + cfg_.params.ignore_rounds;
      event(EventKind::kMoveRejected, from, std::string("takeover: ") + reason_name(m.reason));
    }
    return;
  }
  // Late or not, the partner has handed the flow over: install it if we still can; if not, both neighbours
  // learn through anti-entropy that we do not have it.
  const bool source = is_holder();  // a holder takes over a source flow: no in-hop
  const bool room = source ? outs_.size() < cfg_.capacity : make_room();
  if (!room || (!source && (!std::isfinite(link_to(m.prev)) || dead_.count(m.prev))) ||
      !std::isfinite(link_to(m.next)) || dead_.count(m.next)) {
    event(EventKind::kDropped, from, "takeover accepted but cannot be installed");
    return;
  }
  OutHop n;
  n.next = m.next;
  n.link = link_to(m.next);
  n.suffix_after = m.suffix_after_next;
  n.sink = m.sink;
  n.established = true;
  n.since = now_;
  outs_[m.new_id] = n;
  if (source) {
    send(m.next, PrefixUpdate{m.new_id, n.link, cfg_.id});
  } else {
    const HopKey in{m.prev, m.prev_hop};
    ins_[in] = InHop{m.prefix_at_prev + link_to(m.prev), std::nullopt, now_, true, m.source};
    match(in, m.new_id);
  }
  temperature_ *= cfg_.params.cooling_per_move;
  event(EventKind::kMoveAccepted, from, "takeover");
  if (!pending_move_) try_move();
}

void FlowNode::on(NodeId from, const Switch& m) {
  auto it = ins_.find(HopKey{from, m.old_id});
  if (it == ins_.end()) {
    event(EventKind::kDropped, from, "switch for an unknown hop");
    return;
  }
  InHop in = it->second;
  ins_.erase(it);
  in.prefix = m.prefix;
  in.source = m.source;
  in.since = now_;
  const HopKey key{m.new_prev, m.new_id};
  ins_[key] = in;
  for (auto& [id, o] : outs_)  // requests made for this in-hop follow it to its new name
    if (o.for_in && *o.for_in == HopKey{from, m.old_id}) o.for_in = key;
  if (in.out) {
    outs_.at(*in.out).in = key;
    const OutHop& o = outs_.at(*in.out);
    send(o.next, PrefixUpdate{*in.out, in.prefix + o.link, in.source});
  }
}

void FlowNode::on(NodeId from, const Redirect& m) {
  auto it = outs_.find(m.hop);
  if (it == outs_.end() || it->second.next != from) return;
  OutHop& o = it->second;
  const double link = link_to(m.new_next);
  if (!std::isfinite(link) || dead_.count(m.new_next)) {
    send(m.new_next, Cancel{m.hop});
    remove_out(m.hop);
    build();
    return;
  }
  o.next = m.new_next;
  o.link = link;
  o.since = now_;
  if (o.in) send(o.in->prev, SuffixUpdate{o.in->id, suffix(o), o.sink});
}

// ------------------------------------------------------------------------------------------------------------
// State changes

void FlowNode::remove_out(HopId id) {
  auto it = outs_.find(id);
  if (it == outs_.end()) return;
  if (it->second.forwarding && it->second.for_in) {  // the upstream's new-path request fails with it
    auto in = ins_.find(*it->second.for_in);
    if (in != ins_.end() && !in->second.accepted) {
      send(in->first.prev, FlowReject{in->first.id, Reason::kNoFreeOutflow, current_offer()});
      ins_.erase(in);
    }
  }
  if (it->second.in) {
    auto in = ins_.find(*it->second.in);
    if (in != ins_.end()) {
      in->second.out.reset();
      in->second.since = now_;  // orphaned now
    }
  }
  if (pending_move_ && pending_move_->mine == id) pending_move_.reset();
  event(EventKind::kHopLost, it->second.next, "out-hop removed");
  outs_.erase(it);
}

void FlowNode::remove_in(const HopKey& key, bool free_out) {
  auto it = ins_.find(key);
  if (it == ins_.end()) return;
  if (!it->second.accepted) {  // a new path still being built for it: nobody wants it any more
    std::vector<HopId> forwards;
    for (const auto& [id, o] : outs_)
      if (o.forwarding && o.for_in && *o.for_in == key) forwards.push_back(id);
    for (HopId id : forwards) {
      send(outs_.at(id).next, Cancel{id, true});
      outs_.erase(id);
    }
  }
  if (it->second.out) {
    auto o = outs_.find(*it->second.out);
    if (o != outs_.end()) {
      o->second.in.reset();
      o->second.since = now_;  // a free reserved path from now on
      if (!free_out) {
        send(o->second.next, Cancel{o->first});
        outs_.erase(o);
      }
    }
  }
  event(EventKind::kHopLost, key.prev, "in-hop removed");
  ins_.erase(it);
}

void FlowNode::match(const HopKey& in, HopId out) {
  ins_.at(in).out = out;
  outs_.at(out).in = in;
  announce_costs(in, out);
}

void FlowNode::announce_costs(const HopKey& in, HopId out) {
  OutHop& o = outs_.at(out);
  send(in.prev, SuffixUpdate{in.id, suffix(o), o.sink});
  const double prefix = ins_.at(in).prefix + o.link;
  const NodeId source = ins_.at(in).source;
  if (differs(prefix, o.prefix_sent) || source != o.source_sent) {
    o.prefix_sent = prefix;
    o.source_sent = source;
    send(o.next, PrefixUpdate{out, prefix, source});
  }
}

void FlowNode::send(NodeId to, FlowBody body) { out_->messages.push_back(Outgoing{to, std::move(body)}); }

void FlowNode::advertise(bool force) {
  const Offer o = current_offer();
  bool changed = o.free != last_offer_.free || differs(o.best_suffix, last_offer_.best_suffix) ||
                 o.potentials.size() != last_offer_.potentials.size();
  for (size_t k = 0; !changed && k < o.potentials.size(); ++k)
    changed = o.potentials[k].holder != last_offer_.potentials[k].holder ||
              differs(o.potentials[k].cost, last_offer_.potentials[k].cost);
  if (!force && !changed) return;
  last_offer_ = o;
  last_advert_round_ = round_;
  for (const auto& [pid, p] : peers_)
    if (p.alive && is_prev(p)) send(pid, o);
}

void FlowNode::event(EventKind kind, NodeId peer, std::string detail) {
  if (out_) out_->events.push_back(FlowEvent{kind, peer, std::move(detail)});
}

// ------------------------------------------------------------------------------------------------------------
// Derived values and views

Offer FlowNode::current_offer() const {
  Offer o;
  o.capacity = cfg_.capacity;
  o.used = used();
  o.potentials = potentials();
  if (is_holder()) {
    o.free = cfg_.capacity > ins_.size() ? static_cast<uint32_t>(cfg_.capacity - ins_.size()) : 0;
    o.best_suffix = o.free > 0 ? 0.0 : kInfCost;
    return o;
  }
  for (const auto& [id, out] : outs_) {
    if (!out.established || out.in || out.locked) continue;
    ++o.free;
    o.best_suffix = std::min(o.best_suffix, suffix(out));
  }
  return o;
}

bool FlowNode::being_replaced(HopId id) const {
  for (const auto& [other, o] : outs_)
    if (o.replaces && *o.replaces == id) return true;
  return false;
}

std::vector<Potential> FlowNode::potentials() const {
  if (!cfg_.params.new_path_reroutes) return {};
  if (is_holder()) {
    if (ins_.size() >= cfg_.capacity + cfg_.params.sink_spare) return {};
    return {Potential{cfg_.id, 0.0}};
  }
  if (!has_room_or_reservation()) return {};
  std::map<NodeId, double> best;
  for (const auto& [pid, p] : peers_) {
    if (!p.alive || !p.has_offer || !is_next(p) || !std::isfinite(p.link)) continue;
    for (const auto& q : p.offer.potentials) {
      auto [it, fresh] = best.emplace(q.holder, p.link + q.cost);
      if (!fresh) it->second = std::min(it->second, p.link + q.cost);
    }
  }
  std::vector<Potential> v;
  for (const auto& [h, c] : best) v.push_back(Potential{h, c});
  return v;
}

std::optional<NodeId> FlowNode::potential_next(NodeId holder, NodeId exclude, double* cost) const {
  std::optional<NodeId> best;
  double best_cost = kInfCost;
  for (const auto& [pid, p] : peers_) {
    if (pid == exclude || !p.alive || !p.has_offer || !is_next(p) || !std::isfinite(p.link)) continue;
    for (const auto& q : p.offer.potentials)
      if (q.holder == holder && p.link + q.cost < best_cost - kEps) {
        best_cost = p.link + q.cost;
        best = pid;
      }
  }
  if (cost) *cost = best_cost;
  return best;
}

uint32_t FlowNode::used() const {
  if (is_holder()) return static_cast<uint32_t>(outs_.size());
  // Every out-hop holds a slot, and so does an orphan, unless a request for its new out-hop (which holds it
  // already) is on its way.
  uint32_t n = static_cast<uint32_t>(outs_.size());
  for (const auto& [key, in] : ins_) {
    if (in.out) continue;
    bool covered = false;
    for (const auto& [id, o] : outs_) covered = covered || (!o.established && o.for_in && *o.for_in == key);
    n += covered ? 0 : 1;
  }
  if (pending_move_ && pending_move_->takeover) ++n;
  return n;
}

uint32_t FlowNode::free_outs() const {
  if (is_holder()) return cfg_.capacity > ins_.size() ? static_cast<uint32_t>(cfg_.capacity - ins_.size()) : 0;
  uint32_t n = 0;
  for (const auto& [id, out] : outs_) n += out.established && !out.in && !out.locked ? 1 : 0;
  return n;
}

bool FlowNode::has_room_or_reservation() const { return used() < cfg_.capacity || free_outs() > 0; }

bool FlowNode::make_room() {
  if (used() < cfg_.capacity) return true;
  std::optional<HopId> worst;
  for (const auto& [id, o] : outs_)
    if (o.established && !o.in && !o.locked && (!worst || suffix(o) > suffix(outs_.at(*worst)))) worst = id;
  if (!worst) return false;
  send(outs_.at(*worst).next, Cancel{*worst});
  remove_out(*worst);
  advertise(false);
  return true;
}

bool FlowNode::is_prev(NodeId peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && is_prev(it->second);
}

bool FlowNode::is_next(NodeId peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && is_next(it->second);
}

bool FlowNode::is_prev(const Peer& p) const { return p.stage == prev_stage(cfg_.stage, cfg_.relay_stages); }

bool FlowNode::is_next(const Peer& p) const { return p.stage == next_stage(cfg_.stage, cfg_.relay_stages); }

double FlowNode::link_to(NodeId peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() || !it->second.alive ? kInfCost : it->second.link;
}

double FlowNode::mean_link() const {
  double sum = 0;
  int n = 0;
  for (const auto& [pid, p] : peers_)
    if (std::isfinite(p.link)) {
      sum += p.link;
      ++n;
    }
  return n ? sum / n : 1.0;
}

std::vector<NodeId> cheapest_first(const std::map<NodeId, std::pair<double, int>>& flows) {
  std::vector<std::tuple<double, NodeId, int>> order;
  for (const auto& [next, e] : flows) order.emplace_back(e.first, next, e.second);
  std::sort(order.begin(), order.end());
  std::vector<NodeId> hops;
  for (const auto& [cost, next, count] : order) hops.insert(hops.end(), static_cast<size_t>(count), next);
  return hops;
}

std::vector<NodeId> FlowNode::next_hops() const {
  std::map<NodeId, std::pair<double, int>> by_next;  // cheapest cost to the sink through it, flows
  for (const auto& [id, o] : outs_)
    if (o.established) {
      auto& e = by_next.try_emplace(o.next, kInfCost, 0).first->second;
      e.first = std::min(e.first, suffix(o));
      ++e.second;
    }
  return cheapest_first(by_next);
}

std::vector<Route> FlowNode::routes() const {
  std::vector<Route> r;
  for (const auto& [key, in] : ins_)
    if (in.out) r.push_back(Route{key, outs_.at(*in.out).next, *in.out});
  return r;
}

std::vector<FlowNode::OutHopView> FlowNode::out_hops() const {
  std::vector<OutHopView> v;
  for (const auto& [id, o] : outs_) v.push_back(OutHopView{id, o.next, o.established, o.in});
  return v;
}

std::optional<FlowNode::OutHopView> FlowNode::out_hop(HopId id) const {
  auto it = outs_.find(id);
  if (it == outs_.end()) return std::nullopt;
  return OutHopView{id, it->second.next, it->second.established, it->second.in};
}

std::vector<HopKey> FlowNode::in_hops() const {
  std::vector<HopKey> v;
  for (const auto& [key, in] : ins_) v.push_back(key);
  return v;
}

std::optional<HopId> FlowNode::out_for(const HopKey& in) const {
  auto it = ins_.find(in);
  if (it == ins_.end()) return std::nullopt;
  return it->second.out;
}

std::string FlowNode::check_invariants() const {
  std::ostringstream err;
  if (is_holder()) {
    // A reroute holds its new out-hop beside the one it replaces until the new one is accepted (make before
    // break); a sink lends up to sink_spare slots to reroutes, which give one back when their old path goes.
    size_t rerouting = 0;
    for (const auto& [id, o] : outs_) rerouting += o.replaces ? 1 : 0;
    if (outs_.size() > cfg_.capacity + rerouting)
      err << "source flows " << outs_.size() << " > capacity " << cfg_.capacity << "; ";
    if (ins_.size() > cfg_.capacity + cfg_.params.sink_spare)
      err << "sink flows " << ins_.size() << " > capacity " << cfg_.capacity << " + spare; ";
  } else if (used() > cfg_.capacity) {
    err << "used " << used() << " > capacity " << cfg_.capacity << "; ";
  }
  for (const auto& [key, in] : ins_) {
    if (dead_.count(key.prev)) err << "in-hop from dead peer " << key.prev << "; ";
    if (in.out && (!outs_.count(*in.out) || !outs_.at(*in.out).in || !(*outs_.at(*in.out).in == key)))
      err << "in-hop (" << key.prev << "," << key.id << ") matched to an out-hop that does not match back; ";
  }
  for (const auto& [id, o] : outs_) {
    if (dead_.count(o.next)) err << "out-hop " << id << " to dead peer " << o.next << "; ";
    if (o.in && (!ins_.count(*o.in) || ins_.at(*o.in).out != id))
      err << "out-hop " << id << " matched to an in-hop that does not match back; ";
  }
  return err.str();
}

}  // namespace gwtf::flow
