// PipelineRunner: runs the DeepSeekMath-V2 pipeline (../shared/METHOD.md) on
// the coordinator's run, phase by phase, with the phases of this folder:
//
//   iteration 1:  [0 warm-up SFT] → 1 verifier RL → 2 meta-verifier RL →
//                 3 enhanced verifier → 4 generator RL (generator adapter
//                 initialised from the verifier's) → 5 auto-labelling
//   iteration ≥2: 3 → 4 → 5 (the verifier data now includes the new labels)
//
// Each phase appends PhaseStarted / PhaseFinished events and progress to the
// RunStore; training groups go to the learner through the GroupFeeder (Wake
// after each group). A training phase ends when the learner has trained on
// every group it produced: the runner waits until the GroupFeeder delivered
// them, then calls Learner.Flush for the phase's role, so evaluations after
// the phase (and the next phase) use the adapter that saw all of it. With a
// Grader, held-out evaluations against the exact checker: the verifier
// before phase 1 and after phases 1 and 3, the generator before and after
// phase 4, the auto-labels after phase 5 (each with the adapter version the
// flush returned). Every request for a role asks for at least the version
// its last flush returned; with lockstep_round, a training phase samples and
// trains in turns, round by round, so the same seed gives the same run.
// Every phase is restart-safe through its cursors, so a
// restarted coordinator that runs the pipeline again carries on where it
// stopped. The run ends SUCCEEDED, or FAILED with the error that stopped it
// (CANCELLED when `stop` was set).
//
// Thread-compatible: Run() blocks the calling thread.
#ifndef DSM_SERVICES_COORDINATOR_PIPELINE_RUNNER_H_
#define DSM_SERVICES_COORDINATOR_PIPELINE_RUNNER_H_

#include <atomic>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/coordinator/auto_label_evaluation.h"
#include "services/coordinator/auto_label_phase.h"
#include "services/coordinator/generator_evaluation.h"
#include "services/coordinator/generator_phase.h"
#include "services/coordinator/group_feeder.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/meta_verifier_phase.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "services/coordinator/verifier_evaluation.h"
#include "services/coordinator/verifier_phase.h"
#include "services/coordinator/warmup_phase.h"

namespace dsm {

struct PipelineOptions {
  uint32_t iterations = 1;
  std::optional<WarmupPhaseOptions> warmup;  // phase 0 only when set
  uint32_t warmup_epochs = 0;                 // its passes over the labelled data (at least 1 when set)
  VerifierPhaseOptions verifier;             // phase and iteration are set by the runner
  MetaVerifierPhaseOptions meta_verifier;    // likewise, and the role
  GeneratorPhaseOptions generator;
  AutoLabelPhaseOptions auto_label;
  // Passes over the labelled proofs in phase 1 and over the labelled analyses in phase 2 (each
  // pass samples new groups). Phase 3 makes one pass, its proofs and analyses interleaved so
  // that neither kind of data is the adapter's last word.
  uint32_t verifier_epochs = 1;
  uint32_t meta_verifier_epochs = 1;
  // Phase 3 trains the verifier's adapter on the labelled analyses too (METHOD.md: one adapter
  // for both jobs); false: on the labelled proofs only.
  bool enhanced_analyses = true;
  uint32_t generator_problems = 64;   // problems per generator phase (per pass)
  uint32_t generator_epochs = 1;      // passes over them in phase 4, a fresh group each
  // Phase 4's problems in flight at most (enqueued, not yet scored into a group; 0 = all at
  // once). A problem is sampled by the adapter of the moment it is leased, and the learner drops
  // a group more than max_policy_lag versions old when it arrives: with every problem enqueued
  // at once the sampler runs far ahead of scoring and training, and the late groups are scored
  // only to be dropped. The coordinator sets it to learner.groups_per_step × max_policy_lag.
  uint32_t generator_window = 0;
  // Lockstep rounds of this many items (proofs, analyses or problems; 0 = off), for runs that
  // repeat themselves: a training phase samples a round with the adapter version the learner
  // published after the previous round, then the learner trains on all of the round's groups
  // (Flush) before the next round is sampled. Without it the samplers pick up each new version
  // as it comes, so which version sampled an item depends on timing. Sampling and training then
  // take turns instead of overlapping. The coordinator sets it to
  // learner.groups_per_step × max_policy_lag (coordinator.lockstep), so no group of a round is
  // too old for the learner.
  uint32_t lockstep_round = 0;
  uint32_t auto_label_problems = 32;  // problems per auto-labelling phase
  // Evaluations with an exact judge (the built-in domain's checker): the
  // verifier before phase 1 and after phases 1 and 3. Not owned; null = none.
  const Grader* grader = nullptr;
  VerifierEvaluationOptions evaluation;  // phase, iteration and point are set by the runner
  GeneratorEvaluationOptions generator_evaluation;  // likewise, and min_adapter_version
  absl::Duration poll = absl::Milliseconds(100);
  absl::Duration learner_deadline = absl::Seconds(60);
};

struct PipelineTemplates {
  PromptTemplate generator;
  PromptTemplate verifier;
  PromptTemplate meta_verifier;
  OutputMarkers verifier_markers;  // the self-evaluation's markers
};

// What a scoring phase trains on: the labelled proofs (phases 1 and 3), the labelled analyses
// (phase 2, and phase 3 with enhanced_analyses), and how many passes (phase 3: one).
struct ScoringPhaseData {
  bool proofs = false;
  bool analyses = false;
  uint32_t epochs = 1;
};
ScoringPhaseData ScoringPhaseDataOf(v1::Phase phase, const PipelineOptions& options);

class PipelineRunner {
 public:
  // None owned; `feeder` may be null (groups then stay PENDING in the store).
  PipelineRunner(RunStore* store, LeaseDispatcher* dispatcher, ScoringClient* scoring, GroupFeeder* feeder,
                 v1::Learner::StubInterface* learner, PipelineTemplates templates, PipelineOptions options);

