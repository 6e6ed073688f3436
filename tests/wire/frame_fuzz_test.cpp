// Fuzzing the frame decoder: random byte strings and random mutations of valid frames. No input may crash it
// (this binary also runs under AddressSanitizer + UBSan), and every frame it accepts must be valid.
//
// Case k of a run is a pure function of (seed, k). A failure prints both; replay one case with
//   GWTF_FUZZ_SEED=<seed> GWTF_FUZZ_CASE=<k> frame_fuzz_test
// Environment: GWTF_FUZZ_ITERATIONS (default 200000), GWTF_FUZZ_SEED (default 1; "random" draws one and prints
// it). The soak entry sets GWTF_FUZZ_SOAK: 2,000,000 x GWTF_SOAK_SCALE cases (scale 1 in CI, scripts/soak: 50).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "tests/wire/frame_builders.hpp"

namespace gwtf::wire {
namespace {

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

uint64_t run_seed() {
  const char* v = std::getenv("GWTF_FUZZ_SEED");
  if (v && std::string(v) == "random") {
    static const uint64_t seed =
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
    return seed;
  }
  return env_u64("GWTF_FUZZ_SEED", 1);
}

std::vector<char> random_bytes(Rng& rng, size_t n) {
  std::vector<char> out(n);
  for (auto& c : out) c = static_cast<char>(rng.below(256));
  return out;
}

// A frame whose segment table is consistent with its length, so the bytes reach Cap'n Proto's parser.
std::vector<char> random_framed(Rng& rng) {
  const uint32_t words = static_cast<uint32_t>(rng.between(1, 40));
  std::vector<char> out = random_bytes(rng, 8 + size_t{words} * 8);
  const uint32_t table[2] = {0, words};
  std::memcpy(out.data(), table, 8);
  return out;
}

std::vector<char> mutate(Rng& rng, std::vector<char> f) {
  const int edits = static_cast<int>(rng.between(1, 6));
  for (int e = 0; e < edits && !f.empty(); ++e) {
    const size_t keep_table = f.size() > 8 ? 8 : 0;  // most edits leave the segment table alone: go deeper
    const size_t body = f.size() - keep_table;
    switch (rng.below(7)) {
      case 0:  // flip one bit anywhere
        f[rng.below(f.size())] ^= static_cast<char>(1 << rng.below(8));
        break;
      case 1:
      case 2:  // flip a bit after the table
        if (body) f[keep_table + rng.below(body)] ^= static_cast<char>(1 << rng.below(8));
        break;
      case 3:  // overwrite a word after the table with an extreme value
        if (body >= 8) {
          const uint64_t extremes[] = {0, ~0ull, 1ull << 63, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFF00000000ull,
                                       rng.next_u64()};
          const uint64_t v = extremes[rng.below(6)];
          std::memcpy(&f[keep_table + (rng.below(body / 8) * 8)], &v, 8);
        }
        break;
      case 4:  // truncate
        f.resize(rng.below(f.size()));
        break;
      case 5:  // append garbage
        {
          auto tail = random_bytes(rng, rng.below(24));
          f.insert(f.end(), tail.begin(), tail.end());
        }
        break;
      case 6:  // rewrite the segment table
        if (f.size() >= 8) {
          const uint32_t v[2] = {static_cast<uint32_t>(rng.below(4)), static_cast<uint32_t>(rng.below(64))};
          std::memcpy(f.data(), v, 8);
        }
        break;
    }
  }
  return f;
}

// What "valid" means for an accepted frame, checked directly, then by a re-encode/decode round trip.
void expect_valid(const Message& m, const DecodeOptions& o) {
  ASSERT_EQ(m.header.version, kProtocolVersion);
  ASSERT_EQ(m.header.swarm_id, o.swarm_id);
  const TensorView* t = std::visit(
      [](const auto& b) -> const TensorView* {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, TensorView>) return &b;
        else if constexpr (std::is_base_of_v<StageTensor, T>) return &b.tensor;
        else return nullptr;
      },
      m.body);
  if (t) {
    ASSERT_LE(t->shape.size(), o.max_rank);
    for (auto d : t->shape) ASSERT_GE(d, 0);
    ASSERT_EQ(static_cast<uint64_t>(t->numel()) * element_size(t->dtype), t->nbytes);
    // Touch every byte: AddressSanitizer flags a view reaching outside the frame.
    unsigned sum = 0;
    for (size_t i = 0; i < t->nbytes; ++i) sum += static_cast<unsigned>(t->data[i]);
    (void)sum;
  }
  auto again = decode_frame(encode_frame(m.header, m.body), o);
  ASSERT_TRUE(again.ok()) << "re-encoding an accepted frame gave an invalid one: " << again.error().message;
  ASSERT_EQ(again->body.index(), m.body.index());
}

void run_case(uint64_t seed, uint64_t k, const std::vector<std::vector<char>>& corpus) {
  Rng rng(seed ^ (k * 0xD1B54A32D192ED03ull));
  std::vector<char> input;
  switch (rng.below(4)) {
    case 0: input = random_bytes(rng, rng.below(256)); break;
    case 1: input = random_framed(rng); break;
    default: input = mutate(rng, corpus[rng.below(corpus.size())]); break;
  }
  auto o = testing::options();
  auto r = decode_frame(std::move(input), o);
  if (r.ok()) {
    expect_valid(*r, o);
  } else {
    ASSERT_FALSE(r.error().message.empty());
  }
}

TEST(FrameFuzz, RandomAndMutatedFramesNeverCrashAndAcceptedOnesAreValid) {
  const uint64_t seed = run_seed();
  const auto corpus = testing::valid_corpus();
  std::cout << "frame fuzz: seed " << seed << std::endl;
  if (const char* one = std::getenv("GWTF_FUZZ_CASE")) {
    run_case(seed, std::strtoull(one, nullptr, 0), corpus);
    return;
  }
  const uint64_t n = std::getenv("GWTF_FUZZ_SOAK") ? 2000000 * env_u64("GWTF_SOAK_SCALE", 1)
                                                   : env_u64("GWTF_FUZZ_ITERATIONS", 200000);
  std::cout << "frame fuzz: " << n << " cases" << std::endl;
  for (uint64_t k = 0; k < n; ++k) {
    run_case(seed, k, corpus);
    if (::testing::Test::HasFailure()) {
      FAIL() << "replay with GWTF_FUZZ_SEED=" << seed << " GWTF_FUZZ_CASE=" << k;
    }
  }
}

// The mutations must actually reach deep checks, or the fuzz test proves little.
TEST(FrameFuzz, MutationsExerciseManyDistinctErrors) {
  const auto corpus = testing::valid_corpus();
  std::array<int, 16> seen{};
  int accepted = 0;
  for (uint64_t k = 0; k < 5000; ++k) {
    Rng rng(k);
    auto r = decode_frame(mutate(rng, corpus[rng.below(corpus.size())]), testing::options());
    if (r.ok()) ++accepted;
    else ++seen[static_cast<size_t>(r.error().code)];
  }
  int distinct = 0;
  for (int c : seen) distinct += c > 0;
  EXPECT_GE(distinct, 7) << "mutations reach too few of the decoder's checks";
  EXPECT_GT(accepted, 0) << "no mutation was ever accepted: they only test the segment table";
}

}  // namespace
}  // namespace gwtf::wire
