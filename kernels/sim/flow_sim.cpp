#include "kernels/sim/flow_sim.hpp"

#include "kernels/flow/oracle.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

namespace gwtf::sim {

using namespace gwtf::flow;

namespace {

// Approximate encoded size of a flow message, for the bandwidth part of its delay.
size_t approx_bytes(const FlowBody& body) {
  size_t items = 0;
  if (auto* c = std::get_if<CheckFlows>(&body)) items = c->hops.size();
  if (auto* c = std::get_if<CheckReply>(&body)) items = c->unknown.size();
  if (auto* s = std::get_if<Snapshot>(&body)) items = 5 * s->pairs.size() + 2 * s->links.size();
  return 64 + 8 * items;
}

}  // namespace

FlowSim::FlowSim(Instance instance, FlowSimConfig config, uint64_t seed)
    : instance_(std::move(instance)), config_(std::move(config)), rng_(seed), loss_(config_.loss) {
  const double period = config_.params.period;
  for (const auto& spec : instance_.nodes) start_node(spec, rng_.uniform() * period);
  for (const auto& spec : instance_.nodes)
    for (NodeId peer : instance_.neighbours(spec.id))
      if (spec.id < peer) introduce(spec.id, peer);
}

void FlowSim::start_node(const NodeSpec& spec, double first_tick) {
  FlowConfig cfg;
  cfg.id = spec.id;
  cfg.stage = spec.stage;
  cfg.relay_stages = instance_.relay_stages;
  cfg.capacity = spec.capacity;
  cfg.params = config_.params;
  nodes_[spec.id] = std::make_unique<FlowNode>(cfg, rng_.fork());
  nodes_[spec.id]->set_frozen(frozen_);
  queue_.push(now_ + first_tick, TickAt{spec.id});
}

// Both ends learn of each other (membership) and, between adjacent stages, the edge cost (measurements).
void FlowSim::introduce(NodeId a, NodeId b) {
  const double c = instance_.cost(a, b);
  for (auto [self, other] : {std::make_pair(a, b), std::make_pair(b, a)}) {
    auto& n = *nodes_.at(self);
    Output out;
    n.step(PeerUp{other, instance_.node(other)->stage}, now_, out);
    if (std::isfinite(c)) n.step(LinkCost{other, c}, now_, out);
    deliver_outputs(self, out);
  }
}

void FlowSim::deliver_outputs(NodeId from, Output& out) {
  for (auto& m : out.messages) {
    ++messages_;
    if (loss_ > 0 && rng_.chance(loss_)) continue;
    const double d = config_.delay ? config_.delay(from, m.to, approx_bytes(m.body))
                                   : config_.params.period * (0.01 + 0.04 * rng_.uniform());
    queue_.push(now_ + d, Deliver{from, m.to, std::move(m.body)});
  }
  out.messages.clear();
}

void FlowSim::hash(uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    trace_ ^= (v >> (8 * i)) & 0xFF;
    trace_ *= 1099511628211ull;
  }
}

