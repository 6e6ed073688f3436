// The decentralized flow protocol under churn and message loss, and on geo instances (data/regions.csv), against
// the centralized optimum. Helpers and bounds: swarm_quality.hpp.
#include <gtest/gtest.h>

#include "tests/flow/swarm_quality.hpp"

namespace gwtf::sim {
namespace {

using namespace gwtf::sim::testing;

TEST(FlowSwarm, GeoInstances_InvariantsHoldAfterEveryEvent_QualityWithinTheBounds) {
  Quality q;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    auto x = instance(seed, true);
    x.check_invariants = true;
    x.quiesce = true;
    const auto r = run_flow_experiment(x);
    ASSERT_TRUE(r.violation.empty()) << r.violation << "\n" << replay(x);
    q.add(r.before, replay(x));
  }
  q.print("geo");
  q.expect_bounds("geo");
}

TEST(FlowSwarm, Churn_KillTenToTwentyPercentOfRelaysAndAddJoiners_BoundsHoldAgain) {
  Quality before, after;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    auto x = instance(seed, false);
    x.kill_fraction = 0.10 + 0.10 * Rng(seed).uniform();
    x.joins = 2;
    x.check_invariants = true;
    x.quiesce = true;
    const auto r = run_flow_experiment(x);
    ASSERT_TRUE(r.violation.empty()) << r.violation << "\n" << replay(x);
    ASSERT_TRUE(r.after_churn.has_value());
    EXPECT_GT(r.killed, 0) << replay(x);
    EXPECT_EQ(r.joined, 2);
    before.add(r.before, replay(x));
    after.add(*r.after_churn, replay(x));
  }
  after.print("after churn (200 rounds)");
  after.expect_bounds("after churn");
}

TEST(FlowSwarm, FivePercentMessageLoss_StillConverges) {
  Quality q;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    auto x = instance(seed, false);
    x.loss = 0.05;
    x.check_invariants = true;
    x.quiesce = true;  // and once the losses stop, nothing dangles
    const auto r = run_flow_experiment(x);
    ASSERT_TRUE(r.violation.empty()) << r.violation << "\n" << replay(x);
    q.add(r.before, replay(x));
  }
  q.print("5% message loss");
  EXPECT_GE(q.optimal_flow_share(), 0.90);
  for (size_t i = 0; i < q.flow.size(); ++i) EXPECT_GE(q.flow[i], 0.95) << q.replays[i];
  EXPECT_LE(quantile(q.total, 0.5), 1.05);
}

}  // namespace
}  // namespace gwtf::sim
