// A TLS swarm in one process (actors/local_swarm) trains while a member of its CA turns hostile: it joins, then
// sends every node random bytes, mutated frames, frames with impossible declared lengths, tensors of the wrong
// shape, NaN gradients, frames in another node's name and floods of requests. Each node keeps running, refuses
// each bad frame (counted, with logged reasons), and the swarm's losses stay those of the reference trainer with
// nothing lost or counted twice. A stranger (a certificate of another CA, or no TLS at all) cannot even connect.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <unistd.h>

#include "actors/bulk_path.hpp"
#include "actors/frame_io.hpp"
#include "actors/system_config.hpp"
#include "kernels/wire/tensor_codec.hpp"
#include "tests/actors/swarm_fixture.hpp"
#include "tests/actors/tls_credentials.hpp"

namespace gwtf {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using namespace fixture;

// The hostile member: its own actor system (a distinct CAF node), a blocking actor that connects and sends.
class Peer {
 public:
  Peer(std::shared_ptr<const SwarmTls> tls, uint64_t swarm_id)
      : tls_(tls), swarm_id_(swarm_id), config_(runtime(tls)), sys_(config_), self_(sys_),
        auth_(tls, swarm_id, tls ? tls->node_id() : 0, to_string(sys_.node())) {}

  uint64_t id() const { return tls_ ? tls_->node_id() : 0; }

  // The node listening on `port`, or why it cannot be reached (bounded: CAF's connect may otherwise hang). Tried
  // `attempts` times, as gwtf-node retries its connects (a loaded host may time a handshake out).
  Result<caf::actor, std::string> connect(uint16_t port, int attempts = 5) {
    auto mm = tls_ ? sys_.openssl_manager().actor_handle() : sys_.middleman().actor_handle();
    Result<caf::actor, std::string> out = Err{std::string("no answer")};
    for (int k = 0; k < attempts; ++k) {
      self_->request(mm, 5s, caf::connect_atom::value, std::string("127.0.0.1"), port)
          .receive([&](const caf::node_id&, caf::strong_actor_ptr& p,
                       const std::set<std::string>&) { out = caf::actor_cast<caf::actor>(p); },
                   [&](caf::error& e) { out = Err{sys_.render(e)}; });
      if (out || out.error().find("handshake") != std::string::npos) break;  // refused: no point in retrying
      std::this_thread::sleep_for(200ms);
    }
    return out;
  }
  void raw(const caf::actor& to, std::vector<char> bytes) { self_->send(to, Frame{std::move(bytes)}); }
  void send(const caf::actor& to, const wire::Body& body, uint64_t sender = 0) {
    raw(to, make_frame({0, swarm_id_, sender ? sender : id()}, body).bytes);
  }
  // A frame as this member would send it (in `sender`'s name when given).
  std::vector<char> frame(const wire::Body& body, uint64_t sender = 0) const {
    return make_frame({0, swarm_id_, sender ? sender : id()}, body).bytes;
  }
  // This member's proof to `to`, as the first frame of a bulk connection to it.
  std::vector<char> proof_frame(const caf::actor& to) const {
    return frame(wire::MembershipMessage{auth_.proof(to_string(to.node()))});
  }
  const std::shared_ptr<const SwarmTls>& tls() const { return tls_; }
  // This member's proof to `to` (the first frame on the connection, as every node sends it).
  void prove(const caf::actor& to) {
    send(to, wire::MembershipMessage{*auth_.proof_for(to.address(), to_string(to.node()))});
  }
  // A proof of this member's certificate for another node's id (an impersonation attempt).
  void prove_as(const caf::actor& to, uint64_t victim) {
    const uint64_t inc = tls_->incarnation;
    send(to,
         wire::MembershipMessage{train::Proof{
             tls_->credentials.cert_pem(), inc,
             tls_->credentials.sign(auth::proof_payload(swarm_id_, victim, inc, to_string(to.node())))}},
         victim);
  }

