// AdamW, its schedule and clipping; replicas stay bit-identical; its state resumes exactly.
#include "kernels/model/optimizer.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/model/stage_module.hpp"

namespace gwtf::model {
namespace {

TEST(Schedule, WarmsUpLinearlyThenDecaysByCosineToTheFloor) {
  AdamWConfig c;
  c.lr = 1.0;
  c.warmup_steps = 10;
  c.total_steps = 110;
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 9), 1.0);
  EXPECT_NEAR(learning_rate(c, 60), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(learning_rate(c, 110), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(c, 500), 0.1, 1e-12);
}

TEST(AdamW, FirstStepMatchesTheFormula) {
  AdamWConfig c;
  c.lr = 0.1;
  c.warmup_steps = 1;
  c.weight_decay = 0.5;
  c.clip_norm = 0;
  auto w = at::tensor({1.0f, -2.0f, 3.0f, 4.0f}).view({2, 2}).requires_grad_(true);
  w.mutable_grad() = at::tensor({0.5f, 0.5f, -1.0f, 2.0f}).view({2, 2});
  AdamW opt({{"w", w}}, c);
  opt.step();
  // Bias-corrected m/sqrt(v) = sign(g) at step 1; decoupled decay: w * (1 - lr * wd).
  auto expect = at::tensor({1.0f, -2.0f, 3.0f, 4.0f}).view({2, 2}) * (1 - 0.1 * 0.5) -
                0.1 * at::tensor({1.0f, 1.0f, -1.0f, 1.0f}).view({2, 2});
  EXPECT_TRUE(at::allclose(w.detach(), expect, 1e-5, 1e-6)) << w;
}

TEST(AdamW, ClipsTheJointNormAndReportsItUnclipped) {
  AdamWConfig c;
  c.clip_norm = 1.0;
  auto a = at::zeros({3}).requires_grad_(true), b = at::zeros({4}).requires_grad_(true);
  a.mutable_grad() = at::full({3}, 3.0);
  b.mutable_grad() = at::full({4}, 4.0);  // joint norm sqrt(27 + 64)
  AdamW opt({{"a", a}, {"b", b}}, c);
  EXPECT_NEAR(opt.step(), std::sqrt(91.0), 1e-6);
}

TEST(AdamW, ReplicasStepWithTheSameGradientStayBitIdentical) {
  ModelConfig cfg;
  cfg.shape = *preset("tiny");
  auto r1 = StageModule::blocks(cfg, 0, 2), r2 = StageModule::blocks(cfg, 0, 2);
  AdamW o1(r1->named_parameters(), {}), o2(r2->named_parameters(), {});
  auto x = at::randn({2, 8, cfg.shape.d_model}), g = at::randn({2, 8, cfg.shape.d_model});
  for (int step = 0; step < 3; ++step) {
    r1->zero_grad();
    r2->zero_grad();
    r1->backward(x, g);
    r2->backward(x, g);
    o1.step();
    o2.step();
  }
  const auto p1 = r1->named_parameters(), p2 = r2->named_parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(at::equal(p1[i].second, p2[i].second)) << p1[i].first;
}

TEST(AdamW, ResumingFromItsStateEqualsNotStopping) {
  auto make = [] { return at::arange(6, at::kFloat).view({2, 3}).clone().requires_grad_(true); };
  auto grad = [](int k) { return at::sin(at::arange(6, at::kFloat) * (k + 1)).view({2, 3}); };
  auto straight = make();
  AdamW a({{"w", straight}}, {});
  for (int k = 0; k < 6; ++k) {
    straight.mutable_grad() = grad(k);
    a.step();
  }
  auto first = make();
  AdamW b({{"w", first}}, {});
  for (int k = 0; k < 3; ++k) {
    first.mutable_grad() = grad(k);
    b.step();
  }
  auto resumed = first.detach().clone().requires_grad_(true);
  AdamW c({{"w", resumed}}, {});
  ASSERT_EQ(c.load_state(b.state()), "");
  for (int k = 3; k < 6; ++k) {
    resumed.mutable_grad() = grad(k);
    c.step();
  }
  EXPECT_TRUE(at::equal(resumed, straight));
  EXPECT_NE(c.load_state({}), "");
  EXPECT_NE(c.load_state({{"step", at::scalar_tensor(1, at::kLong)}, {"w.m", at::zeros({3})}}).find("w"),
            std::string::npos);
}

}  // namespace
}  // namespace gwtf::model
