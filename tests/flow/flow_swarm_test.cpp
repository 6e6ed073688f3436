// The decentralized flow protocol on whole simulated swarms, against the centralized optimum: layered instances
// like the GWTF author's prototype tests, and determinism. Helpers and bounds: swarm_quality.hpp.
#include <gtest/gtest.h>

#include "tests/flow/swarm_quality.hpp"

namespace gwtf::sim {
namespace {

using namespace gwtf::sim::testing;

TEST(FlowSwarm, LayeredInstances_InvariantsHoldAfterEveryEvent_QualityWithinTheBounds) {
  Quality q;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    auto x = instance(seed, false);
    x.check_invariants = true;
    x.quiesce = true;
    const auto r = run_flow_experiment(x);
    ASSERT_TRUE(r.violation.empty()) << r.violation << "\n" << replay(x);
    q.add(r.before, replay(x));
  }
  q.print("layered");
  q.expect_bounds("layered");
  // The prototype's measure: the round at which the final flow value is reached.
  EXPECT_LT(quantile(q.rounds_to_flow, 0.5), kPrototypeMedianRounds);
}

TEST(FlowSwarm, SameSeed_SameRunEventForEvent) {
  for (bool geo : {false, true}) {
    auto x = instance(7, geo);
    x.loss = 0.05;
    x.kill_fraction = 0.15;
    x.joins = 1;
    const auto a = run_flow_experiment(x), b = run_flow_experiment(x);
    EXPECT_EQ(a.trace_hash, b.trace_hash) << replay(x);
    EXPECT_EQ(a.before.total_cost, b.before.total_cost);
    EXPECT_EQ(a.after_churn->messages, b.after_churn->messages);
    x.seed = 8;
    EXPECT_NE(run_flow_experiment(x).trace_hash, a.trace_hash) << "the seed does not reach the run";
  }
}

}  // namespace
}  // namespace gwtf::sim