 private:
  static RuntimeOptions runtime(std::shared_ptr<const SwarmTls> tls) {
    RuntimeOptions r;
    r.tls = std::move(tls);
    return r;
  }
  std::shared_ptr<const SwarmTls> tls_;
  uint64_t swarm_id_;
  SystemConfig config_;
  caf::actor_system sys_;
  caf::scoped_actor self_;
  PeerAuth auth_;
};

// A train message carrying `tensor` (blob 1).
wire::Body train_message(train::Body body, const at::Tensor& tensor, std::vector<wire::HeldTensor>& keep) {
  keep.push_back(wire::hold_for_wire(tensor).value());
  return wire::TrainMessage{train::Message{0, 0, 1, std::move(body)}, {keep.back().view}};
}

// The frames every node is sent, and how many of them it must refuse whatever the mutations do.
struct Attack {
  std::vector<std::pair<wire::Body, uint64_t>> bodies;  // body, claimed sender (0: the peer's own id)
  std::vector<std::vector<char>> raw;
  uint64_t surely_refused = 0;
};

Attack make_attack(const app::RunConfig& c, uint64_t swarm_id, uint64_t peer, uint64_t impersonated, bool to_holder,
                   std::mt19937_64& rng, std::vector<wire::HeldTensor>& keep) {
  Attack a;
  const int64_t d = c.model().shape.d_model;
  auto byte = [&] { return static_cast<char>(rng() & 0xff); };
  // Random bytes.
  for (int k = 0; k < 40; ++k) {
    std::vector<char> b(rng() % 600);
    for (auto& x : b) x = byte();
    a.raw.push_back(std::move(b));
  }
  a.surely_refused += 40;
  // Valid frames with a few bytes changed (heartbeats, capacity updates, a hello): refused or harmless.
  const auto heartbeat = make_frame({0, swarm_id, peer}, wire::Heartbeat{7, 1, 0, 0, 0}).bytes;
  const auto capacity = make_frame({0, swarm_id, peer}, wire::CapacityUpdate{1, 4, 0, 1000, 0}).bytes;
  for (int k = 0; k < 40; ++k) {
    auto b = k % 2 ? heartbeat : capacity;
    for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    a.raw.push_back(std::move(b));
  }
  // Declared lengths beyond the frame: the segment table says 2^28 words.
  for (int k = 0; k < 10; ++k) {
    auto b = heartbeat;
    const uint32_t huge = 1u << 28;
    std::memcpy(b.data() + 4, &huge, 4);
    a.raw.push_back(std::move(b));
  }
  a.surely_refused += 10;
  // Tensors of the wrong shape and NaN gradients, for every microbatch of the first iterations: the work a holder
  // expects from stage 1 (which this member joined), and what a relay would compute.
  const auto wrong = torch::ones({1, 2, 3});
  const auto nan = torch::full({c.microbatch_size, c.seq_len, d}, std::numeric_limits<float>::quiet_NaN());
  for (train::Iter i = 0; i < 2; ++i)
    for (train::Mb mb = 0; mb < c.microbatches; ++mb) {
      if (to_holder) {
        a.bodies.push_back({train_message(train::Gradient{i, mb, 1}, nan, keep), 0});
        a.bodies.push_back({train_message(train::Activation{i, mb, 1, {}, false}, wrong, keep), 0});
      } else {
        a.bodies.push_back({train_message(train::Activation{i, mb, 1, {}, false}, nan, keep), 0});
        a.bodies.push_back({train_message(train::Gradient{i, mb, 1}, wrong, keep), 0});
      }
      a.surely_refused += 2;
    }
  // In another node's name, over this member's connection.
  a.bodies.push_back({wire::Heartbeat{1, 1, 0, 0, 0}, impersonated});
  a.surely_refused += 1;
  // A flood: heartbeats (each echoed) and capacity updates.
  for (int k = 0; k < 1500; ++k) a.bodies.push_back({wire::Heartbeat{static_cast<uint64_t>(k + 10), 1, 0, 0, 0}, 0});
  return a;
}

uint64_t frames_rejected(const LocalSwarm& s, uint64_t id) {
  for (const auto& e : s.events->of(id))
    if (is_event(e, "exit")) return e.value("frames_rejected", uint64_t{0});
  return 0;
}

bool refused_because(const LocalSwarm& s, uint64_t id, const std::string& why) {
  return s.events->saw(id, [&](const json& e) {
    return is_event(e, "refused_frame") && e.value("why", std::string()).find(why) != std::string::npos;
  });
}

TEST(HostilePeer, AMemberSendingGarbageIsRefusedFrameByFrameAndTheSwarmTrainsOn) {
  app::set_compute_threads(1);
  const char* given = std::getenv("GWTF_HOSTILE_SEED");
  const uint64_t seed = given ? std::stoull(given) : std::random_device{}();
  SCOPED_TRACE("replay with GWTF_HOSTILE_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  testing::Credentials creds{"hostile"};
  const auto c = run(1);
  LocalSwarm s;
  std::vector<uint64_t> ids;
  std::vector<uint16_t> ports;
  for (const char* name : {"holder", "relay-a", "relay-b"}) {
    NodeOptions opt = node(c, 0, ids.empty() ? train::Role::kData : train::Role::kRelay);
    opt.tls = creds.issue(name);
    opt.id = opt.tls->node_id();
    ids.push_back(opt.id);
    auto port = s.start(opt);
    ASSERT_TRUE(port.ok()) << port.error();
    ports.push_back(port.value());
  }
  // Once training runs (a hello before would take a founder's slot), the member joins and attacks.
  ASSERT_TRUE(s.events->wait(
      [&](const auto& all) {
        auto it = all.find(ids[0]);
        return it != all.end() && std::any_of(it->second.begin(), it->second.end(),
                                              [](const json& e) { return is_event(e, "member"); });
      },
      60s));
  Peer mallory(creds.issue("mallory"), c.swarm_id);
  std::vector<caf::actor> targets;
  for (uint16_t port : ports) {
    auto h = mallory.connect(port);
    ASSERT_TRUE(h) << h.error();
    targets.push_back(h.value());
    // First, on a fresh connection, this member's certificate with the holder's id: the proof does not verify.
    if (targets.size() == 2) mallory.prove_as(h.value(), ids[0]);
    mallory.prove(h.value());
  }
  const NodeOptions like = node(c, 0, train::Role::kRelay);
  mallory.send(targets[0], wire::MembershipMessage{train::Hello{mallory.id(), train::Role::kRelay, 1, "127.0.0.1", 9,
                                                                like.config_hash, 0}});
  // Every node learns of the new member (the holder admits it and tells the others) before the garbage comes: from
  // a non-member it would be refused for that alone, never reaching the tensor checks.
  ASSERT_TRUE(s.events->wait(
      [&](const auto& all) {
        for (uint64_t id : ids) {
          auto it = all.find(id);
          if (it == all.end() || std::none_of(it->second.begin(), it->second.end(), [&](const json& e) {
                return (is_event(e, "peer_joining") || is_event(e, "admitted")) &&
                       e.value("peer", uint64_t{0}) == mallory.id();
              }))
            return false;
        }
        return true;
      },
      30s))
      << "the hostile member was never admitted";
  std::vector<uint64_t> surely(targets.size());
  std::vector<wire::HeldTensor> keep;
  for (size_t t = 0; t < targets.size(); ++t) {
    auto attack = make_attack(c, c.swarm_id, mallory.id(), ids[(t + 1) % ids.size()], t == 0, rng, keep);
    for (auto& r : attack.raw) mallory.raw(targets[t], std::move(r));
    for (const auto& [body, sender] : attack.bodies) mallory.send(targets[t], body, sender);
    for (int k = 0; k < 100; ++k)  // a flood of hellos: each answered with the same place, nothing announced twice
      mallory.send(targets[0], wire::MembershipMessage{train::Hello{mallory.id(), train::Role::kRelay, 1, "127.0.0.1",
                                                                    9, like.config_hash, 0}});
    surely[t] = attack.surely_refused;
  }
  // The bulk data path of relay-a (its port from its start event): a connection that proves nothing, one that
  // proves this member and then speaks for the holder or sends a control message, and one that proves this
  // member's certificate for the holder's id.
  uint16_t data_port = 0;
  for (const auto& e : s.events->of(ids[1]))
    if (is_event(e, "start")) data_port = e.value("data_port", uint16_t{0});
  ASSERT_NE(data_port, 0) << "relay-a has no bulk data path";
  auto bulk = BulkPath::open(caf::actor_addr{}, {"127.0.0.1", 0, mallory.tls()}).value();
  const auto nan = torch::full({c.microbatch_size, c.seq_len, c.model().shape.d_model},
                               std::numeric_limits<float>::quiet_NaN());
  auto activation = [&](uint64_t sender) {
    return mallory.frame(train_message(train::Activation{0, 0, 1, {}, false}, nan, keep), sender);
  };
  const std::vector<std::pair<std::vector<char>, std::vector<std::vector<char>>>> connections{
      {{}, {activation(0)}},
      {mallory.proof_frame(targets[1]), {activation(ids[0]), mallory.frame(wire::Heartbeat{1, 1, 0, 0, 0})}},
  };
  for (size_t k = 0; k < connections.size(); ++k) {
    bulk->connect(100 + k, "127.0.0.1", data_port, connections[k].first);
    for (auto f : connections[k].second) ASSERT_TRUE(bulk->send(100 + k, f));
  }
  ASSERT_TRUE(s.wait_all_exited(120s)) << "the swarm did not finish under attack";
  expect_trained_like_reference(*s.events, c, ids[0], {});
  EXPECT_TRUE(refused_because(s, ids[1], "on a bulk connection that has not proved node"));
  EXPECT_TRUE(refused_because(s, ids[1], "in the name of node " + std::to_string(ids[0]) + " on its bulk connection"));
  EXPECT_TRUE(refused_because(s, ids[1], "heartbeat from node " + std::to_string(mallory.id()) +
                                             " on the bulk data path"));
  for (size_t t = 0; t < targets.size(); ++t) {
    EXPECT_GE(frames_rejected(s, ids[t]), surely[t]) << "node " << t;
    EXPECT_TRUE(refused_because(s, ids[t], "shape")) << "node " << t;
    EXPECT_TRUE(refused_because(s, ids[t], "NaN")) << "node " << t;
  }
  EXPECT_TRUE(refused_because(s, ids[1], "is not the id of certificate 'mallory'"));
  EXPECT_TRUE(s.events->saw(ids[0], [&](const json& e) {
    return is_event(e, "admitted") && e.value("peer", uint64_t{0}) == mallory.id();
  })) << "the hostile peer was never a member: its train messages were not even looked at";
}

TEST(HostilePeer, StrangersCannotConnectToATlsSwarm) {
  testing::Credentials creds{"hostile"};
  const auto c = run(1);
  LocalSwarm s;
  NodeOptions opt = node(c, 0, train::Role::kData);
  opt.tls = creds.issue("holder");
  opt.id = opt.tls->node_id();
  auto port = s.start(opt);
  ASSERT_TRUE(port.ok()) << port.error();
  Peer rogue(creds.issue("rogue", creds.rogue_ca), c.swarm_id);  // the same swarm name, another CA
  auto r = rogue.connect(port.value());
  EXPECT_FALSE(r) << "a certificate of another CA connected";
  Peer plain(nullptr, c.swarm_id);
  auto p = plain.connect(port.value());
  EXPECT_FALSE(p) << "a plain-text peer connected";
  if (!r) {
    EXPECT_NE(r.error().find("handshake"), std::string::npos) << r.error();
  }
}

}  // namespace
}  // namespace gwtf
