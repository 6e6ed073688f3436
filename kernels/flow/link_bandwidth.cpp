#include "kernels/flow/link_bandwidth.hpp"

#include <algorithm>
#include <iterator>

namespace gwtf::flow {

void LinkBandwidth::sent(uint64_t peer, uint64_t seq, uint64_t bytes, double now) {
  if (bytes < kMinBytes || pending_.count(seq)) return;
  if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
  pending_[seq] = {peer, now, bytes};
}

bool LinkBandwidth::acked(uint64_t peer, uint64_t seq, double now) {
  auto it = pending_.find(seq);
  if (it == pending_.end() || it->second.peer != peer) return false;
  const Pending p = it->second;
  pending_.erase(it);
  auto base = base_rtt_.find(peer);
  if (base == base_rtt_.end()) return false;
  seconds_per_byte_.emplace(peer, Ewma(0.3)).first->second.add(std::max(now - p.at - base->second, kMinTransferS) /
                                                               static_cast<double>(p.bytes));
  return true;
}

bool LinkBandwidth::still_sending(uint64_t peer, uint64_t seq, double now) const {
  auto it = pending_.find(seq);
  const auto rate = out_Bps(peer);
  if (it == pending_.end() || it->second.peer != peer || !rate) return false;
  auto base = base_rtt_.find(peer);
  const double rtt = base == base_rtt_.end() ? 0 : base->second;
  return now < it->second.at + static_cast<double>(it->second.bytes) / *rate + rtt;
}

void LinkBandwidth::reported(uint64_t peer, double bytes_per_s) {
  if (bytes_per_s > 0) reported_Bps_[peer] = bytes_per_s;
}

std::optional<double> LinkBandwidth::out_Bps(uint64_t peer) const {
  auto it = seconds_per_byte_.find(peer);
  if (it == seconds_per_byte_.end()) return std::nullopt;
  return 1 / it->second.value();
}

std::optional<std::pair<double, double>> LinkBandwidth::both_ways(uint64_t peer) const {
  const auto out = out_Bps(peer), in = in_Bps(peer);
  if (!out && !in) return std::nullopt;
  return std::make_pair(out ? *out : *in, in ? *in : *out);
}

std::optional<double> LinkBandwidth::in_Bps(uint64_t peer) const {
  auto it = reported_Bps_.find(peer);
  if (it == reported_Bps_.end()) return std::nullopt;
  return it->second;
}

void LinkBandwidth::round_trip(uint64_t peer, double rtt_s) {
  if (!(rtt_s >= 0)) return;
  auto [it, fresh] = base_rtt_.emplace(peer, rtt_s);
  if (!fresh) it->second = std::min(it->second, rtt_s);
}

void LinkBandwidth::forget(uint64_t peer) {
  for (auto it = pending_.begin(); it != pending_.end();)
    it = it->second.peer == peer ? pending_.erase(it) : std::next(it);
  base_rtt_.erase(peer);
  seconds_per_byte_.erase(peer);
  reported_Bps_.erase(peer);
}

}  // namespace gwtf::flow
