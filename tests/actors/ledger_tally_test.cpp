// The outside exactly-once check (actors/ledger_tally): lost and duplicated microbatches from event logs, and a
// dead node's last reduce that never left it.
#include <gtest/gtest.h>

#include "actors/ledger_tally.hpp"

namespace gwtf {
namespace {

using Json = nlohmann::json;

Json member(int stage) { return {{"event", "member"}, {"stage", stage}}; }
Json applied(uint64_t iter, std::vector<uint32_t> done, std::vector<uint32_t> end_done = {}) {
  return {{"event", "applied"}, {"iter", iter}, {"done", done}, {"end_done", end_done}};
}
Json exit_code(int code) { return {{"event", "exit"}, {"code", code}}; }

// A holder (node 1) and two replicas of stage 1 (nodes 2, 3), 4 microbatches, 2 iterations.
std::map<uint64_t, std::vector<Json>> swarm() {
  return {{1, {member(0), applied(0, {0, 1, 2, 3}, {0, 1, 2, 3}), applied(1, {0, 1, 2, 3}, {0, 1, 2, 3}), exit_code(0)}},
          {2, {member(1), applied(0, {0, 1}), applied(1, {0, 1}), exit_code(0)}},
          {3, {member(1), applied(0, {2, 3}), applied(1, {2, 3}), exit_code(0)}}};
}

TEST(LedgerTally, CountsWhatNoMemberContributedAndWhatTwoDid) {
  auto ev = swarm();
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 0u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 0u);
  ev[3][2] = applied(1, {2});  // microbatch 3 of iteration 1 missing at stage 1
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 1u);
  ev[3][2] = applied(1, {1, 2, 3});  // microbatch 1 twice
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 1u);
}

TEST(LedgerTally, ADeadNodesLastReduceCountsOnlyWhereItsPeersDidNotRedoItsWork) {
  auto ev = swarm();
  // Node 3 applied iteration 1 and died (no exit) before its result left it: node 2 redid all of iteration 1.
  ev[3] = {member(1), applied(0, {2, 3}), applied(1, {2, 3})};
  ev[2][2] = applied(1, {0, 1, 2, 3});
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 0u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 0u);
  // Its result did leave it (node 2 applied the same reduce, contributing only its own): it counts.
  ev[2][2] = applied(1, {0, 1});
  EXPECT_EQ(tally_ledger(ev, 4, 2).lost, 0u);
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 0u);
  // A node that exited cleanly is always counted: a double contribution there is a real duplicate.
  ev[3].push_back(exit_code(0));
  ev[2][2] = applied(1, {0, 1, 2, 3});
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 2u);
  // An earlier iteration of a dead node is never dropped.
  ev[3] = {member(1), applied(0, {2, 3}), applied(1, {2, 3})};
  ev[2][1] = applied(0, {0, 1, 2, 3});
  ev[2][2] = applied(1, {0, 1});
  EXPECT_EQ(tally_ledger(ev, 4, 2).duplicated, 2u);
}

}  // namespace
}  // namespace gwtf
