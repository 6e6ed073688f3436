// The deterministic chaos suite (DESIGN §5): each failure placed exactly, in a simulated swarm whose ledger the
// simulator checks on the modeled gradients themselves. Each case: every iteration commits, no microbatch is lost
// or counted twice at any stage, all replicas of a stage apply the same gradient, and only the failed node's stage
// computes more than once.
#include "kernels/sim/train_sim.hpp"

#include <gtest/gtest.h>

namespace gwtf::sim {
namespace {

using train::ComputeKind;
using train::Stage;

constexpr uint32_t kMicrobatches = 8;
constexpr train::Iter kIterations = 3;

TrainSimConfig swarm(std::vector<int> replicas = {2, 2, 2}, uint64_t seed = 1) {
  TrainSimConfig c;
  c.params.microbatches = kMicrobatches;
  c.params.iterations = kIterations;
  c.params.max_in_flight = 3;
  c.holders = 2;
  c.replicas = std::move(replicas);
  c.seed = seed;
  return c;
}

// Forward/backward tasks a stage runs when nothing fails.
uint64_t clean_tasks(Stage s) { return kIterations * kMicrobatches * (s == 0 ? 3 : 2); }

void expect_clean_ledger(const TrainSimReport& r) {
  EXPECT_TRUE(r.finished) << "stopped at t=" << r.time;
  for (const auto& v : r.violations) ADD_FAILURE() << v;
  EXPECT_EQ(r.loss.size(), kIterations);
}

// Only `redo_stage` may run more forward/backward work than a run without failures.
void expect_only_stage_recomputes(const TrainSimReport& r, Stage redo_stage, Stage stages) {
  for (Stage s = 0; s <= stages; ++s) {
    const auto it = r.work_tasks.find(s);
    const uint64_t ran = it == r.work_tasks.end() ? 0 : it->second;
    if (s == redo_stage) EXPECT_GE(ran, clean_tasks(s)) << "stage " << s;
    else EXPECT_EQ(ran, clean_tasks(s)) << "stage " << s << " recomputed work";
  }
}

TEST(TrainChaos, NoFailureCommitsEveryIterationWithoutWaste) {
  TrainSim sim(swarm());
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  expect_only_stage_recomputes(r, 99, 3);
  EXPECT_NEAR(r.wasted_fraction, 0, 1e-12);
  EXPECT_EQ(r.crash_lost_fraction, 0);
  EXPECT_EQ(r.events["redo"], 0u);
}

struct Placed {
  const char* name;
  ComputeKind kind;
  train::Iter iter;
  train::Mb mb;
};

class KillRelay : public ::testing::TestWithParam<Placed> {};

TEST_P(KillRelay, OnlyItsStageRedoesItsWork) {
  const Placed p = GetParam();
  TrainSim sim(swarm());
  const auto victim = sim.stage_nodes(2).front();
  sim.crash_when({victim, p.kind, p.iter, p.mb});
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  expect_only_stage_recomputes(r, 2, 3);
  EXPECT_GT(r.wasted_fraction, 0);
  // What died with the victim is part of the waste (the redo recomputes it); once its stage reduced the
  // iteration (applying it), its sums were safe and nothing of its own died with it.
  if (p.kind == ComputeKind::kApply) EXPECT_EQ(r.crash_lost_fraction, 0);
  else EXPECT_GT(r.crash_lost_fraction, 0);
  EXPECT_LE(r.crash_lost_fraction, r.wasted_fraction + 1e-12);
}

// The deposit bound (TrainSimReport::wasted_if_durable_after): a relay killed once it summed every backward of
// the iteration loses nothing a deposit made right after each backward would not have kept, so the bound at 0 s
// is below the waste; the later the work counts as durable, the more of it is lost, and a crash after the
// iteration applied loses nothing anyway.
TEST(TrainChaos, TheDepositBoundKeepsWhatWasDurableBeforeTheCrash) {
  for (ComputeKind kind : {ComputeKind::kSnapshot, ComputeKind::kApply}) {
    TrainSim sim(swarm());
    sim.crash_when({sim.stage_nodes(2).front(), kind, 1, 0});
    auto r = sim.run(1000);
    expect_clean_ledger(r);
    ASSERT_EQ(r.wasted_if_durable_after.size(), std::size(kDurableAfter));
    double before = 0;
    for (double after : kDurableAfter) {
      const double bound = r.wasted_if_durable_after.at(after);
      EXPECT_GE(bound, before) << after << " s";
      EXPECT_LE(bound, r.wasted_fraction + 1e-12) << after << " s";
      before = bound;
    }
    if (kind == ComputeKind::kApply) EXPECT_NEAR(r.wasted_if_durable_after.at(0), r.wasted_fraction, 1e-12);
    else EXPECT_LT(r.wasted_if_durable_after.at(0), r.wasted_fraction - 0.01);
  }
  TrainSim calm(swarm());
  for (const auto& [after, bound] : calm.run(1000).wasted_if_durable_after) EXPECT_NEAR(bound, 0, 1e-12) << after;
}

INSTANTIATE_TEST_SUITE_P(
    Train, KillRelay,
    ::testing::Values(Placed{"DuringForward", ComputeKind::kForward, 1, 2},
                      Placed{"DuringBackward", ComputeKind::kBackward, 1, 2},
                      Placed{"AfterBackwardBeforeAggregation", ComputeKind::kSnapshot, 1, 0},
                      Placed{"DuringAggregationAsLeader", ComputeKind::kReduce, 1, 0},
                      Placed{"DuringApply", ComputeKind::kApply, 1, 0}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(TrainChaos, KillADataHolderMidIteration) {
  TrainSim sim(swarm());
  const auto holder = sim.stage_nodes(0).back();
  sim.crash_when({holder, ComputeKind::kStartBackward, 1, 3});
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  expect_only_stage_recomputes(r, 0, 3);
}

TEST(TrainChaos, KillTwoOfThreeReplicasOfAStage) {
  TrainSim sim(swarm({2, 3, 2}));
  const auto nodes = sim.stage_nodes(2);
  sim.crash_when({nodes[0], ComputeKind::kForward, 1, 1});
  sim.crash_when({nodes[1], ComputeKind::kBackward, 1, 4});
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  expect_only_stage_recomputes(r, 2, 3);
}

// A graceful leave (SIGTERM) in the middle of an iteration: the leaver finishes what it holds, nothing new is
// routed to it, it goes once that is committed — and nobody redoes anything.
TEST(TrainChaos, AGracefulLeaveRedoesNothing) {
  for (Stage stage : {Stage{2}, Stage{0}}) {
    SCOPED_TRACE("a node of stage " + std::to_string(stage) + " leaves");
    TrainSim sim(swarm());
    const auto leaver = sim.stage_nodes(stage).front();
    sim.leave_at(leaver, 1.0);
    auto r = sim.run(1000);
    expect_clean_ledger(r);
    EXPECT_EQ(r.departures, 1u);
    EXPECT_FALSE(sim.in_swarm(leaver));
    EXPECT_EQ(r.events["redo"], 0u);
    EXPECT_NEAR(r.wasted_fraction, 0, 1e-12);
    expect_only_stage_recomputes(r, 99, 3);
    // The same node crashing at that moment costs work: it held some, so the case tests what it names.
    TrainSim crashed(swarm());
    crashed.crash_at(leaver, 1.0);
    EXPECT_GT(crashed.run(1000).wasted_fraction, 0);
  }
}

// Routes every node's work to one replica of the next stage (as a flow layer that found one replica cheapest).
class OneReplica : public Router {
 public:
  explicit OneReplica(const TrainSim& sim, Stage stages) {
    for (Stage s = 0; s <= stages; ++s)
      for (auto n : sim.stage_nodes(s)) hops_[n] = {sim.stage_nodes(s == stages ? 0 : s + 1).front()};
  }
  std::map<train::NodeId, std::vector<train::NodeId>> route(double) override { return hops_; }
  void crashed(train::NodeId, double) override {}
  void joined(train::NodeId, Stage, double) override {}

 private:
  std::map<train::NodeId, std::vector<train::NodeId>> hops_;
};

// Recovery buffers within a budget: a relay holding buffers for as many microbatches as it may turns new work
// away (Busy) and the sender tries the other replica; when both are full, one takes it beyond its budget and says
// so, rather than the iteration never finishing.
TEST(TrainChaos, RecoveryBuffersStayWithinTheBudget) {
  auto run = [](uint32_t budget, bool crash) {
    auto cfg = swarm();
    cfg.params.buffer_budget = budget;
    TrainSim probe(cfg);
    OneReplica router(probe, 3);
    cfg.router = &router;
    TrainSim sim(cfg);
    if (crash) sim.crash_when({sim.stage_nodes(2).back(), ComputeKind::kBackward, 1, 2});
    return sim.run(1000);
  };
  ASSERT_EQ(run(0, false).peak_buffered, kMicrobatches) << "the case needs one replica taking all the work";
  const auto r = run(4, false);  // 2 replicas x 4 = the 8 microbatches of an iteration
  expect_clean_ledger(r);
  expect_only_stage_recomputes(r, 99, 3);
  EXPECT_LE(r.peak_buffered, 4u);
  EXPECT_GT(r.events.at("busy"), 0u);
  EXPECT_EQ(r.events.count("over-budget"), 0u);
  const auto tight = run(3, false);  // 2 x 3 < 8: a relay must go beyond its budget
  expect_clean_ledger(tight);
  EXPECT_GT(tight.events.at("over-budget"), 0u);
  expect_clean_ledger(run(4, true));  // a crash under a budget: the survivors take its work over
}

TEST(TrainChaos, ASlowNodePresumedDeadIsIgnoredWhenItAnswers) {
  TrainSim sim(swarm());
  const auto slow = sim.stage_nodes(1).front();
  sim.slow_down(slow, 20);
  sim.presume_dead_at(slow, 1.0);
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_GT(r.events["dropped-from-dead"], 0u) << "the slow node's late answers must arrive and be dropped";
  expect_only_stage_recomputes(r, 1, 3);
}

TEST(TrainChaos, LinksThatDropMessages) {
  auto cfg = swarm();
  cfg.loss_rate = 0.05;
  TrainSim sim(cfg);
  auto r = sim.run(2000);
  expect_clean_ledger(r);
  EXPECT_GT(r.lost_messages, 0u);
  expect_only_stage_recomputes(r, 99, 3);
}

TEST(TrainChaos, ANonFiniteGradientIsRejectedAndRecomputed) {
  TrainSim sim(swarm());
  sim.poison(sim.stage_nodes(3).front(), ComputeKind::kBackward, 1);
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_EQ(r.events["rejected-non-finite"], 1u);
}

// A forward that fails twice on one node (a bad device, or an input it cannot use) is given back: the sender gives
// the microbatch to the other replica of that stage, and only that stage computes more.
TEST(TrainChaos, AForwardFailingTwiceIsComputedByAnotherReplica) {
  TrainSim sim(swarm());
  sim.poison(sim.stage_nodes(2).front(), ComputeKind::kForward, 1, 2, /*mb=*/2);  // routed to it
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_EQ(r.events["rejected-non-finite"], 2u);
  EXPECT_EQ(r.events["gave-back"], 1u);
  expect_only_stage_recomputes(r, 2, 3);
}

// A backward failing twice on a relay (its device, or a gradient it cannot use) is not retried there forever:
// the relay gives the microbatch back, and its sender gives it to another replica of the stage, with the rest of
// the path as its route — the next stage answers from its cache, so only the failed node's stage recomputes.
TEST(TrainChaos, ABackwardFailingTwiceIsComputedByAnotherReplica) {
  TrainSim sim(swarm());
  const auto relay = sim.stage_nodes(2).front();
  sim.poison(relay, ComputeKind::kBackward, 1, 2, /*mb=*/2);  // routed to it
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_EQ(r.events["rejected-non-finite"], 2u);
  EXPECT_EQ(r.events["gave-back"], 1u);
  expect_only_stage_recomputes(r, 2, 3);
  EXPECT_EQ(sim.node(relay).contributions(1).first.count(2), 0u);  // its sum never held it
}

// A relay whose output every replica of the next stage refuses (finite to it, fatal to its receivers — the
// runtime's door refuses a wrong shape or NaN/Inf the same way): the receivers give it back, the relay finds it
// refused everywhere and gives it back in turn, and another replica of its stage computes it. Beyond the refused
// attempts, nothing is recomputed outside the faulty node's stage.
TEST(TrainChaos, AnOutputEveryReplicaRefusesIsComputedByAnotherReplicaOfTheSendersStage) {
  TrainSim sim(swarm());
  const auto relay = sim.stage_nodes(2).front();
  sim.corrupt_output(relay, ComputeKind::kForward, 1, 1, /*mb=*/2);
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_EQ(r.events["refused-everywhere"], 1u);
  EXPECT_EQ(r.events["gave-back"], 3u);            // both replicas of stage 3, then the relay
  EXPECT_EQ(r.events["rejected-non-finite"], 4u);  // each of stage 3's replicas tried twice
  EXPECT_EQ(r.events["unprocessable"], 0u);
  for (Stage s : {0, 1}) EXPECT_EQ(r.work_tasks[s], clean_tasks(s)) << "stage " << s;
  EXPECT_GE(r.work_tasks[2], clean_tasks(2) + 1);  // the other replica's forward (and backward)
  EXPECT_EQ(r.work_tasks[3], clean_tasks(3) + 4);  // only the refused attempts
}

// A holder's microbatch that stage 1 refuses everywhere is regenerated once (a fault of the holder's device)...
TEST(TrainChaos, AMicrobatchRefusedEverywhereIsRegeneratedByItsHolder) {
  TrainSim sim(swarm());
  sim.corrupt_output(1, ComputeKind::kStartForward, 1, 1, /*mb=*/2);  // holder 1 owns the even microbatches
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_EQ(r.events["refused-everywhere"], 1u);
  EXPECT_EQ(r.events["unprocessable"], 0u);
  EXPECT_EQ(r.work_tasks[0], clean_tasks(0) + 1);  // the regenerated start part
}

// ... and when it is refused everywhere again (the model or the data give NaN/Inf), the holder says so and keeps
// offering it: the iteration cannot commit, nothing is counted that should not be.
TEST(TrainChaos, AMicrobatchRefusedEverywhereAfterRegeneratingIsReportedUnprocessable) {
  TrainSim sim(swarm());
  sim.corrupt_output(1, ComputeKind::kStartForward, 1, 1000, /*mb=*/2);
  auto r = sim.run(60);
  EXPECT_FALSE(r.finished);
  for (const auto& v : r.violations) ADD_FAILURE() << v;
  EXPECT_GE(r.events["unprocessable"], 1u);
  EXPECT_EQ(r.duplicated_contributions, 0u);
  EXPECT_EQ(sim.node(1).stepped(), 1u);  // iteration 0 committed, iteration 1 waits for microbatch 2
}

// Joins. The newcomer's state travels in chunks (many, to leave time for failures during the transfer).
TrainSimConfig swarm_with_big_state() {
  auto cfg = swarm();
  cfg.state_bytes = 2 << 20;
  cfg.params.state_chunk = 16 << 10;  // 128 chunks
  return cfg;
}

TEST(TrainChaos, AJoinDuringAnIterationNeitherStallsNorRedoesAnything) {
  TrainSim without(swarm_with_big_state());
  const auto base = without.run(1000);
  TrainSim sim(swarm_with_big_state());
  // In the middle of iteration 1.
  const auto joiner = sim.join_at(2, (base.iterations.at(0).committed_at + base.iterations.at(1).committed_at) / 2);
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  expect_only_stage_recomputes(r, 99, 3);  // its work moves to it, none is done twice
  ASSERT_EQ(r.joins.size(), 1u);
  EXPECT_EQ(r.joins[0].node, joiner);
  EXPECT_GE(r.joins[0].state, 1u);
  EXPECT_EQ(sim.node(joiner).stepped(), kIterations);
  // The iteration under way when it joined commits when it would have without it: nobody waited.
  EXPECT_NEAR(r.iterations.at(1).committed_at, base.iterations.at(1).committed_at, 0.05);
  // Both replicas of the stage served chunks.
  for (auto donor : sim.stage_nodes(2)) {
    if (donor == joiner) continue;
    EXPECT_GT(r.chunks_served[donor], 0u) << "donor " << donor;
  }
}

TEST(TrainChaos, ADonorDyingMidTransferDoesNotRestartIt) {
  TrainSim sim(swarm_with_big_state());
  const auto donors = sim.stage_nodes(1);
  sim.join_at(1, 1.2);
  sim.crash_at(donors.front(), 1.35);  // some chunks in, most still to come
  auto r = sim.run(1000);
  expect_clean_ledger(r);
  ASSERT_EQ(r.joins.size(), 1u);
  EXPECT_GT(r.chunks_served[donors.front()], 0u);
  // Resumed, not restarted: no chunk fetched twice beyond the ones the dead donor left unanswered.
  EXPECT_LE(r.chunks_served[donors.front()] + r.chunks_served[donors.back()], 128u + 4u);
}

TEST(TrainChaos, ACorruptChunkIsRejectedAndFetchedAgain) {
  TrainSim sim(swarm_with_big_state());
  sim.corrupt_chunks(sim.stage_nodes(3).front(), 3);
  sim.join_at(3, 1.2);
  auto r = sim.run(1000);
  expect_clean_ledger(r);  // the import checks the bytes it got are the stage's state
  ASSERT_EQ(r.joins.size(), 1u);
  EXPECT_EQ(r.events["rejected-chunk"], 3u);
}

// gwtf-sim's churn spares the last copy of a stage's state: both replicas of stage 1 are scheduled to die while a
// newcomer fetches the state; the second crash waits until the newcomer serves the stage's latest step. Without the
// rule the newcomer has nobody left to fetch from and the run never ends (no policy could go on).
TEST(TrainChaos, TheLastReplicaHoldingAStagesStateDiesOnlyOnceAnotherHoldsIt) {
  auto run = [](bool spare) {
    auto cfg = swarm_with_big_state();
    cfg.spare_last_server = spare;
    TrainSim sim(cfg);
    const auto replicas = sim.stage_nodes(1);
    sim.join_at(1, 1.2);
    for (auto n : replicas) sim.crash_at(n, 1.35);
    return sim.run(300);
  };
  const auto spared = run(true);
  expect_clean_ledger(spared);
  EXPECT_GT(spared.crash_seconds_deferred, 0u);
  ASSERT_EQ(spared.joins.size(), 1u);
  const auto unspared = run(false);
  EXPECT_FALSE(unspared.finished);
  EXPECT_EQ(unspared.crash_seconds_deferred, 0u);
}

// Links slower than the retransmission timer (every message takes 2.5 s, the timer 1 s): the simulator's stream
// transport holds a retransmission while the previous copy is on its way (once it arrived, only its acknowledgement
// can tell the sender so: a copy sent then is a duplicate the receiver recognises).
TEST(TrainChaos, ARetransmissionOfACopyStillOnItsWayIsHeld) {
  auto cfg = swarm();
  cfg.delay = [](train::NodeId, train::NodeId, uint64_t) { return 2.5; };
  TrainSim sim(cfg);
  const auto r = sim.run(1000);
  expect_clean_ledger(r);
  EXPECT_GT(r.retransmissions_held, 0u);
}

TEST(TrainChaos, TheSameSeedReplaysTheSameRun) {
  auto run = [](uint64_t seed) {
    auto cfg = swarm({2, 2, 2}, seed);
    cfg.loss_rate = 0.05;
    TrainSim sim(cfg);
    sim.crash_at(sim.stage_nodes(2).back(), 1.3);
    return sim.run(2000);
  };
  const auto a = run(7), b = run(7);
  EXPECT_EQ(a.time, b.time);
  EXPECT_EQ(a.messages, b.messages);
  EXPECT_EQ(a.work_tasks, b.work_tasks);
}

}  // namespace
}  // namespace gwtf::sim
