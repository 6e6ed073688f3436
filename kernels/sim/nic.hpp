// A node's network interface as one queue: the messages a node sends leave it one after another at `rate`
// bytes/s, each then on its own path (latency + bytes / the path's bandwidth). Without it (rate 0) every path runs
// at its own bandwidth however many a node uses at once — the model of DT-FM's and GWTF's cost matrices, which
// favours traffic that fans out (a sharded reduce, SWARM's butterfly all-reduce, a trainer calling every stage).
// Egress only: a node's downlink is not shared.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>

namespace gwtf::sim {

class Nic {
 public:
  explicit Nic(double rate_Bps = 0) : rate_(rate_Bps) {}

  struct Transfer {
    double leaves = 0;   // starts to leave the interface (a sender that dies before never sent it)
    double arrives = 0;
  };
  // A message of `bytes` that `from` hands over at `now`, and that its path alone would deliver after
  // `path_delay`: it waits for what the interface still sends, and takes at least its bytes at `rate`.
  Transfer send(uint64_t from, double now, uint64_t bytes, double path_delay) {
    if (rate_ <= 0) return {now, now + path_delay};
    double& free = free_at_[from];
    const double start = std::max(now, free);
    const double on_wire = static_cast<double>(bytes) / rate_;
    free = start + on_wire;
    return {start, start + std::max(path_delay, on_wire)};
  }
  double arrival(uint64_t from, double now, uint64_t bytes, double path_delay) {
    return send(from, now, bytes, path_delay).arrives;
  }
  bool limited() const { return rate_ > 0; }

 private:
  double rate_;
  std::map<uint64_t, double> free_at_;  // per node: when its interface has sent everything handed over
};

}  // namespace gwtf::sim
