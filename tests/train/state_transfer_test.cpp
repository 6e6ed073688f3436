// The state-transfer fetcher on its own, message by message: chunks spread over the donors that offer the same
// state, a corrupt chunk asked again from another donor, a dead donor's chunks reassigned with every verified
// chunk kept, an offer of another state only taken when no donor of the target is left.
#include "kernels/train/state_transfer.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "kernels/base/crc32.hpp"

namespace gwtf::train {
namespace {

std::string state_of(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t k = 0; k < n; ++k) s[k] = static_cast<char>(seed + k * 7);
  return s;
}

// Answers every request from `state` (optionally corrupting what `bad_donor` sends), until complete.
std::string drive(StateFetcher& f, const std::string& state, const StateManifest& m, NodeId bad_donor = 0,
                  int corrupt = 0, std::map<NodeId, int>* served = nullptr) {
  for (int round = 0; round < 1000 && !f.complete(); ++round)
    for (const auto& [donor, index] : f.requests()) {
      std::string bytes(chunk_of(state, m, index));
      if (donor == bad_donor && corrupt > 0) {
        --corrupt;
        bytes[0] ^= 1;
      }
      if (served) ++(*served)[donor];
      f.on_chunk(donor, m.version, index, bytes);
    }
  auto whole = f.assemble();
  return whole ? *whole : std::string("<incomplete>");
}

TEST(StateTransfer, ManifestChecksumsEveryChunk) {
  const auto state = state_of(1000, 3);
  const auto m = make_manifest(4, state, 128);
  EXPECT_EQ(m.version, 4u);
  EXPECT_EQ(chunk_count(m), 8u);  // 7 full chunks and 104 bytes
  EXPECT_EQ(chunk_of(state, m, 7).size(), 104u);
  EXPECT_EQ(m.crc, crc32_of(state));
  EXPECT_EQ(m.chunk_crcs[3], crc32_of(std::string_view(state).substr(3 * 128, 128)));
}

TEST(StateTransfer, FetchesFromEveryDonorOfTheSameState) {
  const auto state = state_of(4096, 1);
  const auto m = make_manifest(2, state, 256);
  StateFetcher f(4);
  f.on_manifest(10, m);
  f.on_manifest(11, m);
  std::map<NodeId, int> served;
  EXPECT_TRUE(drive(f, state, m, 0, 0, &served) == state);
  EXPECT_GT(served[10], 0);
  EXPECT_GT(served[11], 0);
  EXPECT_EQ(f.donors_used(), (std::set<NodeId>{10, 11}));
}

TEST(StateTransfer, ACorruptChunkIsAskedAgainFromAnotherDonor) {
  const auto state = state_of(2048, 5);
  const auto m = make_manifest(1, state, 256);
  StateFetcher f(2);
  f.on_manifest(10, m);
  f.on_manifest(11, m);
  auto asks = f.requests();
  ASSERT_FALSE(asks.empty());
  const auto [donor, index] = asks.front();
  std::string bytes(chunk_of(state, m, index));
  bytes[1] ^= 0x40;
  EXPECT_EQ(f.on_chunk(donor, m.version, index, bytes), StateFetcher::ChunkResult::kRejected);
  for (size_t k = 1; k < asks.size(); ++k)
    f.on_chunk(asks[k].first, m.version, asks[k].second, std::string(chunk_of(state, m, asks[k].second)));
  bool asked_elsewhere = false;
  for (const auto& [d, k] : f.requests()) {
    if (k == index) asked_elsewhere = d != donor;
    f.on_chunk(d, m.version, k, std::string(chunk_of(state, m, k)));
  }
  EXPECT_TRUE(asked_elsewhere);
  EXPECT_TRUE(drive(f, state, m) == state);
}

TEST(StateTransfer, ADeadDonorsChunksGoToTheOthersAndNothingVerifiedIsRefetched) {
  const auto state = state_of(4096, 9);
  const auto m = make_manifest(3, state, 256);
  StateFetcher f(4);
  f.on_manifest(10, m);
  f.on_manifest(11, m);
  for (const auto& [donor, index] : f.requests())
    if (donor == 11) f.on_chunk(donor, m.version, index, std::string(chunk_of(state, m, index)));
  const size_t verified = f.verified_chunks();
  ASSERT_GT(verified, 0u);
  f.on_donor_down(10);  // its outstanding requests are void
  std::map<NodeId, int> served;
  EXPECT_TRUE(drive(f, state, m, 0, 0, &served) == state);
  EXPECT_EQ(served.count(10), 0u);
  EXPECT_EQ(static_cast<size_t>(served[11]), chunk_count(m) - verified);
}

TEST(StateTransfer, ResumesWhenTheSameStateIsOfferedAgainAndRestartsOnAnother) {
  const auto state = state_of(2048, 2);
  const auto m = make_manifest(5, state, 256);
  StateFetcher f(2);
  f.on_manifest(10, m);
  for (const auto& [donor, index] : f.requests()) f.on_chunk(donor, m.version, index, std::string(chunk_of(state, m, index)));
  EXPECT_EQ(f.verified_chunks(), 2u);
  f.on_donor_down(10);
  EXPECT_TRUE(f.needs_offers());
  f.on_manifest(12, m);  // the same state from another donor: the verified chunks stay
  EXPECT_EQ(f.verified_chunks(), 2u);
  EXPECT_FALSE(f.needs_offers());
  f.on_donor_down(12);
  const auto newer = state_of(2048, 3);
  const auto m2 = make_manifest(6, newer, 256);
  f.on_manifest(13, m2);  // another state: start over on it
  EXPECT_EQ(f.verified_chunks(), 0u);
  EXPECT_EQ(f.version(), 6u);
  EXPECT_TRUE(drive(f, newer, m2) == newer);
}

TEST(StateTransfer, IgnoresUnaskedChunksAndMalformedOffers) {
  const auto state = state_of(1024, 4);
  auto m = make_manifest(1, state, 256);
  StateFetcher f(1);
  auto broken = m;
  broken.chunk_crcs.pop_back();
  f.on_manifest(10, broken);
  EXPECT_FALSE(f.has_target());
  f.on_manifest(10, m);
  EXPECT_EQ(f.on_chunk(10, 1, 3, std::string(chunk_of(state, m, 3))), StateFetcher::ChunkResult::kIgnored);
  EXPECT_EQ(f.on_chunk(10, 9, 0, std::string(chunk_of(state, m, 0))), StateFetcher::ChunkResult::kIgnored);
  EXPECT_TRUE(drive(f, state, m) == state);
}

}  // namespace
}  // namespace gwtf::train
