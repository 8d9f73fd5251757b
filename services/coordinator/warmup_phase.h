// WarmupPhase: phase 0, supervised warm-up for a model that cannot do the
// task yet (the built-in tiny model). It turns the run's labelled data into
// SFT groups (ScoredGroup.objective = SFT, one sample each):
//  - verifier: prompt = the verifier template with (problem, proof),
//    completion = a labelled analysis of that proof whose meta-score is 1
//    (a faithful analysis), so the verifier learns the format and the task;
//  - meta-verifier: prompt = the meta-verifier template with (problem,
//    proof, analysis), completion = `meta_completion(analysis)` when the
//    caller supplies one (the built-in domain renders it from its checker);
//  - generator: prompt = the generator template with the problem,
//    completion = `generator_completion(proof)` for proofs scored 1 (the
//    built-in domain appends the self-evaluation in the verifier's format).
// Texts are tokenized with `encode` (the model's tokenizer); an EOS id ends
// every completion. Each group is recorded with the analyses cursor in one
// transaction, so a restart neither repeats nor skips one.
//
// Thread-compatible.
#ifndef DSM_SERVICES_COORDINATOR_WARMUP_PHASE_H_
#define DSM_SERVICES_COORDINATOR_WARMUP_PHASE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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
  // Text -> token ids with the model's tokenizer (no special tokens added).
  std::function<absl::StatusOr<std::vector<int32_t>>(const std::string&)> encode;
  int32_t eos_token_id = -1;  // appended to every completion (< 0: none)
  // Built-in domains: the generator's target output for a correct proof
  // (e.g. "## Solution\n<proof>\n## Self Evaluation\n<analysis>"); empty =
  // no generator warm-up.
  std::function<std::string(const v1::ProblemRecord&, const v1::LabelledProof&)> generator_completion;
  // The meta-verifier's target output for a labelled analysis; empty = none.
  std::function<std::string(const v1::LabelledAnalysis&)> meta_completion;
  uint32_t batch = 256;  // records per RunOnce
};

struct WarmupProgress {
  uint32_t verifier = 0;
  uint32_t meta_verifier = 0;
  uint32_t generator = 0;
};

class WarmupPhase {
 public:
  WarmupPhase(RunStore* store, WarmupTemplates templates, WarmupPhaseOptions options);

  // Records SFT groups for the next `batch` analyses and proofs.
  absl::StatusOr<WarmupProgress> RunOnce();

 private:
  absl::StatusOr<GroupRecord> SftGroup(std::string group_id, v1::AdapterRole role, const std::string& problem_id,
                                       const std::string& prompt, const std::string& completion) const;

  RunStore* const store_;
  const WarmupTemplates templates_;
  const WarmupPhaseOptions options_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_WARMUP_PHASE_H_
