// A relay's capacity and recovery-buffer budget from its memory (kernels/model/memory_plan).
#include "kernels/model/memory_plan.hpp"

#include <gtest/gtest.h>

namespace gwtf::model {
namespace {

StagePlan tiny_two_stages() {
  auto plan = StagePlan::even(Arch::kGpt, *preset("tiny"), 2, 2);
  EXPECT_TRUE(plan);
  return plan.value();
}

TEST(MemoryPlan, TheFootprintOfARelayStage) {
  const auto plan = tiny_two_stages();
  const auto f = relay_footprint(plan, 2, /*microbatch=*/2, /*seq_len=*/32);
  EXPECT_EQ(f.fixed_bytes, 20u * static_cast<uint64_t>(plan.relays[1].parameters));
  // Two blocks of 2·s·b·h·(34 + 5·a·s/h) bytes: s 32, b 2, h 128, a 4.
  EXPECT_EQ(f.activation_bytes, 2u * 2 * 32 * 2 * 128 * (34 + 5 * 4 * 32 / 128));
  EXPECT_EQ(f.buffer_bytes, 3u * 32 * 2 * 128 * 4);  // three fp32 boundary tensors
}

TEST(MemoryPlan, CapacityFirstThenTheRestInRecoveryBuffers) {
  const StageFootprint f{1000, 300, 100};
  auto p = plan_memory(1000 + 3 * 400, f, 16);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p.value().capacity, 3u);
  EXPECT_EQ(p.value().buffer_budget, 3u);  // every microbatch in flight has its buffers
  p = plan_memory(1000 + 3 * 400 + 10 * 100 + 99, f, 16);
  ASSERT_TRUE(p);
  EXPECT_EQ(p.value().capacity, 3u + 2);       // 1099 more bytes: two more in flight...
  EXPECT_EQ(p.value().buffer_budget, 5u + 2);  // ... and two more buffers in the 299 left
  p = plan_memory(1000 + 3 * 400 + 10 * 100, f, 4);  // capped: the rest goes to buffers
  ASSERT_TRUE(p);
  EXPECT_EQ(p.value().capacity, 4u);
  EXPECT_EQ(p.value().buffer_budget, (3 * 400 + 10 * 100 - 4 * 300) / 100u);
  EXPECT_EQ(plan_memory(uint64_t{1} << 60, f, 4).value().buffer_budget, 1000000u);  // bounded
}

TEST(MemoryPlan, TooLittleMemoryIsAClearError) {
  const StageFootprint f{3u << 20, 1u << 20, 1u << 19};
  const auto p = plan_memory((3u << 20) + (1u << 20), f, 16);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().find("cannot hold this stage"), std::string::npos) << p.error();
  EXPECT_NE(p.error().find("3.0 MiB for the weights"), std::string::npos) << p.error();
  EXPECT_NE(p.error().find("1.5 MiB per microbatch"), std::string::npos) << p.error();
  EXPECT_TRUE(plan_memory((3u << 20) + (3u << 19), f, 16));
}

}  // namespace
}  // namespace gwtf::model
