#include "kernels/train/state_transfer.hpp"

#include <algorithm>

#include "kernels/base/crc32.hpp"

namespace gwtf::train {

namespace {

bool same_state(const StateManifest& a, const StateManifest& b) {
  return a.version == b.version && a.size == b.size && a.chunk_size == b.chunk_size && a.crc == b.crc &&
         a.chunk_crcs == b.chunk_crcs;
}

}  // namespace

uint32_t chunk_count(const StateManifest& m) {
  return m.chunk_size == 0 ? 0 : static_cast<uint32_t>((m.size + m.chunk_size - 1) / m.chunk_size);
}

StateManifest make_manifest(Iter version, std::string_view state, uint32_t chunk_size) {
  StateManifest m{version, state.size(), std::max<uint32_t>(chunk_size, 1), {}, crc32_of(state)};
  for (uint32_t k = 0; k < chunk_count(m); ++k) m.chunk_crcs.push_back(crc32_of(chunk_of(state, m, k)));
  return m;
}

std::string_view chunk_of(std::string_view state, const StateManifest& m, uint32_t index) {
  const uint64_t at = static_cast<uint64_t>(index) * m.chunk_size;
  if (at >= state.size()) return {};
  return state.substr(at, std::min<uint64_t>(m.chunk_size, state.size() - at));
}

void StateFetcher::on_manifest(NodeId donor, const StateManifest& m) {
  if (chunk_count(m) != m.chunk_crcs.size()) return;  // malformed offer
  offers_[donor] = m;
  if (target_ && !same_state(*target_, m))  // the donor moved on: what we asked of it will not come
    for (auto it = outstanding_.begin(); it != outstanding_.end();)
      it = it->second == donor ? outstanding_.erase(it) : std::next(it);
  if (!target_ || (target_donors().empty() && !same_state(*target_, m))) {
    // First offer, or the target's donors are all gone and this is another state: start over on it.
    const bool keep = target_ && same_state(*target_, m);
    target_ = m;
    if (!keep) {
      chunks_.clear();
      bad_.clear();
    }
    outstanding_.clear();
  }
}

std::vector<NodeId> StateFetcher::target_donors() const {
  std::vector<NodeId> out;
  if (!target_) return out;
  for (const auto& [donor, m] : offers_)
    if (same_state(m, *target_)) out.push_back(donor);
  return out;
}

bool StateFetcher::needs_offers() const { return !target_ || target_donors().empty(); }

StateFetcher::ChunkResult StateFetcher::on_chunk(NodeId donor, Iter version, uint32_t index, std::string bytes) {
  auto asked = outstanding_.find(index);
  if (!target_ || version != target_->version || asked == outstanding_.end() || asked->second != donor)
    return ChunkResult::kIgnored;
  outstanding_.erase(asked);
  const uint64_t expected = std::min<uint64_t>(target_->chunk_size, target_->size - uint64_t{index} * target_->chunk_size);
  if (bytes.size() != expected || crc32_of(bytes) != target_->chunk_crcs[index]) {
    bad_[index].insert(donor);
    return ChunkResult::kRejected;
  }
  chunks_[index] = std::move(bytes);
  used_.insert(donor);
  return ChunkResult::kAccepted;
}

void StateFetcher::on_donor_down(NodeId donor) {
  offers_.erase(donor);
  for (auto it = outstanding_.begin(); it != outstanding_.end();)
    it = it->second == donor ? outstanding_.erase(it) : std::next(it);
}

std::vector<std::pair<NodeId, uint32_t>> StateFetcher::requests() {
  std::vector<std::pair<NodeId, uint32_t>> out;
  const auto donors = target_donors();
  if (donors.empty()) return out;
  const uint32_t n = chunk_count(*target_);
  for (uint32_t k = 0; k < n && outstanding_.size() < window_; ++k) {
    if (chunks_.count(k) || outstanding_.count(k)) continue;
    // The next donor in turn that has not sent a corrupt copy of this chunk (all of them have: try them again).
    auto& bad = bad_[k];
    if (std::all_of(donors.begin(), donors.end(), [&](NodeId d) { return bad.count(d) > 0; })) bad.clear();
    NodeId pick = 0;
    for (size_t tries = 0; tries < donors.size() && !pick; ++tries) {
      const NodeId d = donors[turn_++ % donors.size()];
      if (!bad.count(d)) pick = d;
    }
    outstanding_[k] = pick;
    out.push_back({pick, k});
  }
  return out;
}

bool StateFetcher::complete() const { return target_ && chunks_.size() == chunk_count(*target_); }

std::optional<std::string> StateFetcher::assemble() {
  if (!complete()) return std::nullopt;
  std::string state;
  state.reserve(target_->size);
  for (const auto& [k, bytes] : chunks_) state += bytes;
  if (state.size() != target_->size || crc32_of(state) != target_->crc) {
    reset();
    return std::nullopt;
  }
  return state;
}

void StateFetcher::reset() {
  target_.reset();
  offers_.clear();
  chunks_.clear();
  outstanding_.clear();
  bad_.clear();
  used_.clear();
}

}  // namespace gwtf::train
