#include "actors/ledger_tally.hpp"

#include <set>

namespace gwtf {

namespace {

using Key = std::pair<int, uint64_t>;  // (stage, iteration)

struct NodeLog {
  int stage = -1;
  bool ended = false;  // it exited with code 0: its state did not die with it (a cut-off node exits 4)
  std::map<uint64_t, std::pair<std::vector<uint32_t>, std::vector<uint32_t>>> applied;  // iter -> (done, end_done)
};

bool covers(const std::vector<uint32_t>& mbs, uint32_t microbatches) {
  return std::set<uint32_t>(mbs.begin(), mbs.end()).size() >= microbatches;
}

}  // namespace

LedgerTally tally_ledger(const std::map<uint64_t, std::vector<nlohmann::json>>& events, uint32_t microbatches,
                         uint64_t iterations) {
  std::map<uint64_t, NodeLog> nodes;
  for (const auto& [node, list] : events) {
    NodeLog& n = nodes[node];
    for (const auto& e : list) {
      const std::string ev = e.value("event", "");
      if (ev == "member") n.stage = e.value("stage", -1);
      if (ev == "exit" && e.value("code", -1) == 0) n.ended = true;
      if (ev != "applied" || n.stage < 0) continue;
      n.applied[e.value("iter", uint64_t{0})] = {e.value("done", std::vector<uint32_t>{}),
                                                  e.value("end_done", std::vector<uint32_t>{})};
    }
  }
  // (stage, iteration) -> every member's contributions; stage 0 twice: start part and end part (loss).
  std::map<Key, std::vector<uint32_t>> start, end;
  auto add = [](std::vector<uint32_t>& to, const std::vector<uint32_t>& mbs) { to.insert(to.end(), mbs.begin(), mbs.end()); };
  int stages = 0;
  for (const auto& [id, n] : nodes) {
    stages = std::max(stages, n.stage);
    for (const auto& [i, sets] : n.applied) {
      // A node that died right after applying its last iteration may have applied a reduce that never left it (a
      // leader cut off before its result went out): the others then redid its work and applied their own. Its
      // result died with it, so it counts only where the others' contributions do not already cover the iteration.
      if (!n.ended && i == n.applied.rbegin()->first) {
        std::vector<uint32_t> others_start, others_end;
        for (const auto& [other_id, other] : nodes)
          if (other_id != id && other.stage == n.stage)
            if (auto o = other.applied.find(i); o != other.applied.end()) {
              add(others_start, o->second.first);
              add(others_end, o->second.second);
            }
        if (covers(others_start, microbatches) && (n.stage != 0 || covers(others_end, microbatches))) continue;
      }
      add(start[{n.stage, i}], sets.first);
      if (n.stage == 0) add(end[{n.stage, i}], sets.second);
    }
  }
  LedgerTally t;
  auto tally = [&](const std::vector<uint32_t>& mbs) {
    std::set<uint32_t> distinct(mbs.begin(), mbs.end());
    t.lost += microbatches - distinct.size();
    t.duplicated += mbs.size() - distinct.size();
  };
  for (int s = 0; s <= stages; ++s)
    for (uint64_t i = 0; i < iterations; ++i) {
      tally(start[{s, i}]);
      if (s == 0) tally(end[{s, i}]);
    }
  return t;
}

}  // namespace gwtf
