// LocalProofBackend: the ProofBackend `dsm eval` runs on — the base model in
// this process (a ModelStack) with the generator's and the verifier's LoRA
// adapters loaded from PEFT folders (e.g. a run's newest learner
// checkpoints), the verifier's answers parsed by the same ScoringCore the
// verifier service uses. Every call's samples share the sampler's continuous
// batches, so callers should issue many calls at once.
//
// Thread-safe.
#ifndef DSM_SERVICES_EVAL_LOCAL_PROOF_BACKEND_H_
#define DSM_SERVICES_EVAL_LOCAL_PROOF_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "services/eval/proof_search.h"
#include "services/verifier/model_stack.h"
#include "services/verifier/scoring_core.h"

namespace dsm {

struct LocalProofBackendOptions {
  std::string generator_adapter;  // PEFT folder; empty = the base model generates
  std::string verifier_adapter;   // PEFT folder; empty = the base model verifies
  std::string prompts_dir;        // verifier.txt (and the generator's markers)
  absl::Duration call_timeout = absl::Minutes(30);
};

class LocalProofBackend final : public ProofBackend {
 public:
  // Loads config.model.path and the adapters. INVALID_ARGUMENT / NOT_FOUND
  // naming the folder that is wrong.
  static absl::StatusOr<std::unique_ptr<LocalProofBackend>> Create(const DsmConfig& config,
                                                                   const LocalProofBackendOptions& options);
  ~LocalProofBackend() override;

  absl::StatusOr<std::vector<ProofAttempt>> Generate(const std::string& prompt, uint32_t n,
                                                     const v1::SamplingParams& params) override;
  absl::StatusOr<v1::VerifyResponse> Verify(const std::string& problem, const std::string& proof, uint32_t n,
                                            const v1::SamplingParams& params) override;

 private:
  LocalProofBackend() = default;

  LocalProofBackendOptions options_;
  OutputMarkers generator_markers_;
  v1::AdapterRole generator_role_ = v1::ADAPTER_ROLE_BASE;
  v1::AdapterRole verifier_role_ = v1::ADAPTER_ROLE_BASE;
  std::unique_ptr<ModelStack> stack_;
  std::unique_ptr<ScoringCore> verifier_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_EVAL_LOCAL_PROOF_BACKEND_H_
