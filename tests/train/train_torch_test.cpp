// The chaos suite with real compute: the `tiny` GPT trained by the protocol inside the simulated world, LibTorch
// doing every forward, backward, reduce and optimizer step. Churn changes who computes, never what is learned:
// after the run, every live replica of every stage holds the parameters of the run without failures (within
// 1e-5 relative; only the order of the reduce's additions may differ), and the loss curves match.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "kernels/model/data.hpp"
#include "kernels/model/train_compute.hpp"
#include "kernels/sim/train_sim.hpp"
#include "tests/train/soak_world.hpp"

namespace gwtf::sim {
namespace {

using model::TrainCompute;
using train::ComputeKind;

constexpr int kRelayStages = 2;

const std::vector<int32_t>& stream() {
  static const std::vector<int32_t> tokens = [] {
    std::string text;
    for (int k = 0; k < 40; ++k)
      text += "Volunteers come and go; the flow of microbatches goes on. Line " + std::to_string(k) + ".\n";
    return model::Corpus::from_text(text, 0).value().train;
  }();
  return tokens;
}

// One TrainCompute per simulated node, all sharing one blob store (the simulator's blob ids are global).
class TorchWorld : public ComputeHook {
 public:
  explicit TorchWorld(int relay_stages) : relay_stages_(relay_stages) {}
  double run(train::NodeId node, train::Stage stage, const train::ComputeTask& t, train::Blob output) override {
    return compute(node, stage).run(t, output, store_);
  }
  void crash(train::NodeId node) override { nodes_.erase(node); }
  void alias(train::Blob from, train::Blob to) override {
    if (auto it = store_.find(from); it != store_.end()) store_[to] = it->second;
  }
  std::string export_state(train::NodeId node, train::Stage stage, train::Iter iteration) override {
    return compute(node, stage).export_state(iteration).value();
  }
  bool import_state(train::NodeId node, train::Stage stage, const std::string& bytes) override {
    auto imported = compute(node, stage).import_state(bytes);
    if (!imported) ADD_FAILURE() << imported.error();
    return static_cast<bool>(imported);
  }

  TrainCompute& compute(train::NodeId node, train::Stage stage) {
    auto& c = nodes_[node];
    if (!c) {
      model::TrainComputeConfig cfg;
      cfg.model.shape = *model::preset("tiny");
      cfg.model.seed = 3;
      cfg.optimizer.warmup_steps = 1;
      cfg.optimizer.lr = 3e-3;
      cfg.relay_stages = relay_stages_;
      cfg.microbatch_size = 2;
      cfg.seq_len = 16;
      cfg.stream = &stream();
      c = TrainCompute::create(cfg, stage).value();
    }
    return *c;
  }

