// WarmupPhase: phase 0, supervised warm-up for a model that cannot do the
// task yet (coordinator.warmup_epochs: a real model that has never seen the
// output formats). One pass turns the run's labelled training data into SFT
// groups (ScoredGroup.objective = SFT, one sample each):
//  - verifier: prompt = the verifier template with (problem, proof),
//    completion = a labelled analysis of that proof whose meta-score is 1
//    (a faithful analysis) and whose boxed score is the proof's label, so the
//    verifier learns the format and the task;
//  - meta-verifier: prompt = the meta-verifier template with (problem,
//    proof, analysis), completion = `meta_completion(analysis)` when the
//    caller supplies one (warmup_targets.h renders it from the meta-label);
//  - generator: prompt = the generator template with the problem,
//    completion = `generator_completion(proof)` for proofs scored 1.
// Prompts are tokenized as the samplers tokenize them (special tokens added),
// completions without; an EOS id ends every completion. A pass takes the
// analyses, then the proofs, each in its PassOrder (shuffled from the run's
// seed, a new order each pass; pass e >= 2 gets "-e<e>" group ids); each
// group is recorded with its dataset's cursor in one transaction, so a
// restart neither repeats nor skips one. Evaluation problems are never
// trained on.
//
// Thread-compatible.
#ifndef DSM_SERVICES_COORDINATOR_WARMUP_PHASE_H_
#define DSM_SERVICES_COORDINATOR_WARMUP_PHASE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/coordinator/pass_order.h"
#include "services/coordinator/phase_groups.h"
#include "services/coordinator/run_store.h"
#include "services/scoring/prompt_template.h"

namespace dsm {

struct WarmupTemplates {
  PromptTemplate generator;
  PromptTemplate verifier;
  PromptTemplate meta_verifier;
};

struct WarmupPhaseOptions {
  // Text -> token ids with the model's tokenizer; add_special_tokens for prompts (BOS, as the
  // samplers encode them), not for completions.
  std::function<absl::StatusOr<std::vector<int32_t>>(const std::string& text, bool add_special_tokens)> encode;
  int32_t eos_token_id = -1;  // appended to every completion (< 0: none)
  // Built-in domains: the generator's target output for a correct proof
  // (e.g. "## Solution\n<proof>\n## Self Evaluation\n<analysis>"); empty =
  // no generator warm-up.
  std::function<std::string(const v1::ProblemRecord&, const v1::LabelledProof&)> generator_completion;
  // The meta-verifier's target output for a labelled analysis; empty = none.
  std::function<std::string(const v1::LabelledAnalysis&)> meta_completion;
  uint32_t batch = 256;  // records per RunOnce
  uint32_t epoch = 1;    // the pass, from 1
  std::optional<uint64_t> shuffle_seed;  // the run's seed: shuffled passes; unset: import order
};

struct WarmupProgress {
  uint32_t verifier = 0;       // groups recorded, by role
  uint32_t meta_verifier = 0;
  uint32_t generator = 0;
  uint32_t records = 0;        // labelled analyses and proofs gone through (0: the pass is done)
};

class WarmupPhase {
 public:
  WarmupPhase(RunStore* store, WarmupTemplates templates, WarmupPhaseOptions options);

  // Records the SFT groups of the pass's next `batch` analyses, or once they are done its next
  // `batch` proofs.
  absl::StatusOr<WarmupProgress> RunOnce();

 private:
  absl::StatusOr<GroupRecord> SftGroup(std::string group_id, v1::AdapterRole role, const std::string& problem_id,
                                       const std::string& prompt, const std::string& completion) const;
  // The SFT groups of one labelled analysis / proof (none for held-out problems).
  absl::StatusOr<std::vector<GroupRecord>> AnalysisGroups(const v1::LabelledAnalysis& analysis);
  absl::StatusOr<std::vector<GroupRecord>> ProofGroups(const v1::LabelledProof& proof);
  // Records the groups, the last one with the cursor at `key` (the cursor alone when none).
  absl::Status Record(const std::vector<GroupRecord>& groups, const std::string& cursor, int64_t key,
                      WarmupProgress* progress);
  // A training problem's statement; nullopt for an evaluation problem or one not in the run.
  absl::StatusOr<std::optional<v1::ProblemRecord>> TrainingProblem(const std::string& problem_id);

  RunStore* const store_;
  const WarmupTemplates templates_;
  const WarmupPhaseOptions options_;
  PassQueue analyses_;
  PassQueue proofs_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_WARMUP_PHASE_H_
