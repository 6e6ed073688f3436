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

// A state of `n` bytes in chunks of 256, offered by `donors` to a fetcher with `window` requests in flight.
struct Transfer {
  std::string state;
  StateManifest m;
  StateFetcher f;
  std::map<NodeId, int> served;  // chunks each donor sent

  Transfer(size_t n, char seed, uint32_t window, std::vector<NodeId> donors)
      : state(state_of(n, seed)), m(make_manifest(seed, state, 256)), f(window) {
    for (NodeId d : donors) f.on_manifest(d, m);
  }
  StateFetcher::ChunkResult answer(NodeId donor, uint32_t index) {
    ++served[donor];
    return f.on_chunk(donor, m.version, index, std::string(chunk_of(state, m, index)));
  }
  // Answers every request until complete; true when the assembled state is the original.
  bool drive() {
    for (int round = 0; round < 1000 && !f.complete(); ++round)
      for (const auto& [donor, index] : f.requests()) answer(donor, index);
    auto whole = f.assemble();
    return whole && *whole == state;
  }
};

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
  Transfer t(4096, 1, 4, {10, 11});
  EXPECT_TRUE(t.drive());
  EXPECT_GT(t.served[10], 0);
  EXPECT_GT(t.served[11], 0);
  EXPECT_EQ(t.f.donors_used(), (std::set<NodeId>{10, 11}));
}

TEST(StateTransfer, ACorruptChunkIsAskedAgainFromAnotherDonor) {
  Transfer t(2048, 5, 2, {10, 11});
  auto asks = t.f.requests();
  ASSERT_FALSE(asks.empty());
  const auto [donor, index] = asks.front();
  std::string bytes(chunk_of(t.state, t.m, index));
  bytes[1] ^= 0x40;
  EXPECT_EQ(t.f.on_chunk(donor, t.m.version, index, bytes), StateFetcher::ChunkResult::kRejected);
  for (size_t k = 1; k < asks.size(); ++k) t.answer(asks[k].first, asks[k].second);
  bool asked_elsewhere = false;
  for (const auto& [d, k] : t.f.requests()) {
    if (k == index) asked_elsewhere = d != donor;
    t.answer(d, k);
  }
  EXPECT_TRUE(asked_elsewhere);
  EXPECT_TRUE(t.drive());
}

TEST(StateTransfer, ADeadDonorsChunksGoToTheOthersAndNothingVerifiedIsRefetched) {
  Transfer t(4096, 9, 4, {10, 11});
  for (const auto& [donor, index] : t.f.requests())
    if (donor == 11) t.answer(donor, index);
  const size_t verified = t.f.verified_chunks();
  ASSERT_GT(verified, 0u);
  t.f.on_donor_down(10);  // its outstanding requests are void
  t.served.clear();
  EXPECT_TRUE(t.drive());
  EXPECT_EQ(t.served.count(10), 0u);
  EXPECT_EQ(static_cast<size_t>(t.served[11]), chunk_count(t.m) - verified);
}

TEST(StateTransfer, ResumesWhenTheSameStateIsOfferedAgainAndRestartsOnAnother) {
  Transfer t(2048, 2, 2, {10});
  for (const auto& [donor, index] : t.f.requests()) t.answer(donor, index);
  EXPECT_EQ(t.f.verified_chunks(), 2u);
  EXPECT_EQ(t.f.total_chunks(), chunk_count(t.m));  // the progress a joiner reports: 2 of total
  t.f.on_donor_down(10);
  EXPECT_TRUE(t.f.needs_offers());
  t.f.on_manifest(12, t.m);  // the same state from another donor: the verified chunks stay
  EXPECT_EQ(t.f.verified_chunks(), 2u);
  EXPECT_FALSE(t.f.needs_offers());
  t.f.on_donor_down(12);
  Transfer newer(2048, 6, 2, {});
  t.f.on_manifest(13, newer.m);  // another state: start over on it
  EXPECT_EQ(t.f.verified_chunks(), 0u);
  EXPECT_EQ(t.f.version(), 6u);
  newer.f = std::move(t.f);
  EXPECT_TRUE(newer.drive());
}

TEST(StateTransfer, IgnoresUnaskedChunksAndMalformedOffers) {
  Transfer t(1024, 4, 1, {});
  auto broken = t.m;
  broken.chunk_crcs.pop_back();
  t.f.on_manifest(10, broken);
  EXPECT_FALSE(t.f.has_target());
  t.f.on_manifest(10, t.m);
  EXPECT_EQ(t.answer(10, 3), StateFetcher::ChunkResult::kIgnored);  // not asked for (window 1: chunk 0 is)
  EXPECT_EQ(t.f.on_chunk(10, 9, 0, std::string(chunk_of(t.state, t.m, 0))), StateFetcher::ChunkResult::kIgnored);
  EXPECT_TRUE(t.drive());
}

}  // namespace
}  // namespace gwtf::train
