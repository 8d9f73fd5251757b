// SeededRng: a small deterministic random source for the synthetic domain (SplitMix64), plus a
// stable string hash. Unlike std::uniform_int_distribution (whose output differs between
// standard libraries) and absl::Hash (salted per process), both give the same numbers on every
// platform and every run, so a problem is a pure function of its seed.
//
// Not thread-safe (one instance per caller); the free functions are pure.
#ifndef DSM_TASKS_SEEDED_RNG_H_
#define DSM_TASKS_SEEDED_RNG_H_

#include <cstdint>
#include <limits>

#include "absl/strings/string_view.h"
#include "common/seed_mix.h"  // MixBits64, CombineSeeds, StableHash64

namespace dsm {

class SeededRng {
 public:
  explicit SeededRng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), unbiased (rejection sampling). Precondition: n > 0.
  int Uniform(int n) {
    const uint64_t range = static_cast<uint64_t>(n);
    const uint64_t limit =
        std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % range;
    uint64_t x = Next();
    while (x >= limit) x = Next();
    return static_cast<int>(x % range);
  }

  // Uniform in [lo, hi]. Precondition: lo <= hi.
  int Between(int lo, int hi) { return lo + Uniform(hi - lo + 1); }

  // True with probability p (53-bit resolution).
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }

 private:
  uint64_t state_;
};

}  // namespace dsm

#endif  // DSM_TASKS_SEEDED_RNG_H_
