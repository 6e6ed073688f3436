// The HTTP status server on loopback: /metrics, /api/node, /api/swarm (it asks the other members' servers) and
// the page; a member that does not answer is shown as such without holding the page up.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>

#include "actors/status_server.hpp"

namespace gwtf {
namespace {

using nlohmann::json;

std::shared_ptr<StatusBoard> board(uint64_t id, int stage) {
  auto b = std::make_shared<StatusBoard>();
  b->status.on_event({{"t", 1.0}, {"node", id}, {"event", "member"}, {"stage", stage}});
  return b;
}

TEST(StatusServer, ServesMetricsTheNodeAndThePage) {
  auto b = board(7, 0);
  auto server = StatusServer::start("127.0.0.1", 0, b);
  ASSERT_TRUE(server.ok()) << server.error();
  httplib::Client c("127.0.0.1", server.value()->port());
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(metrics->body.find("gwtf_node_info{node=\"7\",stage=\"0\",role=\"data\""), std::string::npos)
      << metrics->body;
  {
    std::lock_guard<std::mutex> lock(b->mu);
    b->status.on_event({{"t", 2.0}, {"node", 7}, {"event", "train"}, {"kind", "stepped"}, {"iter", 4}, {"value", 3.0}});
  }
  auto node = c.Get("/api/node");
  ASSERT_TRUE(node);
  EXPECT_EQ(json::parse(node->body)["iteration"], 5) << "the server reads the board live";
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>gwtf swarm</title>"), std::string::npos);
  EXPECT_EQ(c.Get("/nothing")->status, 404);
}

TEST(StatusServer, TheSwarmViewAsksEveryMemberAndShowsTheSilentOnes) {
  auto a = board(1, 0), b = board(2, 1);
  auto sa = StatusServer::start("127.0.0.1", 0, a);
  auto sb = StatusServer::start("127.0.0.1", 0, b);
  ASSERT_TRUE(sa.ok() && sb.ok());
  // A port nobody serves on: bind a server and drop it.
  uint16_t dead_port = 0;
  {
    auto dead = StatusServer::start("127.0.0.1", 0, board(3, 1));
    ASSERT_TRUE(dead.ok());
    dead_port = dead.value()->port();
  }
  std::vector<obs::MemberView> members{{1, 0, true, true, "127.0.0.1", sa.value()->port()},
                                       {2, 1, true, true, "127.0.0.1", sb.value()->port()},
                                       {3, 1, true, true, "127.0.0.1", dead_port}};
  {
    std::lock_guard<std::mutex> lock(a->mu);
    a->status.set_members(members);
  }
  {
    std::lock_guard<std::mutex> lock(b->mu);
    b->status.on_event({{"t", 2.0}, {"node", 2}, {"event", "next_hops"}, {"hops", {1}}});
  }
  httplib::Client c("127.0.0.1", sa.value()->port());
  c.set_read_timeout(10, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto res = c.Get("/api/swarm");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(res);
  const json v = json::parse(res->body);
  ASSERT_EQ(v["nodes"].size(), 3u) << v.dump();
  EXPECT_EQ(v["nodes"][1]["id"], 2);
  EXPECT_EQ(v["nodes"][1]["next_hops"], json({1})) << "node 2's own view, fetched from its server";
  EXPECT_TRUE(v["nodes"][2].value("unreachable", false)) << v["nodes"][2].dump();
  EXPECT_LT(seconds, 3.0) << "a silent member must not hold the page up";
}

TEST(StatusServer, APortInUseIsAClearError) {
  auto first = StatusServer::start("127.0.0.1", 0, board(1, 0));
  ASSERT_TRUE(first.ok());
  auto second = StatusServer::start("127.0.0.1", first.value()->port(), board(2, 0));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().find("cannot serve the status page on 127.0.0.1:"), std::string::npos) << second.error();
}

}  // namespace
}  // namespace gwtf