void FlowSim::step(FlowNode& node, const Input& input, Output& out) {
  const auto t0 = std::chrono::steady_clock::now();
  node.step(input, now_, out);
  step_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bool FlowSim::process(double time, Event& e) {
  now_ = time;
  ++processed_;
  uint64_t bits;
  std::memcpy(&bits, &time, 8);
  hash(bits);
  hash(e.index());
  Output out;
  NodeId who = 0;
  if (auto* d = std::get_if<Deliver>(&e)) {
    hash(d->from);
    hash(d->to);
    hash(d->body.index());
    auto it = nodes_.find(d->to);
    if (it == nodes_.end()) return true;  // sent to a crashed node
    who = d->to;
    Input input = Receive{d->from, std::move(d->body)};
    if (config_.on_input) config_.on_input(now_, who, input);
    step(*it->second, input, out);
  } else if (auto* t = std::get_if<TickAt>(&e)) {
    hash(t->node);
    auto it = nodes_.find(t->node);
    if (it == nodes_.end() || !ticking_) return true;
    who = t->node;
    if (config_.on_input) config_.on_input(now_, who, Tick{});
    step(*it->second, Tick{}, out);
    queue_.push(now_ + config_.params.period, TickAt{t->node});
  } else if (auto* x = std::get_if<Detect>(&e)) {
    hash(x->observer);
    hash(x->dead);
    auto it = nodes_.find(x->observer);
    if (it == nodes_.end()) return true;
    who = x->observer;
    if (config_.on_input) config_.on_input(now_, who, PeerDown{x->dead});
    step(*it->second, PeerDown{x->dead}, out);
  }
  deliver_outputs(who, out);
  if (config_.check_every_event && who != 0) {
    // Only the node that stepped changed: check its local invariants now; the global ones each round.
    auto err = nodes_.at(who)->check_invariants();
    if (!err.empty()) err = "node " + std::to_string(who) + ": " + err;
    if (!err.empty()) {
      std::ostringstream s;
      s << "t=" << now_ << " after event #" << processed_ << ": " << err;
      violation_ = s.str();
      return false;
    }
  }
  return true;
}

bool FlowSim::run_rounds(int rounds) {
  for (int r = 0; r < rounds; ++r) {
    const double until = now_ + config_.params.period;
    while (!queue_.empty() && queue_.next_time() <= until) {
      auto [time, e] = queue_.pop();
      if (!process(time, e)) return false;
    }
    now_ = until;
    if (config_.check_every_event) {
      auto err = check_invariants(false);
      if (!err.empty()) {
        violation_ = "t=" + std::to_string(now_) + " (end of round): " + err;
        return false;
      }
    }
  }
  return true;
}

bool FlowSim::run_until(double t) {
  while (!queue_.empty() && queue_.next_time() <= t) {
    auto [time, e] = queue_.pop();
    if (!process(time, e)) return false;
  }
  now_ = std::max(now_, t);
  return true;
}

bool FlowSim::quiesce(int settle_rounds) {
  loss_ = 0;
  set_frozen(true);
  if (!run_rounds(settle_rounds)) return false;
  ticking_ = false;
  while (!queue_.empty()) {
    auto [time, e] = queue_.pop();
    if (!process(time, e)) return false;
  }
  return true;
}

void FlowSim::set_frozen(bool frozen) {
  frozen_ = frozen;
  for (auto& [id, n] : nodes_) n->set_frozen(frozen);
}

void FlowSim::crash(NodeId id) {
  if (!nodes_.count(id)) return;
  nodes_.erase(id);
  const double when = now_ + config_.detection_delay * config_.params.period;
  for (NodeId peer : instance_.neighbours(id)) queue_.push(when, Detect{peer, id});
  instance_.remove_node(id);
}

void FlowSim::join(const NodeSpec& spec, const std::vector<std::pair<NodeId, double>>& links) {
  instance_.add_node(spec);
  for (const auto& [peer, cost] : links)
    if (nodes_.count(peer)) instance_.link(spec.id, peer, cost);
  start_node(spec, rng_.uniform() * config_.params.period);
  for (NodeId peer : instance_.neighbours(spec.id)) introduce(spec.id, peer);
}

const FlowNode* FlowSim::node(NodeId id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : it->second.get();
}

FlowStats FlowSim::measure() const {
  FlowStats s;
  const Stage S = instance_.relay_stages;
  for (const auto& [hid, holder] : nodes_) {
    if (!holder->is_holder()) continue;
    for (const auto& o : holder->out_hops()) {
      if (!o.established) continue;
      std::vector<NodeId> path{hid};
      HopKey key{hid, o.id};
      NodeId next = o.next;
      bool complete = false;
      for (Stage hop = 1; hop <= S + 1; ++hop) {
        const FlowNode* n = node(next);
        if (!n || n->stage() != (hop == S + 1 ? 0 : hop)) break;
        path.push_back(next);
        if (n->is_holder()) {
          const auto ins = n->in_hops();
          complete = std::find(ins.begin(), ins.end(), key) != ins.end();
          break;
        }
        auto out = n->out_for(key);
        if (!out) break;
        auto view = n->out_hop(*out);
        if (!view || !view->established) break;
        key = HopKey{next, *out};
        next = view->next;
      }
      if (!complete) continue;
      ++s.flow_value;
      const double c = path_cost(instance_, path);
      s.total_cost += c;
      s.max_path_cost = std::max(s.max_path_cost, c);
      s.paths.push_back(std::move(path));
    }
  }
  std::map<NodeId, uint32_t> sunk;
  for (const auto& p : s.paths) ++sunk[p.back()];
  for (const auto& [h, n] : sunk)
    if (const auto* spec = instance_.node(h); spec && n > spec->capacity) s.sink_excess += n - spec->capacity;
  return s;
}

std::string FlowSim::check_invariants(bool quiet) const {
  std::ostringstream err;
  for (const auto& [id, n] : nodes_) {
    auto e = n->check_invariants();
    if (!e.empty()) err << "node " << id << ": " << e;
  }
  const Stage S = instance_.relay_stages;
  for (const auto& p : measure().paths) {
    bool ok = p.size() == static_cast<size_t>(S) + 2 && node(p.front())->is_holder() && node(p.back())->is_holder();
    for (Stage s = 1; ok && s <= S; ++s) ok = node(p[s])->stage() == s;
    if (!ok) err << "a flow does not visit every stage once from holder to holder; ";
  }
  if (quiet) {
    // Every hop is known to both its ends, and no relay holds an in-hop that leads nowhere.
    for (const auto& [id, n] : nodes_) {
      for (const auto& o : n->out_hops()) {
        const FlowNode* m = node(o.next);
        const auto ins = m ? m->in_hops() : std::vector<HopKey>{};
        if (!o.established) err << "node " << id << ": request " << o.id << " never answered; ";
        else if (std::find(ins.begin(), ins.end(), HopKey{id, o.id}) == ins.end())
          err << "node " << id << ": out-hop " << o.id << " unknown to " << o.next << "; ";
      }
      for (const auto& key : n->in_hops()) {
        const FlowNode* m = node(key.prev);
        auto v = m ? m->out_hop(key.id) : std::nullopt;
        if (!v || v->next != id) err << "node " << id << ": in-hop (" << key.prev << "," << key.id << ") unknown upstream; ";
        if (!n->is_holder() && !n->out_for(key)) err << "node " << id << ": orphaned in-hop; ";
      }
    }
  }
  return err.str();
}

}  // namespace gwtf::sim
