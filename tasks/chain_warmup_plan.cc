#include "tasks/chain_warmup_plan.h"

#include <algorithm>
#include <cmath>

#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

constexpr uint64_t kTrainSalt = 0x7761726d75703031ULL;  // "warmup01"
constexpr uint64_t kOwnProofSalt = 0x6f776e70726f6f66ULL;  // "ownproof"
constexpr uint64_t kScrambleSalt = 0x7363726d626c6531ULL;  // "scrmble1"
constexpr uint64_t kWriterSalt = 0x7772697465723031ULL;  // "writer01"
constexpr uint64_t kOverclaimSalt = 0x6f636c61696d3031ULL;  // "oclaim01"

struct ScoringShares {
  double own_proof = 0;
  double scrambled = 0;  // of the examples not on the model's own proofs
};
struct ScoringKinds {
  ChainWarmupExampleKind own_proof, scrambled, made_up;
};

// A verifier or meta-verifier example: on one of the model's own proofs (once
// there are some), else on a scrambled proof, else on a made-up one.
ChainWarmupExampleKind ScoringExampleKind(uint64_t seed, bool own_proofs_ready, ScoringShares shares,
                                          ScoringKinds kinds) {
  if (own_proofs_ready && SeededRng(CombineSeeds(seed, kOwnProofSalt)).Chance(shares.own_proof)) {
    return kinds.own_proof;
  }
  if (SeededRng(CombineSeeds(seed, kScrambleSalt)).Chance(shares.scrambled)) return kinds.scrambled;
  return kinds.made_up;
}

}  // namespace

uint64_t ChainWarmupExampleSeed(const ChainWarmupOptions& o, int step, int j) {
  return CombineSeeds(CombineSeeds(CombineSeeds(o.seed, kTrainSalt), step), j);
}

uint64_t ChainWarmupOwnProofPoolSeed(const ChainWarmupOptions& o, int step) {
  return CombineSeeds(CombineSeeds(o.seed, kOwnProofSalt), step);
}

double ChainWarmupLearningRate(const ChainWarmupOptions& o, int step) {
  int first = 0, end = o.steps;  // the stretch of steps whose schedule `step` is on
  if (o.lr_restart_after_drill && o.lookup_drill_steps > 0 && o.lookup_drill_steps < o.steps) {
    (step < o.lookup_drill_steps ? end : first) = o.lookup_drill_steps;
  }
  const int at = step - first;
  const int warmup = std::min(o.lr_warmup_steps, end - first);
  if (at < warmup) return o.learning_rate * (at + 1) / warmup;
  const int span = std::max(1, end - first - warmup);
  const double t = std::min(1.0, static_cast<double>(at - warmup) / span);
  const double floor = o.final_lr_fraction;
  return o.learning_rate * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * t)));
}

bool IsLookupDrillStep(const ChainWarmupOptions& o, int step) {
  return step < o.lookup_drill_steps || (o.lookup_drill_every > 0 && step % o.lookup_drill_every == 0);
}

ChainWarmupWriter ChainWarmupWriterOf(const ChainWarmupOptions& o, int step, int j) {
  const uint64_t seed = ChainWarmupExampleSeed(o, step, j);
  ChainWarmupWriter w;
  if (SeededRng(CombineSeeds(seed, kWriterSalt)).Chance(o.generator_flaw_share)) w.flaw = o.generator_flaw;
  w.overclaims = w.flaw != ChainFlaw::kNone &&
                 SeededRng(CombineSeeds(seed, kOverclaimSalt)).Chance(o.generator_overclaim_share);
  return w;
}

ChainWarmupExampleKind ChainWarmupExampleKindOf(const ChainWarmupOptions& o, int step, int j, bool own_proofs_ready) {
  if (step < o.lookup_drill_steps) return ChainWarmupExampleKind::kScrambledVerifier;
  if (IsLookupDrillStep(o, step)) {
    return (j + 0.5) / o.batch < o.lookup_drill_meta_share ? ChainWarmupExampleKind::kScrambledMetaVerifier
                                                           : ChainWarmupExampleKind::kScrambledVerifier;
  }
  const double total = o.generator_share + o.verifier_share + o.meta_verifier_share;
  const double at = (j + 0.5) / o.batch * total;
  if (at < o.generator_share) return ChainWarmupExampleKind::kGenerator;
  const uint64_t seed = ChainWarmupExampleSeed(o, step, j);
  if (at >= o.generator_share + o.verifier_share) {
    return ScoringExampleKind(seed, own_proofs_ready, {o.meta_own_proof_share, o.meta_scrambled_proof_share},
                              {ChainWarmupExampleKind::kOwnProofMetaVerifier,
                               ChainWarmupExampleKind::kScrambledMetaVerifier, ChainWarmupExampleKind::kMetaVerifier});
  }
  return ScoringExampleKind(seed, own_proofs_ready, {o.own_proof_share, o.scrambled_proof_share},
                            {ChainWarmupExampleKind::kOwnProofVerifier, ChainWarmupExampleKind::kScrambledVerifier,
                             ChainWarmupExampleKind::kVerifier});
}

}  // namespace dsm