  // Runs every phase; returns the error that stopped the run (also stored).
  absl::Status Run(const std::atomic<bool>* stop);

 private:
  absl::Status RunPhase(v1::Phase phase, uint32_t iteration, const std::atomic<bool>* stop);
  absl::Status Scoring(v1::Phase phase, uint32_t iteration, const std::atomic<bool>* stop);
  // One pass of phase 4 over its problems: a window of them in flight, each scored as it
  // finishes (`done` counts them, `total` loses the problems there were none for); or, with
  // lockstep_round, round by round.
  absl::Status GeneratorPass(uint32_t iteration, uint32_t epoch, uint64_t* done, uint64_t* total,
                             const std::atomic<bool>* stop);
  absl::Status GeneratorPassInRounds(uint32_t iteration, uint32_t epoch, uint64_t* done, uint64_t* total,
                                     const std::atomic<bool>* stop);
  // Phase 4 over a pass's problems, sampled by the generator version the last flush published
  // (at least).
  GeneratorPhase GeneratorPassPhase(uint32_t iteration, uint32_t epoch);
  // The version of `role` the last FinishTraining returned (0 = none yet this process): the
  // scoring client's floor for the role, which FinishTraining raises.
  uint64_t Trained(v1::AdapterRole role) const;
  // Waits until the work queue holds nothing queued or leased, calling `drain` meanwhile.
  absl::Status AwaitQueue(const std::function<absl::Status()>& drain, const std::atomic<bool>* stop);
  // Samplers need a published adapter of each role before they can serve
  // it: a role the learner has never published (version 0) gets a fresh
  // adapter (LoRA B = 0, so it samples as the base model) as version 1.
  absl::Status PublishFreshAdapters();
  absl::Status InitGeneratorFromVerifier();
  // Waits until every recorded group reached the learner, then has the
  // learner train what it buffered for `role`; returns the role's version,
  // which every later request for the role asks for at least.
  absl::StatusOr<uint64_t> FinishTraining(v1::AdapterRole role, const std::atomic<bool>* stop);
  // The evaluations when a grader is set; a run without evaluation data skips them.
  absl::Status Evaluate(v1::Phase phase, uint32_t iteration, v1::EvaluationPoint point, uint64_t min_version);
  absl::Status EvaluateGenerator(uint32_t iteration, v1::EvaluationPoint point, uint64_t min_version,
                                 const std::atomic<bool>* stop);
  absl::Status EvaluateAutoLabels(uint32_t iteration, uint32_t considered);
  // Records the current phase's progress (best effort: a failure is logged).
  void Progress(v1::Phase phase, uint32_t iteration, uint64_t done, uint64_t total, const char* unit);
  void Wake();

  RunStore* const store_;
  LeaseDispatcher* const dispatcher_;
  ScoringClient* const scoring_;
  GroupFeeder* const feeder_;
  v1::Learner::StubInterface* const learner_;
  const PipelineTemplates templates_;
  const PipelineOptions options_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_PIPELINE_RUNNER_H_
