// The runtime inside one process (actors/local_swarm): node actors in separate actor systems talk over loopback
// exactly as gwtf-node processes do, and each test kills an actor at a chosen point — the fault-injection test a
// user writes. Churn changes who computes, never what is learned: no microbatch is lost or counted twice, and the
// holders' losses equal the reference trainer's on the same data and schedule (1e-5 relative).
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <cstdlib>
#include <fstream>
#include <functional>

#include "actors/ledger_tally.hpp"
#include "actors/local_swarm.hpp"
#include "apps/common/run_config.hpp"

namespace gwtf {
namespace {

using json = nlohmann::json;
using train::ComputeKind;
using namespace std::chrono_literals;

app::RunConfig run(uint32_t holders) {
  app::RunConfig c;
  c.iterations = 5;
  c.microbatches = 4;
  c.microbatch_size = 2;
  c.seq_len = 32;
  c.holders = holders;
  c.replicas = {2};
  c.in_flight = 2;
  return c;
}

const model::Corpus& corpus() {
  static const model::Corpus c = [] {
    std::string text;
    for (int k = 0; k < 60; ++k) text += "Actors come and go; the microbatches flow on. Line " + std::to_string(k) + ".\n";
    return model::Corpus::from_text(text, 0.05).value();
  }();
  return c;
}

// The reference trainer does not depend on the number of holders: one curve for every layout.
const std::vector<double>& reference_losses() {
  static const std::vector<double> losses = model::train_local(run(1).reference_options(), corpus()).value().losses;
  return losses;
}

NodeOptions node(const app::RunConfig& c, uint64_t id, train::Role role, std::optional<DieAt> die = {}) {
  NodeOptions opt = app::node_options(c, corpus().train);
  opt.id = id;
  opt.role = role;
  opt.die_at = die;
  opt.linger = 1;
  opt.flow_period = 0.25;
  return opt;
}

DieAt die(ComputeKind kind) { return DieAt{kind, 1, -1, true, true}; }  // iteration 1 or later

// Starts the founders (holders first, ids from 1), runs `churn`, waits for the end and checks the outcome.
void train_through(uint32_t holders, std::map<uint64_t, DieAt> dies,
                   const std::function<void(LocalSwarm&, const app::RunConfig&)>& churn = {}) {
  app::set_compute_threads(1);
  const auto c = run(holders);
  LocalSwarm s;
  const uint64_t founders = c.layout().founders();
  for (uint64_t id = 1; id <= founders; ++id) {
    auto d = dies.find(id);
    auto port = s.start(node(c, id, id <= holders ? train::Role::kData : train::Role::kRelay,
                             d == dies.end() ? std::optional<DieAt>{} : d->second));
    ASSERT_TRUE(port.ok()) << port.error();
  }
  if (churn) churn(s, c);
  if (!s.wait_all_exited(120s)) {
    for (uint64_t id = 1; id <= 200; ++id)
      if (auto ev = s.events->of(id); !ev.empty()) ADD_FAILURE() << "node " << id << " last: " << ev.back().dump();
    FAIL() << "the swarm did not finish";
  }
  std::map<uint64_t, std::vector<json>> all;
  for (uint64_t id = 1; id <= 200; ++id)
    if (auto ev = s.events->of(id); !ev.empty()) all[id] = std::move(ev);
  for (const auto& [id, d] : dies) {
    EXPECT_FALSE(s.events->saw(id, [](const json& e) { return is_event(e, "exit"); })) << "node " << id << " was not killed";
    EXPECT_TRUE(s.events->saw(1 + (id == 1), [&](const json& e) { return is_event(e, "peer_down") && e.value("peer", uint64_t{0}) == id; }))
        << "node " << id << " was never reported down";
  }
  const auto ledger = tally_ledger(all, c.microbatches, c.iterations);
  EXPECT_EQ(ledger.lost, 0u);
  EXPECT_EQ(ledger.duplicated, 0u);
  std::map<uint64_t, double> losses;
  for (const auto& e : s.events->of(1))
    if (is_event(e, "train", "stepped")) losses[e.value("iter", uint64_t{0})] = e.value("value", 0.0);
  const auto& ref = reference_losses();
  ASSERT_EQ(losses.size(), ref.size());
  bool same = true;
  for (const auto& [i, l] : losses) {
    EXPECT_NEAR(l, ref[i], 1e-5 * std::abs(ref[i])) << "iteration " << i;
    same = same && std::abs(l - ref[i]) <= 1e-5 * std::abs(ref[i]);
  }
  if (!same && std::getenv("GWTF_DUMP_EVENTS")) {  // every node's events, for the post-mortem
    std::ofstream dump(std::getenv("GWTF_DUMP_EVENTS"));
    for (const auto& [id, events] : all)
      for (const auto& e : events) dump << e.dump() << "\n";
  }
  for (const auto& [id, events] : all) {
    if (dies.count(id)) continue;
    EXPECT_TRUE(s.events->saw(id, [](const json& e) { return is_event(e, "exit") && e.value("code", -1) == 0; }))
        << "node " << id << " ended with " << events.back().dump();
  }
}

TEST(NodeActors, ASwarmInOneProcessTrainsLikeTheReferenceTrainer) { train_through(1, {}); }

TEST(NodeActors, ARelayKilledDuringForward) { train_through(1, {{2, die(ComputeKind::kForward)}}); }

TEST(NodeActors, ARelayKilledDuringAggregation) { train_through(1, {{3, die(ComputeKind::kSnapshot)}}); }

TEST(NodeActors, ADataHolderKilledAsItComputesALoss) { train_through(2, {{2, die(ComputeKind::kEndBackward)}}); }

TEST(NodeActors, ARelayKilledDuringBackwardThenAJoinerServesItsStage) {
  train_through(1, {{2, die(ComputeKind::kBackward)}}, [](LocalSwarm& s, const app::RunConfig& c) {
    ASSERT_TRUE(s.events->wait(
        [](const auto& all) {
          auto it = all.find(3);
          if (it == all.end()) return false;
          for (const auto& e : it->second)
            if (is_event(e, "peer_down") && e.value("peer", 0) == 2) return true;
          return false;
        },
        60s));
    ASSERT_TRUE(s.start(node(c, 4, train::Role::kRelay)).ok());  // placed on the stage that lacks capacity: 1
    ASSERT_TRUE(s.wait_all_exited(120s));
    EXPECT_TRUE(s.events->saw(4, [](const json& e) { return is_event(e, "member") && e.value("joining", false); }));
    EXPECT_TRUE(s.events->saw(4, [](const json& e) { return is_event(e, "train", "joined"); }))
        << "the newcomer never imported the state";
  });
}

}  // namespace
}  // namespace gwtf
