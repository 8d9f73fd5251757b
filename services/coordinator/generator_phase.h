// GeneratorPhase: phase 4 (generator RL with self-verification,
// ../shared/METHOD.md).
//
// Enqueue(): one GenerateWork lease per training problem (from the phase's
// problem cursor, at most `problems` of them): the generator template
// rendered with the problem, `group_size` completions, the generator
// adapter, log-probs on. Workers pick the leases up (LeaseDispatcher).
//
// ProcessResults(): for each finished work item after the results cursor
// (those read together handled in the order their problems were enqueued),
// splits every completion into proof and self-evaluation, asks the verifier
// for `verifications` analyses of the proof (their mean is s) and the
// meta-verifier for `meta_verifications` assessments of the self-evaluation
// (their mean is ms), and rewards it with
// R = R_format(Y, Z) · (α·s + β·(1 − |s' − s|)·ms). The group and the results
// cursor move in one transaction. A failed work item (out of attempts) is
// skipped and counted; a scoring call that keeps failing stops the call with
// its error, and the item is processed again next time.
//
// Thread-compatible.
#ifndef DSM_SERVICES_COORDINATOR_GENERATOR_PHASE_H_
#define DSM_SERVICES_COORDINATOR_GENERATOR_PHASE_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/phase_groups.h"
#include "services/coordinator/rewards.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "services/scoring/prompt_template.h"

namespace dsm {

struct GeneratorPhaseOptions {
  uint32_t iteration = 1;
  // Pass over the phase's problems (a fresh group per problem each pass): from the second on,
  // its own problem cursor and work keys ("-e<epoch>"); results are read from one cursor.
  uint32_t epoch = 1;
  uint32_t group_size = 8;          // completions per problem
  uint32_t verifications = 4;       // verifier analyses per proof (s = their mean)
  uint32_t meta_verifications = 1;  // meta-verifications of each self-evaluation (ms = their mean)
  v1::SamplingParams params;        // the generator's sampling (log-probs forced on)
  v1::SamplingParams scoring_params;
  GeneratorRewardOptions reward;
  uint64_t min_adapter_version = 0;
  std::optional<uint64_t> seed;  // the run's seed (GenerationWorkSpec::seed)
  // A group's scoring calls (each completion's verification and meta-verification) are made side
  // by side, this many at once (the scorers batch them), not one after another.
  uint32_t max_concurrent_calls = 16;
};

struct GeneratorPhaseProgress {
  uint32_t enqueued = 0;
  uint32_t groups = 0;        // groups recorded by ProcessResults
  uint32_t failed_items = 0;  // work items that failed for good (skipped)
  // Work items of the phase whose results were read: a group recorded, too few samples left for
  // one, or failed. Each is one problem done (what a window of problems in flight counts).
  uint32_t finished_items = 0;
  uint32_t samples = 0;
  uint32_t format_failures = 0;
  double reward_sum = 0;
  double verifier_score_sum = 0;  // Σ s over well-formed samples
};

class GeneratorPhase {
 public:
  // None owned. `generator` renders the prompt; `markers` are the verifier
  // markers the self-evaluation must use.
  GeneratorPhase(RunStore* store, LeaseDispatcher* dispatcher, ScoringClient* scoring, PromptTemplate generator,
                 OutputMarkers markers, GeneratorPhaseOptions options, std::function<void()> on_group = nullptr);

  absl::StatusOr<GeneratorPhaseProgress> Enqueue(uint32_t problems);
  absl::StatusOr<GeneratorPhaseProgress> ProcessResults();

  std::string ProblemCursor() const;
  std::string ResultCursor() const;

 private:
  RunStore* const store_;
  LeaseDispatcher* const dispatcher_;
  ScoringClient* const scoring_;
  const PromptTemplate generator_;
  const OutputMarkers markers_;
  const GeneratorPhaseOptions options_;
  std::function<void()> on_group_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_GENERATOR_PHASE_H_
