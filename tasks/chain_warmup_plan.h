// The warm-up's plan (tasks/chain_warmup.h runs it): every seeded choice of what a step shows —
// which kind of example each slot of the batch is, the generator's writer, the own-proof pool's
// problems — and the step's learning rate. Pure functions of the options, the step and the slot:
// the same options give the same plan, whatever the thread count or the model.
#ifndef DSM_TASKS_CHAIN_WARMUP_PLAN_H_
#define DSM_TASKS_CHAIN_WARMUP_PLAN_H_

#include <cstdint>

#include "tasks/chain_domain.h"
#include "tasks/chain_warmup.h"

namespace dsm {

// What example `j` of step `step` shows. The roles are laid out over the batch by their shares
// (every step the same mix, up to rounding), except in the look-up drill's steps, which are all
// kScrambledVerifier. A verifier example shows one of the model's own proofs with probability
// own_proof_share once a pool of them exists (`own_proofs_ready`), else a scrambled proof with
// probability scrambled_proof_share, else a made-up one; a meta-verifier example likewise with
// meta_own_proof_share and meta_scrambled_proof_share; the draws are seeded by (seed, step, j).
enum class ChainWarmupExampleKind {
  kGenerator,
  kVerifier,
  kScrambledVerifier,
  kOwnProofVerifier,
  kMetaVerifier,
  kScrambledMetaVerifier,
  kOwnProofMetaVerifier,
};
ChainWarmupExampleKind ChainWarmupExampleKindOf(const ChainWarmupOptions& options, int step, int j,
                                                bool own_proofs_ready);
// The writer of a generator example `j` of step `step`: the flaw it puts in its proof
// (generator_flaw with probability generator_flaw_share, else kNone), and whether its
// self-evaluation overclaims (only a flawed proof's, with probability generator_overclaim_share).
// Two draws seeded by (seed, step, j), each with its own salt: the flaw's does not depend on the
// overclaim share.
struct ChainWarmupWriter {
  ChainFlaw flaw = ChainFlaw::kNone;
  bool overclaims = false;
};
ChainWarmupWriter ChainWarmupWriterOf(const ChainWarmupOptions& options, int step, int j);
// The learning rate of step `step`: linear warm-up over lr_warmup_steps, then cosine decay to
// final_lr_fraction × learning_rate at `steps`; with lr_restart_after_drill, the drill's steps
// and the rest each run that schedule over their own steps.
double ChainWarmupLearningRate(const ChainWarmupOptions& options, int step);
// Whether `step` is a look-up drill step (the first lookup_drill_steps, then every
// lookup_drill_every-th).
bool IsLookupDrillStep(const ChainWarmupOptions& options, int step);

// The seed of example `j` of step `step`: its problem, and the draws above.
uint64_t ChainWarmupExampleSeed(const ChainWarmupOptions& options, int step, int j);
// The seed of the own-proof pool sampled at step `step`: its problems and their sampling.
uint64_t ChainWarmupOwnProofPoolSeed(const ChainWarmupOptions& options, int step);

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_WARMUP_PLAN_H_
