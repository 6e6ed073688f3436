// What a node shows of itself on /metrics and to the swarm page, folded from the lines of its own event log (the
// JSON objects the node writes to its JSON-lines log), so the log, the metrics and the page never disagree; plus
// the gauges the node sets each tick (traffic, members, links) and the compute it ran. Pure: no clock, no I/O;
// time comes in the events' "t" (seconds since the node started).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gwtf::obs {

struct MemberView {
  uint64_t id = 0;
  int stage = 0;  // 0: data holder
  bool alive = true;
  bool ready = true;  // serves its stage (a joiner: once it has the state)
  std::string host;
  uint16_t status_port = 0;  // its HTTP status server (0: none)
};

struct LinkView {
  uint64_t peer = 0;
  double latency_s = 0;  // one way, smoothed
  double cost_s = 0;     // the flow layer's edge cost to that peer
};

struct Traffic {
  uint64_t frames_sent = 0, bytes_sent = 0, bytes_received = 0, frames_rejected = 0;
};

struct StatusOptions {
  uint64_t tokens_per_iteration = 0;  // microbatches x microbatch size x sequence length (the swarm's, per step)
  size_t history = 2000;               // iterations kept in the loss and throughput series
  size_t recent = 50;                  // churn events kept
};

class NodeStatus {
 public:
  explicit NodeStatus(StatusOptions options = {}) : opt_(options) {}

  void on_event(const nlohmann::json& line);  // one line of the event log
  void set_members(std::vector<MemberView> members) { members_ = std::move(members); }
  void set_links(std::vector<LinkView> links) { links_ = std::move(links); }
  void set_traffic(const Traffic& t) { traffic_ = t; }
  // A compute task finished: `replay` (recomputed on pre-step weights to answer a neighbour's loss) and
  // `discarded` (a NaN/Inf result thrown away) count as wasted compute.
  void add_compute(const std::string& kind, double seconds, bool replay, bool discarded);

  std::string prometheus() const;  // Prometheus text format 0.0.4
  nlohmann::json to_json() const;  // this node as the swarm page draws it

  uint64_t id() const { return id_; }
  int64_t iteration() const { return stepped_; }

  // Training progress for a progress line: the mean step time over the kept series, the throughput it gives and
  // the time left for `iterations` in all (0 while fewer than two steps are known).
  struct Progress {
    double tokens_per_s = 0;
    double eta_s = 0;
    size_t next_hops = 0;  // the flows this node routes
  };
  Progress progress(int64_t iterations) const;

 private:
  struct Point {
    int64_t iter = 0;
    double t = 0;
    std::optional<double> loss;  // holders only
    std::optional<double> tokens_per_s;
  };
  void fold(const nlohmann::json& line);
  void churn(const nlohmann::json& line, const std::string& what);

  StatusOptions opt_;
  uint64_t id_ = 0;
  std::string role_ = "any", host_;
  uint16_t port_ = 0;
  int stage_ = -1;  // -1: not placed yet
  bool joining_ = false, finished_ = false;
  double t_ = 0;
  int64_t stepped_ = 0;
  std::deque<Point> series_;
  std::vector<uint64_t> next_hops_;
  std::vector<MemberView> members_;
  std::vector<LinkView> links_;
  Traffic traffic_;
  std::map<std::string, uint64_t> protocol_;  // protocol events by kind (train::event_name)
  uint64_t malformed_ = 0, microbatches_ = 0, peer_failures_ = 0, joins_ = 0, refused_ = 0, flow_events_ = 0;
  double detection_sum_ = 0;
  uint64_t detection_count_ = 0;
  std::map<std::string, double> compute_s_;  // by task kind
  double wasted_s_ = 0;
  std::deque<nlohmann::json> recent_;  // churn: peers down, joins, refusals
  nlohmann::json transfer_;  // a joiner's state transfer so far (null: none running)
};

}  // namespace gwtf::obs
