// The runtime inside one process: node actors in separate actor systems talk over loopback exactly as gwtf-node
// processes do, and a test kills an actor — the fault-injection test a user writes. Churn changes who computes,
// never what is learned: the holders' losses equal the reference trainer's on the same data and schedule.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "actors/node_actor.hpp"
#include "actors/system_config.hpp"
#include "apps/common/run_config.hpp"

namespace gwtf {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

app::RunConfig run() {
  app::RunConfig c;
  c.iterations = 5;
  c.microbatches = 4;
  c.microbatch_size = 2;
  c.seq_len = 32;
  c.holders = 1;
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

const std::vector<double>& reference_losses() {
  static const std::vector<double> losses = model::train_local(run().reference_options(), corpus()).value().losses;
  return losses;
}

// Every node's events, as its observer receives them.
struct Watch {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::vector<json>> events;

  bool saw(uint64_t node, const std::function<bool(const json&)>& what) {
    for (const auto& e : events[node])
      if (what(e)) return true;
    return false;
  }
  // Waits until `done` holds (checked under the lock) or the deadline passes.
  bool wait(const std::function<bool()>& done, std::chrono::seconds limit = 120s) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, limit, done);
  }
};

caf::behavior watcher(caf::event_based_actor*, std::shared_ptr<Watch> w) {
  return {[w](NodeEvent& e) {
    std::lock_guard<std::mutex> lock(w->mu);
    w->events[e.node].push_back(json::parse(e.json));
    w->cv.notify_all();
  }};
}

// A swarm inside this process: one actor system per node (each a distinct CAF node), over real loopback sockets.
class Swarm {
 public:
  Swarm() { at::set_num_threads(1); }
  ~Swarm() {
    for (auto& n : nodes_) caf::anon_send_exit(n.watcher, caf::exit_reason::user_shutdown);
    for (auto& n : nodes_) caf::anon_send_exit(n.actor, caf::exit_reason::user_shutdown);
    nodes_.clear();  // each system waits for its actors
  }

  // Starts a node; `seed` 0: it founds the swarm.
  uint64_t start(uint64_t id, train::Role role, train::Stage stage, uint16_t seed, std::optional<DieAt> die = {}) {
    Node n;
    n.config = std::make_unique<SystemConfig>();
    n.system = std::make_unique<caf::actor_system>(*n.config);
    n.watcher = n.system->spawn(watcher, watch);
    NodeOptions opt = app::node_options(run(), corpus().train);
    opt.id = id;
    opt.role = role;
    opt.stage = stage;
    opt.die_at = die;
    opt.linger = 1;
    opt.observer = n.watcher;
    if (seed) opt.seeds = {{"127.0.0.1", seed}};
    auto started = start_node(*n.system, opt, 0, std::make_shared<NodeOutcome>());
    EXPECT_TRUE(started.ok()) << started.error();
    n.actor = started->actor;
    n.port = started->port;
    nodes_.push_back(std::move(n));
    return id;
  }
  uint16_t port(size_t k) const { return nodes_.at(k).port; }

  std::shared_ptr<Watch> watch = std::make_shared<Watch>();

 private:
  struct Node {
    std::unique_ptr<SystemConfig> config;
    std::unique_ptr<caf::actor_system> system;
    caf::actor watcher, actor;
    uint16_t port = 0;
  };
  std::vector<Node> nodes_;
};

bool is(const json& e, const char* event, const char* kind = nullptr) {
  return e.value("event", "") == event && (!kind || e.value("kind", "") == kind);
}

std::map<uint64_t, double> holder_losses(Watch& w, uint64_t holder) {
  std::lock_guard<std::mutex> lock(w.mu);
  std::map<uint64_t, double> out;
  for (const auto& e : w.events[holder])
    if (is(e, "train", "stepped")) out[e.value("iter", uint64_t{0})] = e.value("value", 0.0);
  return out;
}

void expect_reference_losses(const std::map<uint64_t, double>& losses) {
  const auto& ref = reference_losses();
  ASSERT_EQ(losses.size(), ref.size());
  for (const auto& [i, l] : losses) EXPECT_NEAR(l, ref[i], 1e-5 * std::abs(ref[i])) << "iteration " << i;
}

TEST(NodeActors, ASwarmInOneProcessTrainsLikeTheReferenceTrainer) {
  Swarm s;
  s.start(1, train::Role::kData, 0, 0);
  s.start(2, train::Role::kRelay, 1, s.port(0));
  s.start(3, train::Role::kRelay, 1, s.port(0));
  auto& w = *s.watch;
  ASSERT_TRUE(w.wait([&] { return w.saw(1, [](const json& e) { return is(e, "exit"); }) &&
                                  w.saw(2, [](const json& e) { return is(e, "exit"); }) &&
                                  w.saw(3, [](const json& e) { return is(e, "exit"); }); }))
      << "the swarm did not finish";
  expect_reference_losses(holder_losses(w, 1));
  for (uint64_t n : {1, 2, 3})
    EXPECT_TRUE(w.saw(n, [](const json& e) { return is(e, "exit") && e.value("code", -1) == 0; })) << "node " << n;
}

TEST(NodeActors, ARelayActorKilledMidBackwardThenAJoinerChangeNothingLearned) {
  Swarm s;
  s.start(1, train::Role::kData, 0, 0);
  s.start(2, train::Role::kRelay, 1, s.port(0), DieAt{train::ComputeKind::kBackward, 1, -1, true});
  s.start(3, train::Role::kRelay, 1, s.port(0));
  auto& w = *s.watch;
  ASSERT_TRUE(w.wait([&] { return w.saw(3, [](const json& e) { return is(e, "peer_down") && e.value("peer", 0) == 2; }); }))
      << "the killed relay was never reported down";
  s.start(4, train::Role::kRelay, 0, s.port(0));  // a newcomer, placed on the stage that lacks capacity: 1
  ASSERT_TRUE(w.wait([&] { return w.saw(1, [](const json& e) { return is(e, "exit"); }) &&
                                  w.saw(3, [](const json& e) { return is(e, "exit"); }) &&
                                  w.saw(4, [](const json& e) { return is(e, "exit"); }); }))
      << "the swarm did not finish after the kill";
  expect_reference_losses(holder_losses(w, 1));
  std::lock_guard<std::mutex> lock(w.mu);
  EXPECT_FALSE(w.saw(2, [](const json& e) { return is(e, "exit"); })) << "the killed node left in order";
  EXPECT_TRUE(w.saw(1, [](const json& e) { return is(e, "train", "redo"); })) << "nobody redid the dead relay's work";
  EXPECT_TRUE(w.saw(4, [](const json& e) { return is(e, "member") && e.value("stage", 0) == 1 && e.value("joining", false); }));
  EXPECT_TRUE(w.saw(4, [](const json& e) { return is(e, "train", "joined"); })) << "the newcomer never imported the state";
}

}  // namespace
}  // namespace gwtf
