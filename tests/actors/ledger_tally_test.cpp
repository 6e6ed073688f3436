// The outside exactly-once check (actors/ledger_tally): lost and duplicated microbatches from the reduces the
// nodes' event logs say they applied.
#include <gtest/gtest.h>

#include "actors/ledger_tally.hpp"

namespace gwtf {
namespace {

using Json = nlohmann::json;

Json member(int stage) { return {{"event", "member"}, {"stage", stage}}; }
// Node's own contributions `own`; the reduce it applied: `stage_done` (and the holders' loss parts).
Json applied(uint64_t iter, std::vector<uint32_t> own, std::vector<uint32_t> stage_done,
             std::vector<uint32_t> stage_end_done = {}) {
  return {{"event", "applied"}, {"iter", iter},           {"done", own},
          {"end_done", {}},     {"stage_done", stage_done}, {"stage_end_done", stage_end_done}};
}
Json exit_code(int code) { return {{"event", "exit"}, {"code", code}}; }

const std::vector<uint32_t> kAll = {0, 1, 2, 3};

// A holder (node 1) and two replicas of stage 1 (nodes 2, 3), 4 microbatches, 2 iterations.
std::map<uint64_t, std::vector<Json>> swarm() {
  return {{1, {member(0), applied(0, kAll, kAll, kAll), applied(1, kAll, kAll, kAll), exit_code(0)}},
          {2, {member(1), applied(0, {0, 1}, kAll), applied(1, {0, 1}, kAll), exit_code(0)}},
          {3, {member(1), applied(0, {2, 3}, kAll), applied(1, {2, 3}, kAll), exit_code(0)}}};
}

TEST(LedgerTally, CountsWhatTheAppliedReduceLacksAndHoldsTwice) {
  auto ev = swarm();
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 0u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 0u);
  ev[2][2] = applied(1, {0, 1}, {0, 1, 1, 3});  // at stage 1, iteration 1: microbatch 1 twice, 2 missing
  ev[3][2] = applied(1, {1, 3}, {0, 1, 1, 3});
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 1u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 1u);
  ev[1][2] = applied(1, kAll, kAll, {0, 1, 2});  // the holders' loss part of microbatch 3 missing
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 2u);
  ev[2] = {member(1)};
  ev[3] = {member(1)};  // nobody applied stage 1 at all
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 1u + 8);
}

// A member killed after the reduce, before applying it: its contributions are in the reduce its peer applied.
TEST(LedgerTally, AMemberThatDiedBeforeApplyingStillHasItsContributionsCounted) {
  auto ev = swarm();
  ev[2] = {member(1), applied(0, {0, 1}, kAll)};  // died as it began applying iteration 1
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 0u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 0u);
}

// A leader applied its own reduce and died before it left it; the survivor reduced again (redoing the dead
// leader's work). The survivor's reduce is the stage's state, whatever the dead one's says.
TEST(LedgerTally, TheReduceASurvivorAppliedStands) {
  auto ev = swarm();
  ev[3] = {member(1), applied(0, {2, 3}, kAll), applied(1, {2, 3}, {0, 1, 2, 2, 3})};  // no exit: it died
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 0u);
  ev[2][2] = applied(1, kAll, {0, 1, 1, 2, 3});  // the survivor's holds microbatch 1 twice: a real duplicate
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 1u);
  ev.erase(2);  // nobody survived at stage 1: the dead node's reduce is all there is
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 1u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 0u);
}

}  // namespace
}  // namespace gwtf
