// Seed mixing shared by everything that draws from the run's seed (the built-in domain, the
// coordinator's shuffled passes): SplitMix64's output function, the same on every platform and
// in every process, unlike std::hash or absl::Hash.
#ifndef DSM_COMMON_SEED_MIX_H_
#define DSM_COMMON_SEED_MIX_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace dsm {

// SplitMix64's output function: a bijective 64-bit mix.
inline uint64_t MixBits64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A seed derived from two values (order matters).
inline uint64_t CombineSeeds(uint64_t a, uint64_t b) { return MixBits64(MixBits64(a) ^ b); }

// FNV-1a over the bytes, then mixed: a stable hash of a name (a tensor's, a dataset's, a problem's).
inline uint64_t StableHash64(absl::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return MixBits64(h);
}

// The seed of one named thing drawn from a run's seed (a tensor, a dataset's pass, a sampling
// request): the same name, the same seed, in every process.
inline uint64_t NamedSeed(uint64_t seed, absl::string_view name) { return CombineSeeds(seed, StableHash64(name)); }

}  // namespace dsm

#endif  // DSM_COMMON_SEED_MIX_H_
