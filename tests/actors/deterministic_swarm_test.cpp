// The runtime's actors on CAF's deterministic test coordinator (actors/local_swarm.hpp, DeterministicSwarm): one
// thread, virtual time, no sockets, so every failure is placed exactly and every run replays. Each case kills an
// actor at a chosen point — a stage replica during its forward, its backward, its part of the aggregation; a data
// holder; or adds a replica — and checks what churn may not change: no microbatch lost or counted twice, the
// holder's losses equal the reference trainer's, and every surviving node's parameters equal those of the same
// swarm without churn (1e-5 relative).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>

#include "tests/actors/swarm_fixture.hpp"

namespace gwtf {
namespace {

using json = nlohmann::json;
using train::ComputeKind;
using namespace fixture;

constexpr double kVirtualLimit = 600;  // seconds of virtual time

struct SwarmRun {
  std::shared_ptr<SwarmEvents> events;
  std::map<uint64_t, std::shared_ptr<ParameterSink>> parameters;  // every node's, when its compute actor ended
  std::set<uint64_t> killed;
  bool finished = false;
  double virtual_s = 0;

  int stage(uint64_t id) const {
    for (const auto& e : events->of(id))
      if (is_event(e, "member")) return e.value("stage", -1);
    return -1;
  }
};

// A swarm of the fixture's run; `dies`: nodes killed (their actor, exit reason kill) when they start that task;
// `churn` runs in between (it may step the swarm and start newcomers with `start`).
using Start = std::function<void(uint64_t id, train::Role role)>;
SwarmRun run_swarm(uint32_t holders, const std::map<uint64_t, DieAt>& dies = {},
              const std::function<void(DeterministicSwarm&, const Start&)>& churn = {}) {
  app::set_compute_threads(1);
  const auto c = run(holders);
  DeterministicSwarm s;
  SwarmRun r{s.events, {}, {}, false, 0};
  const Start start = [&](uint64_t id, train::Role role) {
    auto d = dies.find(id);
    auto opt = node(c, id, role, d == dies.end() ? std::optional<DieAt>{} : d->second);
    opt.parameters = r.parameters[id] = std::make_shared<ParameterSink>();
    s.start(std::move(opt));
  };
  for (uint64_t id = 1; id <= c.layout().founders(); ++id) start(id, id <= holders ? train::Role::kData : train::Role::kRelay);
  if (churn) churn(s, start);
  r.finished = s.run(kVirtualLimit);
  if (const char* dump = std::getenv("GWTF_DUMP_EVENTS")) {  // every node's events, for a post-mortem
    std::ofstream out(dump, std::ios::app);
    for (const auto& [id, list] : s.events->all())
      for (const auto& e : list) out << e.dump() << "\n";
  }
  r.virtual_s = s.now();
  for (const auto& [id, d] : dies) r.killed.insert(id);
  return r;
}

DieAt die(ComputeKind kind) { return DieAt{kind, 1, -1, true, true}; }  // iteration 1 or later, the actor only

// What the run without churn gives per stage (its replicas are bit-identical).
const std::map<int, std::vector<std::pair<std::string, at::Tensor>>>& baseline(uint32_t holders) {
  static std::map<uint32_t, std::map<int, std::vector<std::pair<std::string, at::Tensor>>>> cache;
  auto& stages = cache[holders];
  if (stages.empty()) {
    const SwarmRun r = run_swarm(holders);
    EXPECT_TRUE(r.finished) << "the swarm without churn did not finish";
    for (const auto& [id, sink] : r.parameters)
      if (!sink->parameters.empty()) stages.emplace(r.stage(id), sink->parameters);
  }
  return stages;
}

void expect_like_the_run_without_churn(const SwarmRun& r, uint32_t holders) {
  ASSERT_TRUE(r.finished) << "the swarm did not finish by virtual t=" << r.virtual_s;
  expect_trained_like_reference(*r.events, run(holders), 1 + (r.killed.count(1) ? 1 : 0), r.killed);
  // Relative to the whole stage, as the simulator's LibTorch suite measures (tests/train/train_torch_test.cpp: the
  // attention's key bias has no true gradient, and AdamW turns its rounding noise into updates that differ with the
  // order of the reduce's additions — per tensor a large relative error on a near-zero tensor, per stage noise).
  const auto& base = baseline(holders);
  std::map<int, uint64_t> first_of_stage;
  for (const auto& [id, sink] : r.parameters) {
    if (r.killed.count(id)) continue;
    const int stage = r.stage(id);
    auto b = base.find(stage);
    ASSERT_NE(b, base.end()) << "node " << id << " of stage " << stage;
    ASSERT_EQ(sink->parameters.size(), b->second.size()) << "node " << id;
    double diff = 0, norm = 0;
    for (size_t k = 0; k < b->second.size(); ++k) {
      ASSERT_EQ(sink->parameters[k].first, b->second[k].first);
      diff += (sink->parameters[k].second - b->second[k].second).pow(2).sum().item<double>();
      norm += b->second[k].second.pow(2).sum().item<double>();
    }
    EXPECT_LE(std::sqrt(diff / norm), 1e-5) << "node " << id << " (stage " << stage << ") drifted from the run without churn";
    // Live replicas of a stage apply the same reduced gradients: bit-identical.
    auto [first, fresh] = first_of_stage.emplace(stage, id);
    if (fresh) continue;
    for (size_t k = 0; k < sink->parameters.size(); ++k) {
      EXPECT_TRUE(sink->parameters[k].second.equal(r.parameters.at(first->second)->parameters[k].second))
          << "nodes " << first->second << " and " << id << ": " << sink->parameters[k].first;
    }
  }
}

TEST(DeterministicSwarm, WithoutChurnTrainsLikeTheReferenceAndReplaysExactly) {
  const SwarmRun a = run_swarm(1), b = run_swarm(1);
  expect_like_the_run_without_churn(a, 1);
  // The same run twice: event for event (the time stamps are virtual).
  for (uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(a.events->of(id), b.events->of(id)) << "node " << id;
}

TEST(DeterministicSwarm, AStageReplicaKilledDuringForward) {
  const SwarmRun r = run_swarm(1, {{2, die(ComputeKind::kForward)}});
  EXPECT_TRUE(r.events->saw(3, [](const json& e) { return is_event(e, "peer_down") && e.value("peer", 0) == 2; }));
  expect_like_the_run_without_churn(r, 1);
}

TEST(DeterministicSwarm, AStageReplicaKilledDuringBackward) {
  expect_like_the_run_without_churn(run_swarm(1, {{3, die(ComputeKind::kBackward)}}), 1);
}

TEST(DeterministicSwarm, AStageReplicaKilledDuringAggregation) {
  expect_like_the_run_without_churn(run_swarm(1, {{2, die(ComputeKind::kSnapshot)}}), 1);
}

TEST(DeterministicSwarm, AStageReplicaKilledAsItApplies) {
  expect_like_the_run_without_churn(run_swarm(1, {{2, die(ComputeKind::kApply)}}), 1);
}

TEST(DeterministicSwarm, ADataHolderKilled) {
  expect_like_the_run_without_churn(run_swarm(2, {{2, die(ComputeKind::kEndBackward)}}), 2);
}

TEST(DeterministicSwarm, AReplicaAddedMidRunServesWithTheStageState) {
  const SwarmRun r = run_swarm(1, {}, [](DeterministicSwarm& s, const Start& start) {
    s.run(kVirtualLimit, [&] {  // once iteration 1 is applied somewhere
      return s.events->saw(1, [](const json& e) { return is_event(e, "applied") && e.value("iter", 0) >= 1; });
    });
    start(4, train::Role::kRelay);
  });
  EXPECT_TRUE(r.events->saw(4, [](const json& e) { return is_event(e, "train", "joined"); }))
      << "the newcomer never imported the state";
  expect_like_the_run_without_churn(r, 1);
}

}  // namespace
}  // namespace gwtf
