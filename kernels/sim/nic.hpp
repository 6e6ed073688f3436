// A node's network interface of `rate` bytes/s, shared by its connections: messages to one peer leave one after
// another (one stream), and the peers a node is sending to at once share the rate evenly, each then on its own path
// (latency + bytes / the path's bandwidth). Without it (rate 0) every path runs at its own bandwidth however many a
// node uses at once — the model of DT-FM's and GWTF's cost matrices, which favours traffic that fans out (a sharded
// reduce, SWARM's butterfly all-reduce, a trainer calling every stage).
// An approximation of fair sharing: a message's share is fixed when it starts (the connections busy then, itself
// included), not recomputed as others start or finish. Egress only: a node's downlink is not shared.
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
    double& free = free_at_[{from, to}];
    const double start = std::max(now, free);
    int busy = 1;  // connections of `from` still sending at `start`, this one included
    for (auto it = free_at_.lower_bound({from, 0}); it != free_at_.end() && it->first.first == from; ++it)
      if (it->first.second != to && it->second > start) ++busy;
    const double on_wire = static_cast<double>(bytes) * busy / rate_;
    free = start + on_wire;
    return {start, start + std::max(path_delay, on_wire)};
  }
  double arrival(uint64_t from, uint64_t to, double now, uint64_t bytes, double path_delay) {
    return send(from, to, now, bytes, path_delay).arrives;
  }

 private:
  double rate_;
  std::map<std::pair<uint64_t, uint64_t>, double> free_at_;  // per connection (from, to): when it sent everything
};

}  // namespace gwtf::sim
