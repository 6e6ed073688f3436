// kernels/obs: the node status folded from event-log lines, its Prometheus text and the swarm view.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "kernels/obs/node_status.hpp"
#include "kernels/obs/prometheus.hpp"
#include "kernels/obs/swarm_view.hpp"

namespace gwtf::obs {
namespace {

using nlohmann::json;

// Every line of a Prometheus text: a comment (# HELP / # TYPE) or `name{labels} value`.
void expect_valid_exposition(const std::string& text) {
  static const std::regex sample(
      R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (NaN|[+-]Inf|-?[0-9.e+-]+)$)");
  static const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    EXPECT_TRUE(std::regex_match(line, sample) || std::regex_match(line, comment)) << "line " << n << ": " << line;
  }
  EXPECT_GT(n, 0);
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

json ev(double t, const std::string& event, json fields = json::object()) {
  fields["t"] = t;
  fields["node"] = 7;
  fields["event"] = event;
  return fields;
}

json stepped(double t, int iter, double loss) {
  return ev(t, "train", {{"kind", "stepped"}, {"iter", iter}, {"mb", 0}, {"peer", 0}, {"value", loss}});
}

TEST(PromText, EscapesLabelValuesAndWritesSpecialValues) {
  EXPECT_EQ(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
  PromText p;
  p.family("x_total", "counter", "X.");
  p.sample("x_total", 2, {{"host", "evil\"} 1\nforged 9"}});
  EXPECT_EQ(p.text(), "# HELP x_total X.\n# TYPE x_total counter\nx_total{host=\"evil\\\"} 1\\nforged 9\"} 2\n");
  expect_valid_exposition(p.text());
}

TEST(NodeStatus, FoldsTheEventLogIntoMetrics) {
  StatusOptions o;
  o.tokens_per_iteration = 1000;
  NodeStatus s(o);
  s.on_event(ev(0, "start", {{"host", "127.0.0.1"}, {"port", 7000}, {"role", "data"}}));
  s.on_event(ev(0.5, "member", {{"stage", 0}, {"joining", false}, {"members", 3}}));
  s.on_event(stepped(1.0, 0, 5.5));
  s.on_event(stepped(1.5, 1, 5.0));  // 1000 tokens in 0.5 s
  s.on_event(ev(1.6, "applied", {{"iter", 1}, {"done", {0, 1, 2, 3, 4, 5, 6, 7}}, {"end_done", {0, 1, 2, 3}}}));
  s.on_event(ev(2.0, "train", {{"kind", "redo"}, {"iter", 2}, {"mb", 3}, {"peer", 9}, {"value", 0}}));
  s.on_event(ev(2.1, "peer_down", {{"peer", 9}, {"why", "killed"}, {"silent_s", 0.25}}));
  s.on_event(ev(3.0, "peer_joining", {{"peer", 100}, {"stage", 1}}));
  s.on_event(ev(3.5, "next_hops", {{"hops", {11, 12}}}));
  s.set_members({{7, 0, true, true, "127.0.0.1", 8000}, {11, 1, true, true, "h", 0}, {12, 1, true, false, "h", 0}});
  s.set_links({{11, 0.001, 0.051}});
  s.set_traffic({10, 2000, 3000, 1});
  s.add_compute("forward", 0.5, false, false);
  s.add_compute("forward", 0.25, true, false);  // a replay: wasted
  s.add_compute("backward", 0.125, false, true);  // NaN: wasted

  const std::string text = s.prometheus();
  expect_valid_exposition(text);
  for (const char* line : {"gwtf_node_info{node=\"7\",stage=\"0\",role=\"data\",state=\"serving\"} 1",
                           "gwtf_iteration 2", "gwtf_loss 5", "gwtf_tokens_per_second 2000",
                           "gwtf_microbatches_total 8", "gwtf_peers{stage=\"0\"} 1", "gwtf_peers{stage=\"1\"} 2",
                           "gwtf_peers_ready{stage=\"1\"} 1", "gwtf_flows 2", "gwtf_link_cost_seconds{peer=\"11\"} 0.051",
                           "gwtf_bytes_sent_total 2000", "gwtf_bytes_received_total 3000",
                           "gwtf_frames_rejected_total 1", "gwtf_recoveries_total 1",
                           "gwtf_protocol_events_total{kind=\"redo\"} 1",
                           "gwtf_compute_seconds_total{kind=\"forward\"} 0.75",
                           "gwtf_wasted_compute_seconds_total 0.375", "gwtf_peer_failures_total 1",
                           "gwtf_detection_seconds_sum 0.25", "gwtf_detection_seconds_count 1", "gwtf_joins_total 1",
                           "gwtf_uptime_seconds 3.5"})
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\nin:\n" << text;

  const auto progress = s.progress(10);
  EXPECT_EQ(progress.tokens_per_s, 2000);  // one step in 0.5 s, 1000 tokens each
  EXPECT_EQ(progress.eta_s, 4.0);          // 8 steps left
  EXPECT_EQ(progress.next_hops, 2u);
  EXPECT_EQ(NodeStatus(o).progress(10).tokens_per_s, 0) << "no step yet";

  const json j = s.to_json();
  EXPECT_EQ(j["iteration"], 2);
  ASSERT_EQ(j["series"].size(), 2u);
  EXPECT_EQ(j["series"][1]["loss"], 5.0);
  EXPECT_EQ(j["series"][1]["tokens_per_s"], 2000.0);
  EXPECT_FALSE(j["series"][0].contains("tokens_per_s"));  // no previous iteration to measure from
  ASSERT_EQ(j["recent"].size(), 2u);
  EXPECT_EQ(j["recent"][0]["what"], "down");
  EXPECT_EQ(j["recent"][0]["detected_after_s"], 0.25);
  EXPECT_EQ(j["recent"][1]["what"], "joining");
  EXPECT_EQ(j["next_hops"], json({11, 12}));
}

TEST(NodeStatus, RelaysHaveNoLossAndHistoryIsBounded) {
  StatusOptions o;
  o.tokens_per_iteration = 10;
  o.history = 5;
  o.recent = 2;
  NodeStatus s(o);
  s.on_event(ev(0, "member", {{"stage", 2}, {"joining", true}}));
  EXPECT_TRUE(has_line(s.prometheus(), "gwtf_node_info{node=\"7\",stage=\"2\",role=\"relay\",state=\"joining\"} 1"));
  s.on_event(ev(0.5, "state_transfer", {{"version", 3}, {"chunks", 5}, {"total", 20}, {"donors", 2}}));
  EXPECT_TRUE(has_line(s.prometheus(), "gwtf_state_transfer_chunks{of=\"verified\"} 5"));
  EXPECT_EQ(s.to_json()["transfer"]["total"], 20);
  s.on_event(ev(1, "train", {{"kind", "joined"}, {"iter", 3}}));
  for (int i = 3; i < 20; ++i) s.on_event(stepped(i, i, 0));
  for (int k = 0; k < 5; ++k) s.on_event(ev(30 + k, "peer_down", {{"peer", k}, {"why", "x"}}));
  const std::string text = s.prometheus();
  EXPECT_EQ(text.find("gwtf_loss"), std::string::npos) << "a relay computes no loss";
  EXPECT_TRUE(has_line(text, "gwtf_iteration 20"));
  EXPECT_TRUE(has_line(text, "gwtf_node_info{node=\"7\",stage=\"2\",role=\"relay\",state=\"serving\"} 1"));
  EXPECT_EQ(text.find("gwtf_state_transfer_chunks"), std::string::npos) << "the transfer is over";
  const json j = s.to_json();
  EXPECT_EQ(j["series"].size(), 5u);
  EXPECT_EQ(j["recent"].size(), 2u);
  EXPECT_EQ(j["recent"][1]["peer"], 4);
  // Garbage lines change nothing and throw nothing.
  s.on_event(json::array());
  s.on_event(json("text"));
  s.on_event(ev(40, "train", {{"kind", {1, 2}}}));  // a field of the wrong type: counted, not thrown
  EXPECT_EQ(s.to_json()["iteration"], 20);
  EXPECT_TRUE(has_line(s.prometheus(), "gwtf_status_malformed_events_total 1"));
}

TEST(SwarmView, MergesMembersAndShowsTheSilentOnes) {
  NodeStatus me;
  me.on_event(ev(0, "member", {{"stage", 0}}));
  me.on_event(stepped(1, 0, 4.0));
  me.set_members({{7, 0, true, true, "a", 8000}, {11, 1, true, true, "b", 8001}, {12, 1, true, true, "c", 8002},
                  {13, 2, true, false, "d", 0}});
  json other{{"id", 11}, {"stage", 1}, {"iteration", 1}, {"next_hops", {7}}, {"members", json::array()},
             {"recent", json::array()}};
  const json v = swarm_view(me.to_json(), {{11, other}});
  EXPECT_EQ(v["served_by"], 7);
  ASSERT_EQ(v["nodes"].size(), 4u);
  EXPECT_EQ(v["nodes"][1]["next_hops"], json({7}));
  EXPECT_FALSE(v["nodes"][1].contains("members"));
  EXPECT_TRUE(v["nodes"][2]["unreachable"].get<bool>()) << "12 has a status server but did not answer";
  EXPECT_TRUE(v["nodes"][3]["no_status"].get<bool>()) << "13 serves no status";
  EXPECT_FALSE(v["nodes"][3]["ready"].get<bool>());
  ASSERT_EQ(v["stages"].size(), 3u);
  EXPECT_EQ(v["stages"][1], json({{"stage", 1}, {"live", 2}, {"ready", 2}}));
  EXPECT_EQ(v["stages"][2], json({{"stage", 2}, {"live", 1}, {"ready", 0}}));
  EXPECT_EQ(v["iteration"], 1);
  EXPECT_EQ(v["series"][0]["loss"], 4.0);
}

}  // namespace
}  // namespace gwtf::obs
