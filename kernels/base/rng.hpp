// Rng: the only source of randomness in gwtf's kernels and simulator.
// splitmix64 with our own distribution code, so a seed gives the same stream with every compiler and standard
// library (std::*_distribution differ between implementations; see FoundationDB's DeterministicRandom).
#pragma once

#include <cstdint>

namespace gwtf {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, bound), bound > 0; Lemire's multiply-shift with rejection (unbiased).
  uint64_t below(uint64_t bound) {
    for (;;) {
      __uint128_t m = static_cast<__uint128_t>(next_u64()) * bound;
      auto low = static_cast<uint64_t>(m);
      if (low >= bound || low >= (-bound) % bound) return static_cast<uint64_t>(m >> 64);
    }
  }

  // Uniform in [lo, hi], lo <= hi.
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

  bool chance(double p) { return uniform() < p; }

  // An independent stream, e.g. one per node, derived deterministically from this one.
  Rng fork() { return Rng(next_u64()); }

 private:
  uint64_t state_;
};

}  // namespace gwtf
