// AutoLabelPhase: phase 5, auto-labelling new proofs with scaled
// verification (../shared/METHOD.md), so the next iteration's verifier has
// fresh labelled data.
//
// Enqueue(): GenerateWork leases asking the generator for `proofs_per_problem`
// proofs of each training problem (from the phase's problem cursor).
// ProcessResults(): for each finished item after the results cursor, every
// well-formed proof not already in the run gets `n` verifier analyses (and, when
// all of them pass it, up to `correct_n` in all); each
// analysis that reports an issue (score < 1) gets `m` meta-verifications;
// AutoLabel (rewards.h) turns the evidence into a label (the lowest score
// confirmed by at least k analyses, 1 when no issue is confirmed) or drops
// the proof. The labels and the cursor are stored in one transaction
// (RunStore::AddAutoLabels): proofs with labeller "auto" and this iteration,
// the issue being the text of a confirmed lowest-score analysis.
//
// Thread-compatible.
#ifndef DSM_SERVICES_COORDINATOR_AUTO_LABEL_PHASE_H_
#define DSM_SERVICES_COORDINATOR_AUTO_LABEL_PHASE_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/rewards.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "services/scoring/prompt_template.h"
#include "services/scoring/score_parser.h"

namespace dsm {

struct AutoLabelPhaseOptions {
  uint32_t iteration = 1;
  uint32_t proofs_per_problem = 4;
  uint32_t n = 8;  // verifier analyses per proof
  uint32_t m = 4;  // meta-verifications per analysis that reports an issue
  // The analyses a label of 1 needs (0 or n: n). A proof that all n analyses pass gets
  // correct_n - n more before it is labelled, and they count as the rest.
  uint32_t correct_n = 0;
  // The most analyses one Verify request asks for (the scorers' limits.max_n; 0 = no limit):
  // the correct_n - n more go in requests of at most this many, side by side.
  uint32_t max_n_per_request = 0;
  AutoLabelOptions rule;  // k, confirm threshold
  v1::SamplingParams params;          // the generator's sampling
  v1::SamplingParams scoring_params;  // verifier / meta-verifier sampling
  uint64_t min_adapter_version = 0;   // the generator's
  std::optional<uint64_t> seed;       // the run's seed (GenerationWorkSpec::seed)
  // A work item's proofs are verified (and their issue-reporting analyses meta-verified) side by
  // side, this many calls at once (the scorers batch them), not one after another.
  uint32_t max_concurrent_calls = 16;
  // Work items labelled side by side, so the verifier and the meta-verifier both have work: a
  // sliding window (the next item starts when any one is done), each item stored in order.
  uint32_t items_at_once = 4;
};

struct AutoLabelProgress {
  uint32_t enqueued = 0;
  uint32_t items = 0;       // this phase's work items processed (done or failed)
  uint32_t proofs = 0;      // well-formed new proofs considered
  uint32_t labelled = 0;    // labels stored
  uint32_t dropped = 0;     // no confident label
  uint32_t duplicates = 0;  // proof text already in the run
  uint32_t malformed = 0;   // completions without a proof section
};

class AutoLabelPhase {
 public:
  AutoLabelPhase(RunStore* store, LeaseDispatcher* dispatcher, ScoringClient* scoring, PromptTemplate generator,
                 OutputMarkers markers, AutoLabelPhaseOptions options);

  // Up to `problems` training problems, those nobody labelled first (auto-labelling is for
  // new problems; a labelled one's proofs are mostly duplicates of its labels), in import
  // order; then labelled ones. Each kind has its own cursor, so a later call goes on.
  absl::StatusOr<AutoLabelProgress> Enqueue(uint32_t problems);
  // Labels the finished items after the results cursor. `on_stored`, if set, is called after each
  // item is stored (in order, one call at a time) with the progress of this call so far, so a
  // caller's progress bar moves item by item.
  absl::StatusOr<AutoLabelProgress> ProcessResults(
      const std::function<void(const AutoLabelProgress&)>& on_stored = nullptr);

  std::string ProblemCursor() const;          // unlabelled problems
  std::string LabelledProblemCursor() const;  // labelled problems, once the unlabelled run out
  std::string ResultCursor() const;

 private:
  RunStore* const store_;
  LeaseDispatcher* const dispatcher_;
  ScoringClient* const scoring_;
  const PromptTemplate generator_;
  const OutputMarkers markers_;
  const AutoLabelPhaseOptions options_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_AUTO_LABEL_PHASE_H_
