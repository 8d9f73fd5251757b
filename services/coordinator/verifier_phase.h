// VerifierPhase: phase 1 (verifier RL) and, with a meta-verifier in the
// loop, phase 3 (enhanced verifier) of the pipeline (../shared/METHOD.md).
//
// For each labelled proof of the run (in the pass's PassOrder: shuffled by
// shuffle_seed, or import order; from the phase's cursor): ask the verifier service for `group_size`
// analyses of the proof (ScoringClient::Verify with return_logprobs), score
// each analysis against the expert label — R = R_format · R_score, and in
// the enhanced phase · R_meta from the meta-verifier's assessment of that
// analysis — and record the group for the learner (RecordGroup, PENDING;
// the GroupFeeder sends it). The group and the cursor move in one
// transaction, so a restarted coordinator neither repeats nor skips a proof.
//
// A scoring call that keeps failing stops the phase with its error (the
// proof is retried when the phase runs again); a failed judgement is never
// turned into a reward.
//
// Thread-compatible: one RunOnce() at a time.
#ifndef DSM_SERVICES_COORDINATOR_VERIFIER_PHASE_H_
#define DSM_SERVICES_COORDINATOR_VERIFIER_PHASE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/pass_order.h"
#include "services/coordinator/phase_groups.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"

namespace dsm {

struct VerifierPhaseOptions {
  v1::Phase phase = v1::PHASE_VERIFIER_RL;  // or PHASE_ENHANCED_VERIFIER_RL (adds R_meta)
  uint32_t iteration = 1;
  // Which pass over the labelled proofs (from 1): each pass has its own cursor and its own
  // group ids ("-e<epoch>" from the second on), so a proof gets a new group every pass.
  uint32_t epoch = 1;
  uint32_t group_size = 8;   // analyses per proof (GRPO group)
  uint32_t max_proofs = 0;   // per RunOnce; 0 = every remaining proof
  // The pass's order over the proofs (PassOrder): shuffled from this seed (the run's), or, unset,
  // import order.
  std::optional<uint64_t> shuffle_seed;
  v1::SamplingParams params;  // temperature, max_tokens, ... (return_logprobs is forced on)
  uint32_t meta_samples = 1;  // enhanced phase: meta-verifications per analysis (mean)
  v1::SamplingParams meta_params;  // enhanced phase: the meta-verifications' (unset = the scorer's defaults)
  // Scoring calls made side by side, this many at once (the scorers batch them), not one after
  // another: the verifications of a RunOnce's proofs, then (enhanced phase) the
  // meta-verifications of all their analyses.
  uint32_t max_concurrent_calls = 16;
};

class VerifierPhase {
 public:
  // Neither is owned. `on_group` (may be empty) runs after each recorded group.
  VerifierPhase(RunStore* store, ScoringClient* scoring, VerifierPhaseOptions options,
                std::function<void()> on_group = nullptr);

  // Works through the pass's next proofs after the cursor (at most max_proofs).
  absl::StatusOr<ScoringPhaseProgress> RunOnce();

  // The cursor's name in the RunStore.
  std::string CursorName() const;

 private:
  RunStore* const store_;
  ScoringClient* const scoring_;
  const VerifierPhaseOptions options_;
  PassQueue pass_;
  std::function<void()> on_group_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_VERIFIER_PHASE_H_
