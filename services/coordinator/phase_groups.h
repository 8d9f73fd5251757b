// Building blocks the pipeline phases share: a training group for the
// learner from sampled completions (token ids, behaviour log-probs, adapter
// version, finish reason) and their rewards.
#ifndef DSM_SERVICES_COORDINATOR_PHASE_GROUPS_H_
#define DSM_SERVICES_COORDINATOR_PHASE_GROUPS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dsm/v1/common.pb.h"
#include "dsm/v1/coordinator.pb.h"
#include "google/protobuf/repeated_field.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/run_store.h"
#include "services/scoring/prompt_template.h"

namespace dsm {

// What one RunOnce() of a scoring-role phase did.
struct ScoringPhaseProgress {
  uint32_t items = 0;          // proofs (or analyses) done by this call
  uint32_t skipped = 0;        // held-out ones passed over (never trained on)
  uint32_t unjudged = 0;       // samples left out: a judge (meta-verifier) gave no valid score
  uint32_t too_few_samples = 0;  // groups left with under 2 samples: not recorded (nothing to compare)
  uint32_t groups_recorded = 0;
  uint32_t format_failures = 0;
  double reward_sum = 0;       // over every analysis of this call
  uint32_t analyses = 0;
};

// A scorer answers INVALID_ARGUMENT about one request it cannot judge (a
// text over its limits, say): that item or sample is left out of training
// and logged, never given a made-up reward; any other error stops the phase.
bool LeftOutByScorer(const absl::Status& status, const std::string& what);

// Passes over labelled data (phases 1 and 2): the first keeps the plain cursor dataset and
// group ids ("proofs", "p1-i1-<id>"); pass e >= 2 uses "proofs-e<e>" and "...-e<e>".
std::string EpochDataset(absl::string_view dataset, uint32_t epoch);
std::string EpochSuffix(uint32_t epoch);

// An empty GRPO group; the behaviour log-probs were taken at params' temperature.
GroupRecord NewGroup(std::string group_id, v1::AdapterRole role, v1::Phase phase, uint32_t iteration,
                     std::string problem_id, std::string source, const v1::SamplingParams& params,
                     const google::protobuf::RepeatedField<int32_t>& prompt_token_ids);

// A sample of `completion` with `reward`; the parsed score's format and value
// go into reward_parts ("r_format", "score") for the report.
SampleRecord SampleOf(const v1::Completion& completion, const v1::Score& score, double reward);

// Records `group` and moves the phase's `cursor` to `position` (the record's key in its pass) in one
// transaction (a group stored before is left alone), and counts it. A group
// of fewer than 2 samples (the others left out) is not recorded: GRPO's
// advantage compares samples of a group, and the learner refuses such a
// group; only the cursor moves, and it is counted in too_few_samples.
absl::Status RecordAndAdvance(RunStore* store, const GroupRecord& group, const std::string& cursor, int64_t position,
                              ScoringPhaseProgress* progress);

// What EnqueueGenerationWork asks workers for.
struct GenerationWorkSpec {
  v1::Phase phase = v1::PHASE_GENERATOR_RL;
  uint32_t iteration = 1;
  uint32_t n = 8;  // completions per problem
  v1::SamplingParams params;
  uint64_t min_adapter_version = 0;
  uint32_t epoch = 1;  // pass over the problems: keys get EpochSuffix(epoch)
  // The run's seed: an item whose params carry no seed is sampled with NamedSeed(seed, its key),
  // so the same run asks for the same completions. Unset = the worker draws one.
  std::optional<uint64_t> seed;
};

// One GenerateWork lease per training problem after `cursor` (at most
// `problems`): the generator template rendered with the statement, the
// generator adapter, log-probs on; keys "p<phase>-i<iteration>-<problem_id>[-e<epoch>]"
// make a repeat after a restart harmless. Only problems `labels` admits
// (RunStore::Problems). Moves the cursor; returns how many were enqueued.
absl::StatusOr<uint32_t> EnqueueGenerationWork(RunStore* store, LeaseDispatcher* dispatcher,
                                               const PromptTemplate& generator, const GenerationWorkSpec& spec,
                                               const std::string& cursor, uint32_t problems,
                                               ProblemLabels labels = ProblemLabels::kAny);

// A finished GenerateWork item read back: its work, the worker's result and the problem it is
// for. DATA_LOSS when the stored payload or result does not parse; FAILED_PRECONDITION when the
// problem is no longer in the run.
struct GeneratedItem {
  v1::GenerateWork work;
  v1::GenerateResult result;
  v1::ProblemRecord problem;
};
absl::StatusOr<GeneratedItem> ReadGeneratedItem(RunStore* store, const WorkItem& item);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_PHASE_GROUPS_H_
