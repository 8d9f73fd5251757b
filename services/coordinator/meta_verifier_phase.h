// MetaVerifierPhase: phase 2 (meta-verifier RL), and the meta-verifier half
// of phase 3, where the enhanced verifier learns both jobs
// (../shared/METHOD.md).
//
// For each labelled analysis of the run (RunStore::Analyses, from the
// phase's cursor): ask the meta-verifier service for `group_size`
// assessments of (problem, proof, analysis) with the phase's adapter
// (META_VERIFIER in phase 2, VERIFIER in phase 3), reward each with
// R_format · (1 − |ms' − ms|) against the expert meta-label, and record the
// group for the learner with the cursor in one transaction. Errors as in
// VerifierPhase: a failing scoring call stops the phase, never a reward.
//
// Thread-compatible: one RunOnce() at a time.
#ifndef DSM_SERVICES_COORDINATOR_META_VERIFIER_PHASE_H_
#define DSM_SERVICES_COORDINATOR_META_VERIFIER_PHASE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "services/coordinator/pass_order.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "services/coordinator/verifier_phase.h"

namespace dsm {

struct MetaVerifierPhaseOptions {
  v1::Phase phase = v1::PHASE_META_VERIFIER_RL;
  uint32_t iteration = 1;
  uint32_t epoch = 1;  // which pass over the labelled analyses (as VerifierPhaseOptions::epoch)
  // The adapter trained: META_VERIFIER (phase 2) or VERIFIER (phase 3).
  v1::AdapterRole role = v1::ADAPTER_ROLE_META_VERIFIER;
  uint32_t group_size = 8;
  uint32_t max_analyses = 0;  // per RunOnce; 0 = every remaining one
  // A batch's assessments are requested side by side, this many at once (the meta-verifier
  // batches them), and all of them before any of its groups is recorded.
  uint32_t max_concurrent_calls = 16;
  std::optional<uint64_t> shuffle_seed;  // the pass's order over the analyses (as VerifierPhaseOptions)
  v1::SamplingParams params;
};

class MetaVerifierPhase {
 public:
  MetaVerifierPhase(RunStore* store, ScoringClient* scoring, MetaVerifierPhaseOptions options,
                    std::function<void()> on_group = nullptr);

  absl::StatusOr<ScoringPhaseProgress> RunOnce();
  std::string CursorName() const;

 private:
  RunStore* const store_;
  ScoringClient* const scoring_;
  const MetaVerifierPhaseOptions options_;
  PassQueue pass_;
  std::function<void()> on_group_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_META_VERIFIER_PHASE_H_
