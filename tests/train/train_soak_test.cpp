// Randomized soak of the training protocol: from a seed, random crashes of relays and holders (at least one node
// per stage survives), slow nodes presumed dead, message loss, newcomers joining relay stages (soak_world.hpp).
// Every run must commit every iteration with a clean ledger. A failure prints the seed and where it stalled;
// GWTF_SOAK_SEED=S replays exactly that run (with GWTF_TRACE=1: traced), GWTF_SOAK_RUNS=N sets how many seeds (the
// short CI form runs 300; `scripts/soak` runs 15,000 from a random first seed).
#include "kernels/sim/train_sim.hpp"
#include "tests/train/soak_world.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

namespace gwtf::sim {
namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

uint64_t event_count(const TrainSimReport& r, const char* event) {
  auto e = r.events.find(event);
  return e == r.events.end() ? 0 : e->second;
}

TrainSimReport soak_run(uint64_t seed, bool leaves = true) {
  auto world = testing::soak_world(seed, leaves);
  if (std::getenv("GWTF_TRACE")) world.config.trace = &std::cout;  // every message, task and event of a replay
  TrainSim sim(world.config);
  world.churn(sim);
  return sim.run(10000);
}

// Seeds first .. first+runs-1. CI: seeds 1..300. scripts/soak: GWTF_SOAK_SCALE x 300 seeds from a random first
// seed (printed). GWTF_SOAK_SEED=S replays exactly one run.
TEST(TrainSoak, RandomChurnNeverLosesOrDoublesAMicrobatch) {
  uint64_t first = env_or("GWTF_SOAK_FIRST", 1);
  if (const char* f = std::getenv("GWTF_SOAK_FIRST"); f && std::string(f) == "random")
    first = std::random_device{}() % 1000000 + 1;
  if (std::getenv("GWTF_SOAK_SEED")) first = env_or("GWTF_SOAK_SEED", 1);
  const uint64_t runs =
      std::getenv("GWTF_SOAK_SEED") ? 1 : env_or("GWTF_SOAK_RUNS", 300) * env_or("GWTF_SOAK_SCALE", 1);
  std::printf("train soak: seeds %llu..%llu\n", static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(first + runs - 1));
  uint64_t failures = 0, departures = 0, retractions = 0, busy = 0, over = 0;
  for (uint64_t seed = first; seed < first + runs && failures < 5; ++seed) {
    TrainSimReport r;
    try {
      r = soak_run(seed);
    } catch (const std::exception& e) {  // a bug, named with the seed that replays it
      ++failures;
      ADD_FAILURE() << "seed " << seed << " (replay: GWTF_SOAK_SEED=" << seed << "): threw " << e.what();
      continue;
    }
    departures += r.departures;
    retractions += event_count(r, "retracted");
    busy += event_count(r, "busy");
    over += event_count(r, "over-budget");
    if (r.finished && r.violations.empty()) continue;
    ++failures;
    ADD_FAILURE() << "seed " << seed << " (replay: GWTF_SOAK_SEED=" << seed << "): "
                  << (r.finished ? "" : "did not finish by t=" + std::to_string(r.time) + ": " + r.stall + "; ")
                  << (r.events.count("double-contribution") ? "a stage saw a double contribution; " : "")
                  << (r.violations.empty() ? "" : r.violations.front());
  }
  std::printf("train soak: %llu graceful departures, %llu retracted double contributions, %llu microbatches turned "
              "away at a buffer budget, %llu taken beyond one\n",
              static_cast<unsigned long long>(departures), static_cast<unsigned long long>(retractions),
              static_cast<unsigned long long>(busy), static_cast<unsigned long long>(over));
}

// Seeds the soak once found stalled: a microbatch recomputed through a second replica of a later stage after the
// path to the first copy died, and no rule to drop one of the two. The stage's leader now has one retracted
// (Retract); each of these must finish clean, and together they go through retractions. 369 joined when the
// sharded reduce's timing took three of the five past theirs (it retracts three times itself), 1918 when redos
// that a stage's applied step made useless stopped (StepApplied) and with them every retraction of the others
// (1918 retracts three times).
TEST(TrainSoak, SeedsThatOnceStalledOnADoubleContributionFinish) {
  uint64_t retracted = 0;
  for (uint64_t seed : {103496, 123822, 162251, 166558, 246886, 369, 1918}) {
    const auto r = soak_run(seed, /*leaves=*/false);  // the worlds as they were found
    EXPECT_TRUE(r.finished) << "seed " << seed << ": " << r.stall;
    for (const auto& v : r.violations) ADD_FAILURE() << "seed " << seed << ": " << v;
    retracted += event_count(r, "retracted");
  }
  EXPECT_GE(retracted, 3u);
}

// Stalls the soak found once it drew graceful leaves and buffer budgets, each fixed:
//  2429: a member that had applied a dying leader's result and then led the stage announced the step without
//        passing the result on; a member that had dropped the dead leader's copy never applied it, and once the
//        new leader left (gracefully) nobody could give it. The new leader now hands it to every member.
//  63767: a relay at its budget acknowledged an activation and then said Busy; the Busy was lost and the sender
//        died, and its upstream, told the busy relay had the microbatch, never redid it. Busy now replaces the
//        acknowledgement.
//  26304: a newcomer's Ready to its stage's leader was lost and the leader died before retransmitting it, after
//        announcing a step whose Committed to the newcomer was lost too: the newcomer never learned that its stage
//        stepped and waited forever for that step's gradient. A new leader now repeats the last announcement.
//  83450: a newcomer imported a donor's state that held a step its stage had not announced (a member had not
//        assembled it: a reduced slice was lost), then the donor, the stage's leader, died: the member redid the
//        iteration and asked the newcomer, which was past it and had no log entry to answer with. A donor now
//        offers only a state whose steps its stage announced.
//  116925: a holder that took over a dead holder's microbatch got its stage-1 relay's gradient before the relay's
//        answer to WhoHolds, and dropped the path that answer told (the relay's own announcement was lost); the
//        relay died, then the stage-2 node mid-reduce: nobody regenerated the microbatch and stage 2 waited
//        forever for it. The answer's path is now kept.
//  360061: the last relay stage's node died after its stage stepped, its announcement that the holder received
//        its output lost; the holder died too, and the relay before it, knowing no path after the dead node, saw
//        nothing to redo: the new owner never got the end part. A relay now takes the owner after a last-stage
//        node as unconfirmed unless told otherwise.
//  137241: a holder that took over a dead holder's microbatch held a short path (the stage-1 relay's announcement
//        lost, the relay dead) though it knew the stage-2 node that sent it the end part; that node died before its
//        stage stepped, and nobody redid the microbatch. The end part's sender now ends a short path. (Found once
//        StepApplied messages changed which messages the soak loses.)
//  192141: a member applied a step from a leader whose Ready had never reached it (it took another member for
//        its leader) and said so (StepApplied); that leader died, the holder left out its redo on that word, and
//        the member, seeing no leader die, never handed the step to the new one, which waited for the microbatch
//        forever. A member now hands a step to its leader when the step's own leader dies.
//  386197: a relay's backward failed twice (a poisoned device) after its only sender had died; it gave the
//        microbatch back to nobody and forgot it, while the path before counted on it holding it. Work whose
//        senders are all dead is now retried where it is — a relay's: a holder retrying its end part from a sender
//        found dead just after sending a corrupt output retried forever (92064); it gives it back as before.
//  574310: a newcomer that had answered a leader's Collect before it served, ready after that leader died, was
//        made a recipient of the new leader's plan and ignored it (it took its old attempt for current): the new
//        leader waited for its assembly forever. A member with no work now takes up a plan whose attempt
//        replaces a dead leader's.
//  645766, 671905, 774562: a relay's work failed twice (a poisoned device) and it gave the microbatch back to
//        its sender, which had died before the relay knew: the Busy was lost with it, and the path before counted
//        on the relay. A relay now keeps what it gave back until a sender acknowledges, and takes it back when
//        every sender it went to dies first.
//  1055771: ... and its next hop died while the microbatch was given back: that death's redo was left out, and
//        the next stage lost its part. Taking a microbatch back redoes it for a next hop dead meanwhile.
TEST(TrainSoak, SeedsFoundWithLeavesAndBudgetsFinish) {
  for (uint64_t seed : {2429, 63767, 26304, 83450, 116925, 360061, 137241, 192141, 386197, 92064, 574310, 645766,
                        671905, 774562, 1055771}) {
    const auto r = soak_run(seed);
    EXPECT_TRUE(r.finished) << "seed " << seed << ": " << r.stall;
    for (const auto& v : r.violations) ADD_FAILURE() << "seed " << seed << ": " << v;
  }
}

// Open (docs/training.md, "Open: a step that died with its only holders"): the holders' step of iteration 0 died
// with the only holder that applied it, after stages 1 and 2 had stepped iteration 1; the last holder's redo needs
// them to replay iteration 0, and they keep one step of old weights only. Enable it with the fix.
TEST(TrainSoak, DISABLED_AStepThatDiedWithItsOnlyHoldersIsRedoneAfterTheOthersMovedOn) {
  const auto r = soak_run(1109637);
  EXPECT_TRUE(r.finished) << r.stall;
  for (const auto& v : r.violations) ADD_FAILURE() << v;
}

}  // namespace
}  // namespace gwtf::sim
