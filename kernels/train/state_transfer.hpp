// State transfer to a joining replica (DESIGN §5): the stage's weights and optimizer state, serialized by a donor
// at an iteration boundary, travel in checksummed chunks. The fetcher asks several donors at once (round robin
// over those offering the same state), keeps every verified chunk when a donor dies or sends a corrupt copy (the
// chunk is asked again from another donor), and verifies the whole state before it is imported. Pure logic over
// bytes: TrainNode drives it with the messages it receives.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/train/messages.hpp"

namespace gwtf::train {

// What a donor offers: the state after `version` iterations, its size, and a CRC-32 per chunk and of the whole.
StateManifest make_manifest(Iter version, std::string_view state, uint32_t chunk_size);
std::string_view chunk_of(std::string_view state, const StateManifest& m, uint32_t index);
uint32_t chunk_count(const StateManifest& m);

class StateFetcher {
 public:
  explicit StateFetcher(uint32_t window = 4) : window_(window) {}

  enum class ChunkResult { kAccepted, kRejected, kIgnored };

  // A donor's offer. The first offer sets the target state; a donor offering the same state (version and
  // checksum) joins in, one offering another is kept aside in case every donor of the target dies.
  void on_manifest(NodeId donor, const StateManifest& m);
  // A chunk from a donor: kept if its checksum matches the target's (kAccepted), asked again from another
  // donor if not (kRejected), ignored when not asked for or of another state.
  ChunkResult on_chunk(NodeId donor, Iter version, uint32_t index, std::string bytes);
  void on_donor_down(NodeId donor);

  // Chunk requests to send now (at most `window` outstanding), each to a donor of the target state.
  std::vector<std::pair<NodeId, uint32_t>> requests();

  bool has_target() const { return target_.has_value(); }
  // No live donor offers the target: ask for offers again (the verified chunks stay if the same state returns).
  bool needs_offers() const;
  bool complete() const;
  // The whole state once complete and its checksum matches; nullopt (and a reset) otherwise.
  std::optional<std::string> assemble();
  Iter version() const { return target_ ? target_->version : 0; }
  size_t verified_chunks() const { return chunks_.size(); }
  size_t total_chunks() const { return target_ ? chunk_count(*target_) : 0; }
  std::set<NodeId> donors_used() const { return used_; }
  void reset();

 private:
  std::vector<NodeId> target_donors() const;

  uint32_t window_;
  std::optional<StateManifest> target_;
  std::map<NodeId, StateManifest> offers_;
  std::map<uint32_t, std::string> chunks_;       // verified
  std::map<uint32_t, NodeId> outstanding_;       // chunk -> donor asked
  std::map<uint32_t, std::set<NodeId>> bad_;     // chunk -> donors that sent a corrupt copy
  std::set<NodeId> used_;                        // donors that delivered a verified chunk
  size_t turn_ = 0;                              // round robin over the target's donors
};

}  // namespace gwtf::train
