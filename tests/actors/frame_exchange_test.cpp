// Two actor systems in one process, connected by CAF's middleman over loopback TCP, exchange frames both ways:
// small control messages, a 16 MiB tensor, and garbage that the receiver must drop while staying up.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <numeric>

#include "actors/frame_io.hpp"
#include "actors/system_config.hpp"

namespace gwtf {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kSwarm = 2024;

wire::DecodeOptions options() {
  wire::DecodeOptions o;
  o.swarm_id = kSwarm;
  return o;
}

// A stage-like peer: answers an activation with a gradient of the same shape whose bytes are the activation's
// bytes reversed (so the reply proves it read every byte), a heartbeat with its echo, and drops bad frames.
caf::behavior reflector(caf::stateful_actor<FrameStats>* self) {
  return {
      [self](Frame& in) -> caf::result<Frame> {
        auto msg = open_frame(in, options(), self->state, "test peer");
        if (!msg) return caf::sec::invalid_argument;
        const wire::Header me{0, kSwarm, 2};
        if (auto* a = std::get_if<wire::Activation>(&msg->body)) {
          std::vector<char> reversed(reinterpret_cast<const char*>(a->tensor.data),
                                     reinterpret_cast<const char*>(a->tensor.data) + a->tensor.nbytes);
          std::reverse(reversed.begin(), reversed.end());
          wire::Gradient g;
          static_cast<wire::StageTensor&>(g) = *a;
          g.tensor.data = reinterpret_cast<const std::byte*>(reversed.data());
          return make_frame(me, g);
        }
        if (auto* h = std::get_if<wire::Heartbeat>(&msg->body)) {
          return make_frame(me, wire::Heartbeat{h->seq + 1, 0, h->seq, h->sent_at_ns, 5});
        }
        return caf::sec::unexpected_message;
      },
      [self](caf::get_atom) { return std::make_tuple(self->state.accepted, self->state.rejected); },
  };
}

class FrameExchange : public ::testing::Test {
 protected:
  void SetUp() override {
    server = sys_b.spawn(reflector);
    auto port = sys_b.middleman().publish(server, 0, "127.0.0.1");
    ASSERT_TRUE(port) << sys_b.render(port.error());
    auto proxy = sys_a.middleman().remote_actor("127.0.0.1", *port);
    ASSERT_TRUE(proxy) << sys_a.render(proxy.error());
    remote = *proxy;
    ASSERT_NE(remote.node(), sys_a.node()) << "expected a proxy to the other system, got a local actor";
  }
  void TearDown() override {
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    remote = nullptr;
  }

  // Sends a frame to the remote peer and waits for its answer.
  std::optional<wire::Message> ask(Frame f) {
    caf::scoped_actor self{sys_a};
    std::optional<wire::Message> out;
    self->request(remote, 30s, std::move(f))
        .receive([&](Frame& reply) {
                   FrameStats stats;
                   out = open_frame(reply, options(), stats, "reflector");
                 },
                 [&](caf::error& e) { last_error = sys_a.render(e); });
    return out;
  }

  SystemConfig cfg_a, cfg_b;
  caf::actor_system sys_a{cfg_a};
  caf::actor_system sys_b{cfg_b};
  caf::actor server;
  caf::actor remote;
  std::string last_error;
};

TEST_F(FrameExchange, HeartbeatGoesThereAndItsEchoComesBack) {
  auto reply = ask(make_frame({0, kSwarm, 1}, wire::Heartbeat{41, 1234, 0, 0, 0}));
  ASSERT_TRUE(reply) << last_error;
  EXPECT_EQ(reply->header.sender, 2u);
  const auto& h = std::get<wire::Heartbeat>(reply->body);
  EXPECT_EQ(h.echo_seq, 41u);
  EXPECT_EQ(h.echo_sent_at_ns, 1234);
}

TEST_F(FrameExchange, SixteenMebibyteActivationThereAndGradientBack) {
  std::vector<float> data(4u << 20);  // 4 Mi floats = 16 MiB
  std::iota(data.begin(), data.end(), 0.5f);
  wire::Activation a;
  a.iteration = 9;
  a.microbatch = 3;
  a.stage = 1;
  a.hop = 17;
  a.tensor = {wire::DType::kFloat32, {4096, 1024}, reinterpret_cast<const std::byte*>(data.data()),
              data.size() * sizeof(float)};
  auto reply = ask(make_frame({0, kSwarm, 1}, a));
  ASSERT_TRUE(reply) << last_error;
  const auto* g = std::get_if<wire::Gradient>(&reply->body);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->iteration, 9u);
  EXPECT_EQ(g->microbatch, 3u);
  EXPECT_EQ(g->hop, 17u);
  EXPECT_EQ(g->tensor.shape, (std::vector<int64_t>{4096, 1024}));
  ASSERT_EQ(g->tensor.nbytes, a.tensor.nbytes);
  std::vector<char> expected(reinterpret_cast<const char*>(data.data()),
                             reinterpret_cast<const char*>(data.data()) + a.tensor.nbytes);
  std::reverse(expected.begin(), expected.end());
  EXPECT_EQ(std::memcmp(g->tensor.data, expected.data(), expected.size()), 0);
}

TEST_F(FrameExchange, GarbageAndForeignFramesAreDroppedAndThePeerStaysUp) {
  EXPECT_FALSE(ask(Frame{std::vector<char>(100, 'x')}));
  EXPECT_FALSE(ask(make_frame({0, kSwarm + 1, 1}, wire::Heartbeat{1, 0, 0, 0, 0})));  // another swarm
  auto reply = ask(make_frame({0, kSwarm, 1}, wire::Heartbeat{7, 0, 0, 0, 0}));
  ASSERT_TRUE(reply) << "peer died after bad input: " << last_error;

  caf::scoped_actor self{sys_a};
  self->request(remote, 10s, caf::get_atom::value)
      .receive(
          [](uint64_t accepted, uint64_t rejected) {
            EXPECT_EQ(accepted, 1u);
            EXPECT_EQ(rejected, 2u);
          },
          [&](caf::error& e) { ADD_FAILURE() << sys_a.render(e); });
}

}  // namespace
}  // namespace gwtf
