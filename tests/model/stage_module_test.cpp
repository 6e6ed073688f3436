// Stage modules: the chain of stages computes exactly what the monolithic model computes, whatever the cut, and a
// backward by recomputation equals one from saved state (DESIGN §5; issue: model kernels).
#include "kernels/model/stage_module.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>

#include "kernels/model/stage_plan.hpp"

namespace gwtf::model {
namespace {

using Grads = std::map<std::string, at::Tensor>;

struct Pipeline {
  std::unique_ptr<StageModule> start, end;
  std::vector<std::unique_ptr<StageModule>> relays;

  Pipeline(const ModelConfig& cfg, const std::vector<std::pair<int, int>>& cuts) {
    start = StageModule::start(cfg);
    for (auto [a, b] : cuts) relays.push_back(StageModule::blocks(cfg, a, b));
    end = StageModule::end(cfg, start->token_embedding());
  }
  Grads grads() const {
    Grads g;
    for (const auto* s : all())
      for (const auto& [name, p] : s->named_parameters())
        if (p.grad().defined()) g[name] = p.grad().clone();
    return g;
  }
  void zero_grad() {
    for (auto* s : all()) const_cast<StageModule*>(s)->zero_grad();
  }
  std::vector<const StageModule*> all() const {
    std::vector<const StageModule*> v{start.get()};
    for (const auto& r : relays) v.push_back(r.get());
    v.push_back(end.get());
    return v;
  }
  // One autograd graph through every stage: the monolithic model.
  double monolithic_step(const at::Tensor& tokens, const at::Tensor& targets) {
    auto x = start->forward(tokens);
    for (auto& r : relays) x = r->forward(x);
    auto loss = end->forward(x, targets);
    loss.backward();
    return loss.item<double>();
  }
  // What the swarm does: each stage sees only its input and the gradient of its output, and recomputes.
  double pipeline_step(const at::Tensor& tokens, const at::Tensor& targets) {
    std::vector<at::Tensor> inputs;
    at::Tensor x;
    {
      at::NoGradGuard no_grad;
      x = start->forward(tokens);
      for (auto& r : relays) {
        inputs.push_back(x);
        x = r->forward(x);
      }
    }
    const double loss = [&] {
      at::NoGradGuard no_grad;
      return end->forward(x, targets).item<double>();
    }();
    auto g = end->backward(x, {}, targets);
    for (size_t i = relays.size(); i-- > 0;) g = relays[i]->backward(inputs[i], g);
    start->backward(tokens, g);
    return loss;
  }
};

std::pair<at::Tensor, at::Tensor> batch(const ModelConfig& cfg, int64_t b, int64_t t, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto tokens = at::randint(0, cfg.shape.vocab, {b, t + 1}, gen, at::TensorOptions().dtype(at::kLong));
  return {tokens.narrow(1, 0, t).contiguous(), tokens.narrow(1, 1, t).contiguous()};
}

double max_rel_diff(const Grads& a, const Grads& b) {
  double worst = 0;
  for (const auto& [name, ga] : a) {
    const auto& gb = b.at(name);
    worst = std::max(worst, ((ga - gb).abs().max() / (ga.abs().max() + 1e-12)).item<double>());
  }
  return worst;
}

class EveryArch : public ::testing::TestWithParam<Arch> {
 protected:
  ModelConfig cfg() const {
    ModelConfig c;
    c.arch = GetParam();
    c.shape = *preset("tiny");
    c.tied_head = GetParam() == Arch::kGpt;
    c.seed = 42;
    return c;
  }
};

TEST_P(EveryArch, ChainOfStagesMatchesTheMonolithicModelForEveryCut) {
  const auto c = cfg();
  const auto [tokens, targets] = batch(c, 2, 32, 7);
  Pipeline mono(c, {{0, 4}});
  const double mono_loss = mono.monolithic_step(tokens, targets);
  const Grads mono_grads = mono.grads();
  for (const auto& cuts : std::vector<std::vector<std::pair<int, int>>>{
           {{0, 4}}, {{0, 1}, {1, 4}}, {{0, 2}, {2, 4}}, {{0, 1}, {1, 2}, {2, 3}, {3, 4}}}) {
    Pipeline p(c, cuts);
    const double loss = p.pipeline_step(tokens, targets);
    EXPECT_LE(std::abs(loss - mono_loss) / mono_loss, 1e-6) << cuts.size() << " stages";
    const Grads g = p.grads();
    ASSERT_EQ(g.size(), mono_grads.size());
    EXPECT_LE(max_rel_diff(g, mono_grads), 1e-5) << cuts.size() << " stages";
  }
}

TEST_P(EveryArch, BackwardByRecomputationEqualsBackwardFromSavedState) {
  const auto c = cfg();
  auto stage = StageModule::blocks(c, 1, 3);
  auto x = at::randn({2, 16, c.shape.d_model});
  auto gy = at::randn({2, 16, c.shape.d_model});
  auto xs = x.clone().requires_grad_(true);
  stage->forward(xs).backward(gy);  // the graph of a forward that kept its state
  Grads saved;
  for (const auto& [n, p] : stage->named_parameters()) saved[n] = p.grad().clone();
  const auto saved_gx = xs.grad().clone();
  stage->zero_grad();
  const auto gx = stage->backward(x, gy);
  Grads recomputed;
  for (const auto& [n, p] : stage->named_parameters()) recomputed[n] = p.grad().clone();
  EXPECT_TRUE(at::equal(gx, saved_gx));
  EXPECT_EQ(max_rel_diff(recomputed, saved), 0.0);
  // And through the API that keeps the state.
  stage->zero_grad();
  const auto kept_gx = stage->backward(stage->forward_saved(x), gy);
  Grads kept;
  for (const auto& [n, p] : stage->named_parameters()) kept[n] = p.grad().clone();
  EXPECT_TRUE(at::equal(kept_gx, saved_gx));
  EXPECT_EQ(max_rel_diff(kept, saved), 0.0);
}

TEST_P(EveryArch, ReplicasFromTheSameSeedAreBitIdentical) {
  auto a = StageModule::blocks(cfg(), 1, 3), b = StageModule::blocks(cfg(), 1, 3);
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(at::equal(pa[i].second, pb[i].second)) << pa[i].first;
  auto other = cfg();
  other.seed = 43;
  EXPECT_FALSE(at::equal(StageModule::blocks(other, 1, 3)->named_parameters()[2].second, pa[2].second));
  // The same block initialises the same whichever stage holds it.
  auto whole = StageModule::blocks(cfg(), 0, 4)->named_parameters();
  for (const auto& [name, p] : pa)
    for (const auto& [wname, wp] : whole)
      if (wname == name) {
        EXPECT_TRUE(at::equal(p, wp)) << name;
      }
}

TEST_P(EveryArch, SummedMicrobatchGradientsMatchTheFullBatchInAnyOrder) {
  const auto c = cfg();
  const auto [tokens, targets] = batch(c, 3, 32, 11);
  Pipeline full(c, {{0, 2}, {2, 4}});
  full.pipeline_step(tokens, targets);
  Grads want = full.grads();
  for (auto& [n, g] : want) g.mul_(3.0);  // the full batch's mean loss is a third of the sum over microbatches
  for (const std::vector<int64_t>& order : {std::vector<int64_t>{0, 1, 2}, std::vector<int64_t>{2, 0, 1}}) {
    Pipeline p(c, {{0, 2}, {2, 4}});
    for (int64_t k : order) p.pipeline_step(tokens.narrow(0, k, 1), targets.narrow(0, k, 1));
    EXPECT_LE(max_rel_diff(p.grads(), want), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Model, EveryArch, ::testing::Values(Arch::kGpt, Arch::kLlama),
                         [](const auto& p) { return std::string(p.param == Arch::kGpt ? "Gpt" : "Llama"); });

TEST(StagePlan, EvenSplitAndItsSizes) {
  auto plan = StagePlan::even(Arch::kGpt, *preset("124m"), 5, 4);
  ASSERT_TRUE(plan.ok()) << plan.error();
  ASSERT_EQ(plan->relays.size(), 5u);
  EXPECT_EQ(plan->relays[0].end_block - plan->relays[0].first_block, 3);  // 12 blocks: 3,3,2,2,2
  EXPECT_EQ(plan->relays[4].end_block, 12);
  int64_t params = plan->holder_parameters;
  for (const auto& s : plan->relays) params += s.parameters;
  EXPECT_NEAR(static_cast<double>(params), 124.4e6, 0.5e6);  // GPT-2 small, tied head
  EXPECT_EQ(plan->relays[0].boundary_bytes, 4 * 1024 * 768 * 4);
}

TEST(StagePlan, BadRangesNameTheProblem) {
  const auto shape = *preset("tiny");
  EXPECT_FALSE(StagePlan::even(Arch::kGpt, shape, 5, 1).ok());  // 4 blocks
  auto gap = StagePlan::ranges(Arch::kGpt, shape, {{0, 1}, {2, 4}}, 1);
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.error().find("block 1"), std::string::npos) << gap.error();
  auto short_ = StagePlan::ranges(Arch::kLlama, shape, {{0, 3}}, 1);
  ASSERT_FALSE(short_.ok());
  EXPECT_NE(short_.error().find("3 of 4"), std::string::npos) << short_.error();
}

}  // namespace
}  // namespace gwtf::model
