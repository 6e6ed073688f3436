// The runtime inside one process (actors/local_swarm): node actors in separate actor systems talk over loopback
// exactly as gwtf-node processes do, and each test kills an actor at a chosen point — the fault-injection test a
// user writes. Churn changes who computes, never what is learned: no microbatch is lost or counted twice, and the
// holders' losses equal the reference trainer's on the same data and schedule (1e-5 relative).
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <functional>
#include <set>

#include "kernels/model/memory_plan.hpp"
#include "tests/actors/swarm_fixture.hpp"

namespace gwtf {
namespace {

using json = nlohmann::json;
using train::ComputeKind;
using namespace std::chrono_literals;
using namespace fixture;

DieAt die(ComputeKind kind) { return DieAt{kind, 1, -1, true, true}; }  // iteration 1 or later

// Starts the founders (holders first, ids from 1), runs `churn`, waits for the end and checks the outcome.
// `setup` may change each founder's options before it starts.
void train_through(uint32_t holders, std::map<uint64_t, DieAt> dies,
                   const std::function<void(LocalSwarm&, const app::RunConfig&)>& churn = {},
                   const std::function<void(NodeOptions&)>& setup = {}) {
  app::set_compute_threads(1);
  const auto c = run(holders);
  LocalSwarm s;
  const uint64_t founders = c.layout().founders();
  for (uint64_t id = 1; id <= founders; ++id) {
    auto d = dies.find(id);
    auto opt = node(c, id, id <= holders ? train::Role::kData : train::Role::kRelay,
                    d == dies.end() ? std::optional<DieAt>{} : d->second);
    if (setup) setup(opt);
    auto port = s.start(std::move(opt));
    ASSERT_TRUE(port.ok()) << port.error();
  }
  if (churn) churn(s, c);
  if (!s.wait_all_exited(120s)) {
    for (uint64_t id = 1; id <= 200; ++id)
      if (auto ev = s.events->of(id); !ev.empty()) ADD_FAILURE() << "node " << id << " last: " << ev.back().dump();
    FAIL() << "the swarm did not finish";
  }
  std::set<uint64_t> killed;
  for (const auto& [id, d] : dies) {
    killed.insert(id);
    EXPECT_FALSE(s.events->saw(id, [](const json& e) { return is_event(e, "exit"); })) << "node " << id << " was not killed";
    EXPECT_TRUE(s.events->saw(1 + (id == 1), [&](const json& e) { return is_event(e, "peer_down") && e.value("peer", uint64_t{0}) == id; }))
        << "node " << id << " was never reported down";
  }
  expect_trained_like_reference(*s.events, c, 1, killed);
}

// Every exit event's count of frames sent on the bulk data path, by node.
std::map<uint64_t, uint64_t> bulk_frames_sent(const SwarmEvents& events) {
  std::map<uint64_t, uint64_t> sent;
  for (const auto& [id, list] : events.all())
    for (const auto& e : list)
      if (is_event(e, "exit")) sent[id] = e.value("bulk_frames_sent", uint64_t{0});
  return sent;
}

TEST(NodeActors, ASwarmInOneProcessTrainsLikeTheReferenceTrainer) {
  std::shared_ptr<SwarmEvents> events;
  train_through(1, {}, [&](LocalSwarm& s, const app::RunConfig&) { events = s.events; });
  // The tensors went on the bulk data path (actors/bulk_path), every node's.
  for (const auto& [id, sent] : bulk_frames_sent(*events)) EXPECT_GT(sent, 0u) << "node " << id;
}

// A node without the bulk data path (NodeOptions::bulk_path off: it announces no data port) in a swarm of nodes
// with it: its peers send it tensors on CAF, it sends everything on CAF, and the swarm trains like the reference.
TEST(NodeActors, ANodeWithoutTheBulkPathTrainsWithNodesThatHaveIt) {
  std::shared_ptr<SwarmEvents> events;
  train_through(
      1, {}, [&](LocalSwarm& s, const app::RunConfig&) { events = s.events; },
      [](NodeOptions& o) { o.bulk_path = o.id != 2; });
  const auto sent = bulk_frames_sent(*events);
  EXPECT_EQ(sent.at(2), 0u);
  EXPECT_GT(sent.at(1), 0u);
}

// Relays given just the memory for one microbatch in flight and two in recovery buffers (--memory): they offer one
// flow and turn work away beyond two buffered microbatches — and the swarm still trains like the reference.
TEST(NodeActors, RelaysWithLittleMemoryDeriveTheirCapacityAndBufferBudgetAndStillTrainLikeTheReference) {
  const auto c = run(1);
  const auto m = c.model();
  const auto f = model::relay_footprint(m.arch, m.shape, 1, 1, c.microbatch_size, c.seq_len, m.tied_head).value();
  std::shared_ptr<SwarmEvents> events;
  train_through(1, {}, [&](LocalSwarm& s, const app::RunConfig&) { events = s.events; },
                [&](NodeOptions& o) {
                  if (o.role == train::Role::kRelay) o.memory_bytes = f.fixed_bytes + f.activation_bytes + 2 * f.buffer_bytes;
                });
  ASSERT_NE(events, nullptr);
  for (uint64_t relay : {2, 3}) {
    const auto plans = events->of(relay);
    auto e = std::find_if(plans.begin(), plans.end(), [](const json& j) { return is_event(j, "memory_plan"); });
    ASSERT_NE(e, plans.end()) << "relay " << relay;
    EXPECT_EQ((*e)["capacity"], 1u);
    EXPECT_EQ((*e)["buffer_budget"], 2u);
  }
}

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
