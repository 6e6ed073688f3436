// The membership rules (kernels/train/roster): founders fill the configured layout, then only relay joiners
// enter, placed where the flow is limited; every refusal names its reason.
#include <gtest/gtest.h>

#include "kernels/train/roster.hpp"

namespace gwtf::train {
namespace {

constexpr uint64_t kConfig = 42;

Hello hello(NodeId id, Role role = Role::kAny, Stage stage = 0, uint64_t config = kConfig) {
  return {id, role, stage, "127.0.0.1", static_cast<uint16_t>(7000 + id), config, 0};
}

Roster founded() {
  Roster r({2, {2, 1}}, kConfig);
  for (NodeId id = 1; id <= 5; ++id) EXPECT_TRUE(r.admit(hello(id)).ok());
  EXPECT_TRUE(r.full());
  r.start();
  return r;
}

TEST(Roster, FoundersFillHoldersFirstThenTheEmptiestRelayStage) {
  Roster r({2, {2, 1}}, kConfig);
  std::vector<Stage> stages;
  for (NodeId id = 1; id <= 5; ++id) {
    EXPECT_FALSE(r.full());
    auto a = r.admit(hello(id));
    ASSERT_TRUE(a.ok()) << a.error();
    EXPECT_FALSE(a.value().joiner);
    EXPECT_TRUE(a.value().member.ready);
    stages.push_back(a.value().member.stage);
  }
  EXPECT_EQ(stages, (std::vector<Stage>{0, 0, 1, 2, 1}));
  EXPECT_TRUE(r.full());
  auto sixth = r.admit(hello(6));
  ASSERT_FALSE(sixth.ok());
  EXPECT_NE(sixth.error().find("every founding relay slot is taken"), std::string::npos) << sixth.error();
}

TEST(Roster, ARetriedHelloGetsTheSamePlace) {
  Roster r({1, {1}}, kConfig);
  auto first = r.admit(hello(7, Role::kRelay));
  auto again = r.admit(hello(7, Role::kRelay));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first.value().member.stage, again.value().member.stage);
  EXPECT_EQ(r.live().size(), 1u);
}

TEST(Roster, RefusalsNameTheirReason) {
  Roster r({1, {1, 1}}, kConfig);
  auto expect_refused = [&](const Hello& h, const std::string& why) {
    auto a = r.admit(h);
    ASSERT_FALSE(a.ok()) << "admitted, expected: " << why;
    EXPECT_NE(a.error().find(why), std::string::npos) << a.error();
  };
  expect_refused(hello(1, Role::kAny, 0, 43), "configuration mismatch");
  expect_refused(hello(0), "reserved");
  expect_refused(hello(1, Role::kRelay, 3), "stage 3 does not exist");
  ASSERT_TRUE(r.admit(hello(1, Role::kData)).ok());
  expect_refused(hello(2, Role::kData), "every data-holder slot is taken");
  Hello impostor = hello(1, Role::kData);
  impostor.port = 9999;
  expect_refused(impostor, "is in use by 127.0.0.1:7001");
  ASSERT_TRUE(r.admit(hello(2, Role::kRelay, 1)).ok());
  expect_refused(hello(3, Role::kRelay, 1), "every founding slot of stage 1 is taken");
  r.down(2);
  expect_refused(hello(2, Role::kRelay, 1), "left the swarm");
}

TEST(Roster, AfterTheStartOnlyRelayJoinersEnterWhereTheFlowIsLimited) {
  Roster r = founded();  // stage 1: 2 replicas, stage 2: 1
  auto data = r.admit(hello(10, Role::kData));
  ASSERT_FALSE(data.ok());
  EXPECT_NE(data.error().find("can only join a relay stage"), std::string::npos);
  auto a = r.admit(hello(11));
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_TRUE(a.value().joiner);
  EXPECT_FALSE(a.value().member.ready);
  EXPECT_EQ(a.value().member.stage, 2u);  // the stage with the least capacity
  auto b = r.admit(hello(12, Role::kRelay, 1));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value().member.stage, 1u);  // asked for
  r.down(3);
  r.down(5);  // stage 1 now has the newcomer 12 only; stage 2 has 4 and 11
  auto c = r.admit(hello(13));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value().member.stage, 1u);
}

TEST(Roster, AMemberLearnsTheRosterItIsGiven) {
  Roster seed = founded();
  ASSERT_TRUE(seed.admit(hello(9)).ok());
  RosterMsg msg = seed.roster_for(9);
  EXPECT_TRUE(msg.started);
  EXPECT_EQ(msg.you.id, 9u);
  EXPECT_EQ(msg.members.size(), 5u);
  Roster joiner({2, {2, 1}}, kConfig);
  joiner.learn(msg);
  EXPECT_TRUE(joiner.started());
  EXPECT_EQ(joiner.live().size(), 6u);
  ASSERT_NE(joiner.find(9), nullptr);
  EXPECT_FALSE(joiner.find(9)->ready);
  joiner.set_ready(9);
  EXPECT_TRUE(joiner.find(9)->ready);
  joiner.joined({20, 1, "10.0.0.2", 7100, false});
  EXPECT_EQ(joiner.live_count(1), 3u);
  joiner.down(20);
  joiner.joined({20, 1, "10.0.0.2", 7100, false});  // a stale announcement does not revive it
  EXPECT_EQ(joiner.live_count(1), 2u);
}

// Deaths the swarm agrees on: one arbiter (the smallest live holder) settles them, in the order suspicions come.
TEST(Roster, TheSmallestLiveDataHolderIsTheArbiterAndItsSuccessorTakesOver) {
  Roster r = founded();  // holders 1, 2; stage 1: 3, 5; stage 2: 4
  EXPECT_EQ(r.arbiter(), 1u);
  r.down(1);
  EXPECT_EQ(r.arbiter(), 2u);
  r.down(2);
  EXPECT_EQ(r.arbiter(), 0u) << "no holder left: nobody settles deaths";
}

TEST(Roster, ASuspicionConvictsALiveRelayUnlessItsAccuserIsGoneOrItIsAHolder) {
  Roster r = founded();
  EXPECT_TRUE(r.convicts(3, 4));
  r.down(4);  // the arbiter convicted 4 first
  EXPECT_FALSE(r.convicts(4, 3)) << "the counter-suspicion of a member now gone must not convict its accuser";
  EXPECT_FALSE(r.convicts(3, 4)) << "already gone";
  EXPECT_FALSE(r.convicts(3, 2)) << "a holder dies only on the arbiter's own link";
  EXPECT_FALSE(r.convicts(5, 5));
  EXPECT_FALSE(r.convicts(99, 3)) << "a stranger's word";
}

TEST(Roster, OnlyALiveDataHolderIsBelievedWhenItDeclaresAMemberGone) {
  Roster r = founded();
  EXPECT_TRUE(r.believes_gone(1, 3));
  EXPECT_TRUE(r.believes_gone(2, 1)) << "the successor holder declares a lost arbiter gone";
  EXPECT_FALSE(r.believes_gone(3, 5)) << "a relay's word is a suspicion, not a verdict";
  EXPECT_FALSE(r.believes_gone(1, 1));
  r.down(2);
  EXPECT_FALSE(r.believes_gone(2, 3)) << "from a holder gone";
  EXPECT_FALSE(r.believes_gone(1, 2)) << "about a member gone already";
}

}  // namespace
}  // namespace gwtf::train
