#include "kernels/train/roster.hpp"

#include <numeric>

#include "kernels/flow/stage_choice.hpp"

namespace gwtf::train {

const char* role_name(Role r) {
  switch (r) {
    case Role::kData: return "data";
    case Role::kRelay: return "relay";
    case Role::kAny: return "any";
  }
  return "?";
}

size_t Layout::founders() const {
  return std::accumulate(replicas.begin(), replicas.end(), size_t{holders});
}

Roster::Roster(Layout layout, uint64_t config_hash) : layout_(std::move(layout)), config_hash_(config_hash) {}

size_t Roster::live_count(Stage s) const {
  size_t n = 0;
  for (const auto& [id, m] : live_) n += m.stage == s;
  return n;
}

bool Roster::full() const {
  if (live_count(0) < layout_.holders) return false;
  for (Stage s = 1; s <= layout_.relay_stages(); ++s)
    if (live_count(s) < layout_.replicas[s - 1]) return false;
  return true;
}

Result<Stage, std::string> Roster::place(const Hello& h) const {
  const Stage stages = layout_.relay_stages();
  if (h.role == Role::kRelay && h.stage > stages)
    return Err{"stage " + std::to_string(h.stage) + " does not exist: this swarm has relay stages 1.." +
               std::to_string(stages)};
  if (started_) {
    if (h.role == Role::kData)
      return Err{std::string("training has started: data holders own their microbatches from iteration 0, so a "
                             "newcomer can only join a relay stage (--role relay or auto)")};
    if (h.role == Role::kRelay && h.stage != 0) return h.stage;
    std::vector<flow::StageLoad> loads;
    for (Stage s = 1; s <= stages; ++s) loads.push_back({s, live_count(s), 0});
    return flow::choose_stage(loads);
  }
  auto free_relay = [&](Stage s) { return live_count(s) < layout_.replicas[s - 1]; };
  if (h.role == Role::kData || (h.role == Role::kAny && live_count(0) < layout_.holders)) {
    if (live_count(0) >= layout_.holders)
      return Err{"every data-holder slot is taken (" + std::to_string(layout_.holders) + ")"};
    return Stage{0};
  }
  if (h.stage != 0) {
    if (!free_relay(h.stage))
      return Err{"every founding slot of stage " + std::to_string(h.stage) + " is taken (" +
                 std::to_string(layout_.replicas[h.stage - 1]) + "); join after the start"};
    return h.stage;
  }
  // Any relay stage: the emptiest first, so founders spread evenly.
  Stage best = 0;
  for (Stage s = 1; s <= stages; ++s)
    if (free_relay(s) && (best == 0 || live_count(s) * layout_.replicas[best - 1] < live_count(best) * layout_.replicas[s - 1]))
      best = s;
  if (best == 0) return Err{std::string("every founding relay slot is taken")};
  return best;
}

Result<Roster::Admitted, std::string> Roster::admit(const Hello& h) {
  if (h.config_hash != config_hash_)
    return Err{"configuration mismatch: this swarm runs configuration " + std::to_string(config_hash_) +
               ", the node has " + std::to_string(h.config_hash) +
               " (model, cut, schedule, data and seeds must be the same on every node)"};
  if (h.id == 0) return Err{std::string("node id 0 is reserved")};
  if (gone_.count(h.id))
    return Err{"node id " + std::to_string(h.id) + " left the swarm; a node that comes back joins with a new id"};
  if (auto it = live_.find(h.id); it != live_.end()) {
    if (it->second.host != h.host || it->second.port != h.port)
      return Err{"node id " + std::to_string(h.id) + " is in use by " + it->second.host + ":" +
                 std::to_string(it->second.port)};
    return Admitted{it->second, !it->second.ready};  // a retried hello
  }
  auto stage = place(h);
  if (!stage) return Err{std::move(stage).error()};
  MemberInfo m{h.id, stage.value(), h.host, h.port, !started_, h.status_port, h.data_port};
  live_[h.id] = m;
  return Admitted{m, started_};
}

void Roster::learn(const RosterMsg& r) {
  started_ = r.started;
  for (const auto& m : r.members)
    if (!gone_.count(m.id)) live_[m.id] = m;
  if (!gone_.count(r.you.id)) live_[r.you.id] = r.you;
}

void Roster::joined(const MemberInfo& m) {
  if (!gone_.count(m.id) && !live_.count(m.id)) live_[m.id] = m;
}

void Roster::down(NodeId id) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  gone_[id] = it->second;
  live_.erase(it);
}

void Roster::set_ready(NodeId id) {
  if (auto it = live_.find(id); it != live_.end()) it->second.ready = true;
}

NodeId Roster::arbiter() const {
  for (const auto& [id, m] : live_)  // ascending ids
    if (m.stage == 0) return id;
  return 0;
}

bool Roster::convicts(NodeId from, NodeId id) const {
  const auto* accused = find(id);
  return from != id && find(from) && accused && accused->stage != 0;
}

bool Roster::believes_gone(NodeId from, NodeId id) const {
  const auto* judge = find(from);
  return from != id && judge && judge->stage == 0 && find(id);
}

std::vector<MemberInfo> Roster::live() const {
  std::vector<MemberInfo> out;
  for (const auto& [id, m] : live_) out.push_back(m);
  return out;
}

const MemberInfo* Roster::find(NodeId id) const {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : &it->second;
}

RosterMsg Roster::roster_for(NodeId id) const {
  RosterMsg r;
  r.started = started_;
  for (const auto& [other, m] : live_) {
    if (other == id) r.you = m;
    else r.members.push_back(m);
  }
  return r;
}

}  // namespace gwtf::train
