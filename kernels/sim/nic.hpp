// A node's network interface of `rate` bytes/s, shared by its connections: messages to one peer leave one after
// another (one stream), and the peers a node is sending to at once share the rate evenly, each then on its own path
// (latency + bytes / the path's bandwidth). Without it (rate 0) every path runs at its own bandwidth however many a
// node uses at once — the model of DT-FM's and GWTF's cost matrices, which favours traffic that fans out (a sharded
// reduce, SWARM's butterfly all-reduce, a trainer calling every stage).
// An approximation of fair sharing (processor sharing): a connection's backlog of B bytes, alongside others that
// still have b_i bytes to send, is through after (B + sum of min(b_i, B)) / rate — each other connection takes as
// much as this one while both have bytes left. Fixed when the message is handed over: a later message slows the
// ones before it in truth, not here. Egress only: a node's downlink is not shared.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>

namespace gwtf::sim {

class Nic {
 public:
  explicit Nic(double rate_Bps = 0) : rate_(rate_Bps) {}

  struct Transfer {
    double leaves = 0;   // starts to leave the interface (a sender that dies before never sent it)
    double arrives = 0;
  };
  // A message of `bytes` that `from` hands over at `now` for `to`, and that its path alone would deliver after
  // `path_delay`: it waits for what the interface still sends to `to`, and takes at least its bytes at its share
  // of `rate`.
  Transfer send(uint64_t from, uint64_t to, double now, uint64_t bytes, double path_delay) {
    if (rate_ <= 0) return {now, now + path_delay};
    Backlog& mine = backlog_[{from, to}];
    const double leaves = std::max(now, mine.until);
    const double queued = mine.left(now) + static_cast<double>(bytes);
    double shared = queued;
    for (auto it = backlog_.lower_bound({from, 0}); it != backlog_.end() && it->first.first == from; ++it)
      if (it->first.second != to) shared += std::min(it->second.left(now), queued);
    mine = {now, now + shared / rate_, queued};
    return {leaves, std::max(mine.until, leaves + path_delay)};
  }
  double arrival(uint64_t from, uint64_t to, double now, uint64_t bytes, double path_delay) {
    return send(from, to, now, bytes, path_delay).arrives;
  }

 private:
  double rate_;
  struct Backlog {  // a connection's bytes still to send, leaving evenly from `from` until `until`
    double from = 0, until = 0, bytes = 0;
    double left(double t) const { return t >= until ? 0 : bytes * (until - t) / (until - from); }
  };
  std::map<std::pair<uint64_t, uint64_t>, Backlog> backlog_;  // per connection (from, to)
};

}  // namespace gwtf::sim
