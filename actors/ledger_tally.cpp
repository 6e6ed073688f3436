#include "actors/ledger_tally.hpp"

#include <set>

namespace gwtf {

namespace {

using Key = std::pair<int, uint64_t>;  // (stage, iteration)

struct Reduce {
  bool survived = false;  // applied by a node that exited with code 0 (its state did not die with it)
  std::vector<uint32_t> done, end_done;
};

}  // namespace

LedgerTally tally_ledger(const std::map<uint64_t, std::vector<nlohmann::json>>& events, uint32_t microbatches,
                         uint64_t iterations) {
  std::map<Key, Reduce> applied;
  int stages = 0;
  for (const auto& [node, list] : events) {
    int stage = -1;
    bool survived = false;
    for (const auto& e : list) survived = survived || (e.value("event", "") == "exit" && e.value("code", -1) == 0);
    for (const auto& e : list) {
      const std::string ev = e.value("event", "");
      if (ev == "member") stages = std::max(stages, stage = e.value("stage", -1));
      if (ev != "applied" || stage < 0) continue;
      auto [it, fresh] = applied.try_emplace({stage, e.value("iter", uint64_t{0})});
      if (!fresh && (it->second.survived || !survived)) continue;  // a survivor's reduce stands
      it->second = {survived, e.value("stage_done", std::vector<uint32_t>{}),
                    e.value("stage_end_done", std::vector<uint32_t>{})};
    }
  }
  LedgerTally t;
  auto tally = [&](const std::vector<uint32_t>& mbs) {
    std::set<uint32_t> distinct;
    for (uint32_t mb : mbs) (mb < microbatches && distinct.insert(mb).second ? void() : void(++t.duplicated));
    t.lost += microbatches - distinct.size();
  };
  for (int s = 0; s <= stages; ++s)
    for (uint64_t i = 0; i < iterations; ++i) {
      auto r = applied.find({s, i});
      const Reduce none;
      tally((r == applied.end() ? none : r->second).done);
      if (s == 0) tally((r == applied.end() ? none : r->second).end_done);
    }
  return t;
}

}  // namespace gwtf
