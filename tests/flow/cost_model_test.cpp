// The edge cost of GWTF §2.1 and its inputs: smoothed measurements, memory- and compute-bound capacity.
#include "kernels/flow/cost_model.hpp"
#include "kernels/flow/link_bandwidth.hpp"

#include <limits>

#include <gtest/gtest.h>

namespace gwtf::flow {
namespace {

TEST(EdgeCost, AveragesComputeLatencyAndTheTransferTimeEachWay) {
  // (0.2 + 0.4)/2 + (0.01 + 0.03)/2 + (8 MB / 1 MB/s + 8 MB / 4 MB/s)/2 = 0.3 + 0.02 + 5
  EXPECT_DOUBLE_EQ(edge_cost(0.2, 0.4, 0.01, 0.03, 1e6, 4e6, 8e6), 5.32);
  EXPECT_DOUBLE_EQ(edge_cost(0.2, 0.4, 0.01, 0.03, 1e6, 4e6, 8e6), edge_cost(0.4, 0.2, 0.03, 0.01, 4e6, 1e6, 8e6));
  // A symmetric link: the paper's 2·size/(β_ij + β_ji).
  EXPECT_DOUBLE_EQ(edge_cost(0.2, 0.4, 0.01, 0.03, 2e6, 2e6, 8e6), 0.32 + 2 * 8e6 / (2e6 + 2e6));
  // Slow one way only: half the slow way's transfer time, not the fast way's.
  EXPECT_GT(edge_cost(0, 0, 0, 0, 250e3, 1e9, 32e3), 0.06);
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
  m.bandwidth_in_Bps.add(4e6);
  ASSERT_TRUE(m.complete());
  EXPECT_DOUBLE_EQ(m.cost(8e6), 5.32);
}

TEST(Capacity, MemoryLessFixedStateOverPerMicrobatchFootprint) {
  EXPECT_EQ(capacity_from_memory(10'000, 2'000, 1'000), 8u);
  EXPECT_EQ(capacity_from_memory(10'000, 2'000, 1'000, 5), 5u);  // capped
  EXPECT_EQ(capacity_from_memory(1'000, 2'000, 100), 0u);        // the weights alone do not fit
  EXPECT_EQ(capacity_from_memory(10'000, 0, 0), 0u);
}

TEST(Capacity, ComputeRoundTripOverComputeTimesMicrobatchesPerFlow) {
  EXPECT_EQ(capacity_from_compute(0.125, 1.5, 1), 12u);   // 12 microbatches computed per round trip
  EXPECT_EQ(capacity_from_compute(0.125, 1.5, 3), 4u);    // each flow brings three of them
  EXPECT_EQ(capacity_from_compute(0.125, 1.5, 0.5), 12u); // a flow brings at least one while it is used
  EXPECT_EQ(capacity_from_compute(0.5, 1.5, 1), 3u);      // a slower device: fewer
  EXPECT_EQ(capacity_from_compute(0.375, 1.5, 1.5), 2u);  // rounded down: 2.67 flows would queue
  EXPECT_EQ(capacity_from_compute(2.0, 1.5, 1), 1u);      // never below one flow
  EXPECT_EQ(capacity_from_compute(0.0, 1.5, 1), std::numeric_limits<uint32_t>::max());  // unknown: no limit
  EXPECT_EQ(capacity_from_compute(0.125, 0.0, 1), std::numeric_limits<uint32_t>::max());
}

// A link's bandwidth from acknowledged tensor messages: bytes over (ack time - send time - base round trip),
// smoothed as seconds per byte; the other way is the peer's report.
TEST(LinkBandwidth, SamplesBytesOverTheTransferTimeBeyondTheBaseRoundTrip) {
  LinkBandwidth bw;
  EXPECT_FALSE(bw.out_Bps(7));
  bw.round_trip(7, 0.004);
  bw.round_trip(7, 0.002);  // the smallest round trip is the base
  bw.sent(7, 1, 250'000, 10.0);
  ASSERT_TRUE(bw.acked(7, 1, 11.002));  // 1 s beyond the 2 ms base
  EXPECT_NEAR(*bw.out_Bps(7), 250'000, 1e-6);
  EXPECT_FALSE(bw.acked(7, 1, 12.0)) << "one sample per message";
  bw.sent(7, 2, 100, 12.0);  // too small to say anything about bandwidth
  EXPECT_FALSE(bw.acked(7, 2, 12.5));
  bw.sent(8, 1, 1'000'000, 12.0);  // no round trip measured on that link yet
  EXPECT_FALSE(bw.acked(8, 1, 13.0));
  bw.round_trip(9, 0.001);
  bw.sent(9, 5, 1'000'000, 20.0);
  bw.sent(9, 5, 1'000'000, 21.0);  // a retransmission keeps the first send time
  ASSERT_TRUE(bw.acked(9, 5, 22.001));
  EXPECT_NEAR(*bw.out_Bps(9), 1'000'000 / 2.0, 1e-3);
  EXPECT_FALSE(bw.in_Bps(9));
  bw.reported(9, 0);  // "not measured"
  EXPECT_FALSE(bw.in_Bps(9));
  bw.reported(9, 3e6);
  EXPECT_EQ(*bw.in_Bps(9), 3e6);
  // For the edge cost: both ways, a way not measured taken as the other, nothing before any sample.
  EXPECT_EQ(bw.both_ways(9), std::make_pair(*bw.out_Bps(9), 3e6));
  EXPECT_EQ(bw.both_ways(7), std::make_pair(*bw.out_Bps(7), *bw.out_Bps(7)));
  bw.reported(5, 2e6);
  EXPECT_EQ(bw.both_ways(5), std::make_pair(2e6, 2e6));
  EXPECT_FALSE(bw.both_ways(8));
}

// A 238 MB result on a link measured at 125 MB/s takes about 2 s: a retransmission a second after the first copy
// would queue a second one behind it; once the estimate says it should have arrived, it goes.
TEST(LinkBandwidth, AMessageStillOnItsWayIsNotSentAgain) {
  LinkBandwidth bw;
  bw.round_trip(7, 0.05);
  bw.sent(7, 1, 125'000'000, 0.0);
  ASSERT_TRUE(bw.acked(7, 1, 1.05));  // 125 MB/s
  EXPECT_FALSE(bw.still_sending(7, 2, 5.0)) << "never sent";
  bw.sent(7, 2, 238'000'000, 10.0);
  EXPECT_TRUE(bw.still_sending(7, 2, 11.0));
  EXPECT_FALSE(bw.still_sending(8, 2, 11.0)) << "another peer's";
  EXPECT_FALSE(bw.still_sending(7, 2, 12.0)) << "1.904 s at 125 MB/s and a 50 ms round trip have passed";
  bw.sent(9, 3, 238'000'000, 10.0);
  EXPECT_FALSE(bw.still_sending(9, 3, 10.5)) << "no estimate of that link: retransmit as ever";
  ASSERT_TRUE(bw.acked(7, 2, 12.5));
  EXPECT_FALSE(bw.still_sending(7, 2, 12.6)) << "acknowledged";
}

TEST(LinkBandwidth, ASlowTransferShowsAtOnceAmongFastOnes) {
  LinkBandwidth bw;
  bw.round_trip(4, 0.0);
  uint64_t seq = 0;
  for (; seq < 10; ++seq) {  // fast: the transfer floor, 32 kB in 0.1 ms
    bw.sent(4, seq, 32'000, 1.0 * seq);
    ASSERT_TRUE(bw.acked(4, seq, 1.0 * seq));
  }
  EXPECT_NEAR(*bw.out_Bps(4), 32'000 / LinkBandwidth::kMinTransferS, 1e-3) << "never faster than the floor";
  bw.sent(4, seq, 32'000, 20.0);  // throttled: 250 kB/s
  ASSERT_TRUE(bw.acked(4, seq, 20.128));
  // One slow sample in eleven: a mean of rates would still say ~230 MB/s; the mean of times says under 1 MB/s.
  EXPECT_LT(*bw.out_Bps(4), 1e6);
}

TEST(LinkBandwidth, AGonePeerOrAPeerThatNeverAnswersCannotGrowTheState) {
  LinkBandwidth bw;
  bw.round_trip(3, 0.001);
  for (uint64_t seq = 1; seq <= LinkBandwidth::kMaxPending + 100; ++seq) bw.sent(3, seq, 1 << 20, 1.0);
  EXPECT_EQ(bw.pending(), LinkBandwidth::kMaxPending);
  EXPECT_FALSE(bw.acked(3, 1, 2.0)) << "the oldest were dropped";
  EXPECT_TRUE(bw.acked(3, LinkBandwidth::kMaxPending + 100, 2.0));
  bw.reported(3, 1e6);
  bw.forget(3);
  EXPECT_EQ(bw.pending(), 0u);
  EXPECT_FALSE(bw.out_Bps(3));
  EXPECT_FALSE(bw.in_Bps(3));
  bw.sent(3, 1, 1 << 20, 3.0);
  EXPECT_FALSE(bw.acked(3, 1, 4.0)) << "its base round trip went with it";
}

}  // namespace
}  // namespace gwtf::flow
