// The centralized optimum: min-cost max-flow with node capacities, on instances small enough to check by hand.
#include "kernels/flow/oracle.hpp"

#include <gtest/gtest.h>

namespace gwtf::flow {
namespace {

// One holder (capacity `hc`), one relay stage with relays 2 and 3.
Instance two_relays(uint32_t hc, uint32_t c2, uint32_t c3, double d2, double d3) {
  Instance inst;
  inst.relay_stages = 1;
  inst.add_node({1, 0, hc});
  inst.add_node({2, 1, c2});
  inst.add_node({3, 1, c3});
  inst.link(1, 2, d2);
  inst.link(1, 3, d3);
  inst.link(2, 3, kInfCost);  // same stage: no cost
  return inst;
}

TEST(Oracle, FillsTheCheapRelayFirstAndStopsAtTheBottleneck) {
  // Paths cost 2*d (out and back through the same edge): relay 2 costs 2, relay 3 costs 10.
  const auto r = solve_oracle(two_relays(4, 3, 5, 1.0, 5.0));
  EXPECT_EQ(r.flow_value, 4u);             // the holder's capacity limits
  EXPECT_DOUBLE_EQ(r.total_cost, 3 * 2.0 + 1 * 10.0);
  EXPECT_DOUBLE_EQ(r.max_path_cost, 10.0);
  EXPECT_DOUBLE_EQ(r.shortest_path_cost, 2.0);
  EXPECT_DOUBLE_EQ(r.max_path_lower_bound, 4.0);  // mean path 16/4
  ASSERT_EQ(r.paths.size(), 4u);
  for (const auto& p : r.paths) {
    ASSERT_EQ(p.size(), 3u);
    EXPECT_EQ(p.front(), 1u);
    EXPECT_EQ(p.back(), 1u);
  }
}

TEST(Oracle, RelayCapacityLimitsTheFlow) {
  const auto r = solve_oracle(two_relays(10, 1, 2, 1.0, 1.0));
  EXPECT_EQ(r.flow_value, 3u);
}

TEST(Oracle, BalancingLowersTheLargestPathWithoutChangingTheTotal) {
  // Two stages; the cheap edges are arranged so that a naive decomposition pairs cheap with cheap.
  Instance inst;
  inst.relay_stages = 2;
  inst.add_node({1, 0, 2});
  inst.add_node({2, 1, 1});
  inst.add_node({3, 1, 1});
  inst.add_node({4, 2, 2});
  inst.link(1, 2, 1.0);
  inst.link(1, 3, 9.0);
  inst.link(2, 4, 1.0);
  inst.link(3, 4, 1.0);
  inst.link(4, 1, 1.0);
  const auto r = solve_oracle(inst);
  EXPECT_EQ(r.flow_value, 2u);
  EXPECT_DOUBLE_EQ(r.total_cost, 3.0 + 11.0);
  EXPECT_DOUBLE_EQ(r.max_path_cost, 11.0);  // forced: the path through 3 costs 11 whatever the pairing
  std::vector<std::vector<NodeId>> paths = {{1, 2, 4, 1}, {1, 3, 4, 1}};
  balance_paths(inst, paths);
  EXPECT_DOUBLE_EQ(path_cost(inst, paths[0]) + path_cost(inst, paths[1]), 14.0);
}

TEST(Oracle, EmptyWhenAStageHasNoRelay) {
  Instance inst;
  inst.relay_stages = 2;
  inst.add_node({1, 0, 2});
  inst.add_node({2, 1, 1});
  inst.link(1, 2, 1.0);
  const auto r = solve_oracle(inst);
  EXPECT_EQ(r.flow_value, 0u);
  EXPECT_TRUE(r.paths.empty());
}

}  // namespace
}  // namespace gwtf::flow
