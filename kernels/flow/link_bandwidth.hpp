// The bandwidth of this node's link to each peer, measured from its own reliable messages (the β of the edge cost,
// cost_model.hpp). A message carrying B bytes of tensors, sent at t0 and acknowledged at t1 (the receiver
// acknowledges on arrival), spent (t1 - t0) minus the link's base round trip crossing it: B over that is a sample.
// Data queued ahead of the message on the same connection makes the sample low: the estimate errs towards slow,
// which is the side a router can afford. The base round trip is the smallest one seen on the link (heartbeats
// included). Why it matters: latency alone (heartbeat round trips) rises on a slow link only while traffic queues
// there, so flows moved away come straight back and oscillate; a bandwidth estimate keeps what it learnt until new
// traffic says otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>

namespace gwtf::flow {

class LinkBandwidth {
 public:
  // Messages smaller than this measure latency, not bandwidth, and are not sampled.
  static constexpr uint64_t kMinBytes = 8 * 1024;
  // A transfer is never taken as faster than this many seconds (clock granularity, a base round trip that moved).
  static constexpr double kMinTransferS = 1e-4;
  // Unacknowledged messages tracked at most (the oldest go first: a peer that never answers cannot grow the map).
  static constexpr size_t kMaxPending = 4096;

  // Message `seq` with `bytes` of tensors went to `peer` at `now` (a retransmission keeps the first time).
  void sent(uint64_t peer, uint64_t seq, uint64_t bytes, double now);
  // Its acknowledgement arrived at `now`: a sample in bytes per second, or none (not tracked, no base round trip).
  std::optional<double> acked(uint64_t peer, uint64_t seq, double now);
  void round_trip(uint64_t peer, double rtt_s);
  void forget(uint64_t peer);  // the peer is gone
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    double at = 0;
    uint64_t bytes = 0;
    uint64_t order = 0;
  };
  std::map<std::pair<uint64_t, uint64_t>, Pending> pending_;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> by_order_;  // order -> key, to drop the oldest
  std::map<uint64_t, double> base_rtt_;
  uint64_t next_order_ = 0;
};

}  // namespace gwtf::flow
