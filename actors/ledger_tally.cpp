#include "actors/ledger_tally.hpp"

#include <set>

namespace gwtf {

LedgerTally tally_ledger(const std::map<uint64_t, std::vector<nlohmann::json>>& events, uint32_t microbatches,
                         uint64_t iterations) {
  // (stage, iteration) -> every member's contributions; stage 0 twice: start part and end part (loss).
  std::map<std::pair<int, uint64_t>, std::vector<uint32_t>> start, end;
  int stages = 0;
  for (const auto& [node, list] : events) {
    int stage = -1;
    for (const auto& e : list) {
      const std::string ev = e.value("event", "");
      if (ev == "member") stage = e.value("stage", -1);
      if (ev != "applied" || stage < 0) continue;
      stages = std::max(stages, stage);
      const uint64_t i = e.value("iter", uint64_t{0});
      for (uint32_t mb : e.value("done", std::vector<uint32_t>{})) start[{stage, i}].push_back(mb);
      if (stage == 0)
        for (uint32_t mb : e.value("end_done", std::vector<uint32_t>{})) end[{stage, i}].push_back(mb);
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
