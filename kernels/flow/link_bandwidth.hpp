// The bandwidth of this node's links, each way (the β of the edge cost, cost_model.hpp). This way is measured from
// the node's own reliable messages: one carrying B bytes of tensors, sent at t0 and acknowledged at t1 (the receiver
// acknowledges on arrival), spent (t1 - t0) minus the link's base round trip crossing it, and B over that is a
// sample. Data queued ahead of the message on the same connection makes the sample low: the estimate errs towards
// slow, which is the side a router can afford. The base round trip is the smallest one seen on the link (heartbeats
// included). The other way is what the peer measured and reported (heartbeats carry it).
//
// Samples are smoothed as seconds per byte, not bytes per second: the cost is a transfer time, and an average of
// rates is dominated by the fast samples (a link throttled from 300 MB/s to 250 kB/s still read 25 MB/s after ten
// slow samples, measured on the fault bed), where an average of times follows the slow ones at once.
// Why it matters: latency alone (heartbeat round trips) rises on a slow link only while traffic queues there, so
// flows moved away come straight back; an estimate of the bandwidth keeps what it learnt until new traffic says
// otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>

#include "kernels/flow/cost_model.hpp"

namespace gwtf::flow {

class LinkBandwidth {
 public:
  // Messages smaller than this measure latency, not bandwidth, and are not sampled.
  static constexpr uint64_t kMinBytes = 8 * 1024;
  // A transfer is never taken as faster than this many seconds (clock granularity, a base round trip that moved).
  static constexpr double kMinTransferS = 1e-4;
  // Unacknowledged messages tracked at most (the oldest go first: a peer that never answers cannot grow the map).
  static constexpr size_t kMaxPending = 4096;

  // Message `seq` with `bytes` of tensors went to `peer` at `now` (a retransmission keeps the first time). Sequence
  // numbers are the sender's, one counter for all its peers (TrainNode's), so they also order the messages by age.
  void sent(uint64_t peer, uint64_t seq, uint64_t bytes, double now);
  // Its acknowledgement arrived at `now`: true when that made a sample (tracked, and a base round trip known).
  bool acked(uint64_t peer, uint64_t seq, double now);
  // Message `seq` to `peer`, sent first at t0, is by the estimate still on its way at `now` (before t0 plus its bytes
  // at out_Bps plus the base round trip): a retransmission now would only queue a second copy behind the first
  // (a stream transport delivers it or breaks). False with no estimate yet, or once the time passed.
  bool still_sending(uint64_t peer, uint64_t seq, double now) const;
  void round_trip(uint64_t peer, double rtt_s);
  // The peer's estimate of its way to this node (0: it has none yet).
  void reported(uint64_t peer, double bytes_per_s);
  void forget(uint64_t peer);  // the peer is gone

  // Smoothed bandwidth, bytes per second: this node to `peer`, and `peer` to this node; none before a sample.
  std::optional<double> out_Bps(uint64_t peer) const;
  std::optional<double> in_Bps(uint64_t peer) const;
  // Both ways for the edge cost (out, in): a way not measured yet taken as the other; none while neither is.
  std::optional<std::pair<double, double>> both_ways(uint64_t peer) const;
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    uint64_t peer = 0;
    double at = 0;
    uint64_t bytes = 0;
  };
  std::map<uint64_t, Pending> pending_;  // by sequence number: the oldest first
  std::map<uint64_t, double> base_rtt_;
  std::map<uint64_t, Ewma> seconds_per_byte_;  // this way
  std::map<uint64_t, double> reported_Bps_;    // the other way
};

}  // namespace gwtf::flow