  int relay_stages_;
  std::map<train::NodeId, std::unique_ptr<TrainCompute>> nodes_;
  model::BlobStore store_;
};

TrainSimConfig swarm() {
  TrainSimConfig c;
  c.params.microbatches = 4;
  c.params.iterations = 3;
  c.params.max_in_flight = 2;
  c.holders = 2;
  c.replicas = std::vector<int>(kRelayStages, 2);
  c.seed = 5;
  c.params.state_chunk = 256 << 10;  // the tiny model's relay state (~4.7 MB) in ~19 chunks
  return c;
}

struct Outcome {
  TrainSimReport report;
  std::map<train::Stage, std::vector<std::pair<std::string, at::Tensor>>> params;  // of one live node per stage
  std::map<train::NodeId, std::vector<std::pair<std::string, at::Tensor>>> all;    // every live node
  std::map<train::NodeId, train::Stage> stage_of;
};

Outcome train(TrainSimConfig cfg, const std::function<void(TrainSim&)>& churn) {
  TorchWorld world(static_cast<int>(cfg.replicas.size()));
  cfg.compute = &world;
  if (std::getenv("GWTF_TRACE")) cfg.trace = &std::cout;  // replaying a failure with a trace
  TrainSim sim(cfg);
  churn(sim);
  Outcome out;
  out.report = sim.run(2000);
  for (auto& [id, c] : world.nodes_) {
    if (!sim.in_swarm(id)) continue;
    out.all[id] = c->parameters();
    out.stage_of[id] = sim.node(id).stage();
    out.params.emplace(sim.node(id).stage(), c->parameters());
  }
  return out;
}

Outcome train(const std::function<void(TrainSim&)>& churn) { return train(swarm(), churn); }

const Outcome& reference() {
  static const Outcome r = train([](TrainSim&) {});
  return r;
}

// Every live replica of a stage holds exactly the parameters of the others.
void expect_replicas_bit_identical(const Outcome& r) {
  for (const auto& [id, params] : r.all) {
    const auto& first = r.params.at(r.stage_of.at(id));
    for (size_t k = 0; k < params.size(); ++k)
      EXPECT_TRUE(params[k].second.equal(first[k].second)) << "node " << id << " " << params[k].first;
  }
}

void expect_same_training(const Outcome& r, const Outcome& ref = reference()) {
  ASSERT_TRUE(r.report.finished) << "stopped at t=" << r.report.time;
  for (const auto& v : r.report.violations) ADD_FAILURE() << v;
  ASSERT_EQ(r.report.loss.size(), ref.report.loss.size());
  for (const auto& [i, loss] : ref.report.loss)
    EXPECT_NEAR(r.report.loss.at(i), loss, 1e-5 * std::abs(loss)) << "iteration " << i;
  for (const auto& [id, params] : r.all) {
    const auto& want = ref.params.at(r.stage_of.at(id));
    ASSERT_EQ(params.size(), want.size());
    // Relative to the whole stage: a parameter whose true gradient is zero (the attention's key bias: softmax
    // ignores a constant per query) gets pure rounding noise, which AdamW's normalised step turns into small
    // updates that differ with the order of the reduce's additions; per tensor that reads as a large relative
    // error on a near-zero tensor, per stage it is noise.
    double diff = 0, norm = 0;
    for (size_t k = 0; k < params.size(); ++k) {
      diff += (params[k].second - want[k].second).pow(2).sum().item<double>();
      norm += want[k].second.pow(2).sum().item<double>();
    }
    EXPECT_LE(std::sqrt(diff / norm), 1e-5)
        << "node " << id << " (stage " << r.stage_of.at(id) << ") drifted from the run without churn";
    std::printf("node %llu stage %u: relative distance to the run without churn %.2e\n",
                static_cast<unsigned long long>(id), static_cast<unsigned>(r.stage_of.at(id)), std::sqrt(diff / norm));
  }
}

TEST(TrainTorch, TrainingMovesTheParametersAndLowersTheLoss) {
  const Outcome& ref = reference();
  ASSERT_TRUE(ref.report.finished);
  EXPECT_LT(ref.report.loss.rbegin()->second, ref.report.loss.begin()->second);
  expect_replicas_bit_identical(ref);
}

TEST(TrainTorch, ARelayKilledDuringBackwardChangesNothingLearned) {
  expect_same_training(train([](TrainSim& sim) {
    sim.crash_when({sim.stage_nodes(1).front(), ComputeKind::kBackward, 1, 2});
  }));
}

TEST(TrainTorch, ARelayKilledAsLeaderDuringTheReduceChangesNothingLearned) {
  expect_same_training(train([](TrainSim& sim) {
    sim.crash_when({sim.stage_nodes(2).front(), ComputeKind::kReduce, 1, 0});
  }));
}

TEST(TrainTorch, ADataHolderKilledMidIterationChangesNothingLearned) {
  expect_same_training(train([](TrainSim& sim) {
    sim.crash_when({sim.stage_nodes(0).back(), ComputeKind::kStartBackward, 1, 1});
  }));
}

TEST(TrainTorch, TwoAdjacentNodesKilledChangeNothingLearned) {
  // A relay and the node after it on the same microbatch's path: the replay runs on a stepped stage's old weights.
  expect_same_training(train([](TrainSim& sim) {
    sim.crash_when({sim.stage_nodes(2).front(), ComputeKind::kApply, 1, 0});
    sim.crash_when({sim.stage_nodes(1).front(), ComputeKind::kBackward, 1, 3});
  }));
}

TEST(TrainTorch, ADoubleContributionRetractedChangesNothingLearned) {
  // The world of soak seed 724 (103496 until the sharded reduce changed the timing, then 369 until redos made
  // useless by a stage's applied step stopped): after crashes, a microbatch is recomputed through a second replica
  // of a later stage while the first copy lives; that stage's leader has one copy taken back out (the backward with
  // the gradient negated) — the result must equal the run without churn.
  const auto world = testing::soak_world(724, /*leaves=*/false);
  const Outcome r = train(world.config, world.churn);
  EXPECT_GE(r.report.events.count("retracted") ? r.report.events.at("retracted") : 0, 1u)
      << "the case no longer exercises a retraction";
  expect_same_training(r, train(world.config, [](TrainSim&) {}));
}

TEST(TrainTorch, AGracefulLeaveChangesNothingLearned) {
  // A relay leaves (SIGTERM) in the first iteration and a data holder in the second: nothing is redone, the
  // leavers go once drained, and the others learn exactly what the run without churn learns.
  const Outcome r = train([](TrainSim& sim) {
    sim.leave_at(sim.stage_nodes(2).front(), 0.3);
    sim.leave_at(sim.stage_nodes(0).back(), 1.0);
  });
  expect_same_training(r);
  EXPECT_EQ(r.report.departures, 2u);
  EXPECT_EQ(r.report.events.count("redo"), 0u);
}

TEST(TrainTorch, RecoveryBuffersWithinABudgetChangeNothingLearned) {
  auto cfg = swarm();
  cfg.params.buffer_budget = 1;  // tight: work is turned away, and taken beyond the budget when both are full
  const Outcome r = train(cfg, [](TrainSim& sim) {
    sim.crash_when({sim.stage_nodes(1).front(), ComputeKind::kBackward, 1, 2});
  });
  EXPECT_GT(r.report.events.count("busy") ? r.report.events.at("busy") : 0, 0u);
  expect_same_training(r);
}

// A peer's tensor of the wrong shape, or holding NaN, is refused before anything accumulates (the task fails with
// the reason; the protocol counts nothing); a good one afterwards trains as usual.
TEST(TrainTorch, ABadBoundaryTensorIsRefusedBeforeItTouchesTheGradients) {
  TorchWorld world(kRelayStages);
  TrainCompute& relay = world.compute(1, 1);
  model::BlobStore store;
  store[1] = at::randn({2, 16, 128});
  store[2] = at::randn({2, 16, 128});
  store[3] = at::full({2, 16, 128}, std::nan(""));
  store[4] = at::randn({2, 8, 128});
  train::ComputeTask t;
  t.kind = ComputeKind::kBackward;
  auto fails = [&](std::vector<train::Blob> inputs, const std::string& why) {
    t.inputs = std::move(inputs);
    try {
      relay.run(t, 9, store);
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "accepted a bad input (" << why << ")";
  };
  fails({1, 3}, "gradient of iteration 0 microbatch 0: holds NaN");
  fails({4, 2}, "activation of iteration 0 microbatch 0: shape 2x8x128, expected 2x16x128");
  for (const auto& [name, p] : relay.parameters())
    EXPECT_TRUE(!p.grad().defined() || p.grad().abs().sum().item<double>() == 0) << name << " was touched";
  t.inputs = {1, 2};
  relay.run(t, 9, store);
  double touched = 0;
  for (const auto& [name, p] : relay.parameters()) touched += p.grad().defined() ? p.grad().abs().sum().item<double>() : 0;
  EXPECT_GT(touched, 0);
}

// A replay between a forward and its backward (another microbatch's redo, on the weights from before the last
// step) gives the weights their values back but not their autograd version: the backward must not use the graph
// saved before it (it used to fail for ever: "modified by an inplace operation", found by the fault bed's
// partition case), and computes the same gradient as without the replay.
TEST(TrainTorch, AReplayBetweenAForwardAndItsBackwardChangesNothing) {
  auto gradient_with = [](bool replay_between) {
    TorchWorld world(kRelayStages);
    TrainCompute& relay = world.compute(1, 1);
    model::BlobStore store;
    at::manual_seed(7);
    store[1] = at::randn({2, 16, 128});
    store[2] = at::randn({2, 16, 128});
    train::ComputeTask t;
    t.kind = ComputeKind::kForward;
    t.inputs = {1};
    relay.run(t, 3, store);
    if (replay_between) {
      train::ComputeTask r;
      r.kind = ComputeKind::kForward;
      r.inputs = {2};
      r.mb = 1;
      r.replay = true;
      relay.run(r, 4, store);
    }
    t.kind = ComputeKind::kBackward;
    t.inputs = {1, 2};
    relay.run(t, 5, store);
    return store.at(5).clone();
  };
  const auto plain = gradient_with(false);
  const auto replayed = gradient_with(true);
  EXPECT_TRUE(at::allclose(plain, replayed, 1e-6, 1e-6));
}

TEST(TrainTorch, ANewcomerGetsItsStageStateAndLearnsTheSame) {
  // A relay joins during the second iteration; the original replicas of its stage die one after the other (in
  // the middle of backward passes): the newcomer alone carries the stage through the last iteration, from the
  // state it was sent.
  train::NodeId joiner = 0;
  const Outcome r = train([&](TrainSim& sim) {
    joiner = sim.join_at(1, 1.2);
    sim.crash_when({sim.stage_nodes(1).back(), ComputeKind::kBackward, 1, 1});
    sim.crash_when({sim.stage_nodes(1).front(), ComputeKind::kBackward, 2, 0});
  });
  expect_same_training(r);
  ASSERT_EQ(r.report.joins.size(), 1u);
  // After a step: a fresh replica starts from the same seed, so only a transferred state explains equal weights.
  EXPECT_GE(r.report.joins[0].state, 1u);
  ASSERT_TRUE(r.all.count(joiner)) << "the newcomer did not survive";
  EXPECT_EQ(r.stage_of.at(joiner), 1u);
}

TEST(TrainTorch, ANewcomerIsBitIdenticalToItsStage) {
  train::NodeId joiner = 0;
  const Outcome r = train([&](TrainSim& sim) { joiner = sim.join_at(2, 1.1); });
  ASSERT_TRUE(r.report.finished);
  ASSERT_EQ(r.report.joins.size(), 1u);
  EXPECT_GE(r.report.joins[0].state, 1u);
  ASSERT_EQ(r.stage_of.at(joiner), 2u);
  ASSERT_GE(std::count_if(r.stage_of.begin(), r.stage_of.end(), [](const auto& n) { return n.second == 2; }), 2)
      << "the newcomer has no replica to compare with";
  expect_replicas_bit_identical(r);
}

}  // namespace
}  // namespace gwtf::sim
