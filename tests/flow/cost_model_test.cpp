// The edge cost of GWTF §2.1 and its inputs: smoothed measurements and memory-bound capacity.
#include "kernels/flow/cost_model.hpp"

#include <gtest/gtest.h>

namespace gwtf::flow {
namespace {

TEST(EdgeCost, AveragesComputeAndLatencyAndUsesTheMeanBandwidth) {
  // (0.2 + 0.4)/2 + (0.01 + 0.03)/2 + 2 * 8 MB / (1 MB/s + 3 MB/s) = 0.3 + 0.02 + 4
  EXPECT_DOUBLE_EQ(edge_cost(0.2, 0.4, 0.01, 0.03, 1e6, 3e6, 8e6), 4.32);
  EXPECT_DOUBLE_EQ(edge_cost(0.2, 0.4, 0.01, 0.03, 1e6, 3e6, 8e6), edge_cost(0.4, 0.2, 0.03, 0.01, 3e6, 1e6, 8e6));
}

TEST(Ewma, FirstSampleSetsTheValueLaterOnesAreSmoothed) {
  Ewma e(0.25);
  EXPECT_FALSE(e.has_value());
  e.add(8.0);
  EXPECT_DOUBLE_EQ(e.value(), 8.0);
  e.add(0.0);
  EXPECT_DOUBLE_EQ(e.value(), 6.0);
}

TEST(LinkMeasurements, CostOnlyOnceEveryQuantityWasMeasured) {
  LinkMeasurements m;
  m.compute_self_s.add(0.2);
  m.compute_peer_s.add(0.4);
  m.latency_out_s.add(0.01);
  m.latency_in_s.add(0.03);
  m.bandwidth_out_Bps.add(1e6);
  EXPECT_FALSE(m.complete());
  m.bandwidth_in_Bps.add(3e6);
  ASSERT_TRUE(m.complete());
  EXPECT_DOUBLE_EQ(m.cost(8e6), 4.32);
}

TEST(Capacity, MemoryLessFixedStateOverPerMicrobatchFootprint) {
  EXPECT_EQ(capacity_from_memory(10'000, 2'000, 1'000), 8u);
  EXPECT_EQ(capacity_from_memory(10'000, 2'000, 1'000, 5), 5u);  // capped
  EXPECT_EQ(capacity_from_memory(1'000, 2'000, 100), 0u);        // the weights alone do not fit
  EXPECT_EQ(capacity_from_memory(10'000, 0, 0), 0u);
}

}  // namespace
}  // namespace gwtf::flow
