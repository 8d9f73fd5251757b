#include "services/eval/local_proof_backend.h"

#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/verifier/scoring_process.h"

namespace dsm {

absl::StatusOr<std::unique_ptr<LocalProofBackend>> LocalProofBackend::Create(
    const DsmConfig& config, const LocalProofBackendOptions& options) {
  std::unique_ptr<LocalProofBackend> b(new LocalProofBackend());
  b->options_ = options;
  absl::StatusOr<PromptTemplate> generator = PromptTemplate::LoadRole(options.prompts_dir, PromptRole::kGenerator);
  if (!generator.ok()) return generator.status();
  b->generator_markers_ = generator->markers();
  absl::StatusOr<PromptTemplate> verifier = PromptTemplate::LoadRole(options.prompts_dir, PromptRole::kVerifier);
  if (!verifier.ok()) return verifier.status();

  const ScoringLimits limits = ScoringLimitsFromConfig(config.limits);
  GenerationLimits generation_limits;
  generation_limits.max_prompt_tokens = limits.max_prompt_tokens;
  generation_limits.max_completion_tokens = limits.max_completion_tokens;
  generation_limits.max_n = limits.max_n;
  generation_limits.default_max_tokens = limits.default_max_tokens;
  absl::StatusOr<std::unique_ptr<ModelStack>> stack = ModelStack::Create(config, generation_limits, nullptr);
  if (!stack.ok()) return stack.status();
  b->stack_ = std::move(*stack);
  if (!options.generator_adapter.empty()) {
    if (absl::Status s = b->stack_->InstallAdapterFolder(options.generator_adapter, v1::ADAPTER_ROLE_GENERATOR, 1);
        !s.ok()) {
      return s;
    }
    b->generator_role_ = v1::ADAPTER_ROLE_GENERATOR;
  }
  if (!options.verifier_adapter.empty()) {
    if (absl::Status s = b->stack_->InstallAdapterFolder(options.verifier_adapter, v1::ADAPTER_ROLE_VERIFIER, 1);
        !s.ok()) {
      return s;
    }
    b->verifier_role_ = v1::ADAPTER_ROLE_VERIFIER;
  }
  absl::StatusOr<std::unique_ptr<ScoringCore>> core =
      ScoringCore::Create(b->stack_->engine(), *std::move(verifier),
                          ScoringOptions{limits, {v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_BASE}});
  if (!core.ok()) return core.status();
  b->verifier_ = std::move(*core);
  return b;
}

LocalProofBackend::~LocalProofBackend() {
  // The sampler first: calls still in flight end and call back into the core.
  stack_.reset();
}

absl::StatusOr<std::vector<ProofAttempt>> LocalProofBackend::Generate(const std::string& prompt, uint32_t n,
                                                                      const v1::SamplingParams& params) {
  v1::GenerateRequest request;
  request.mutable_prompt()->set_text(prompt);
  request.set_n(n);
  *request.mutable_params() = params;
  request.set_adapter_role(generator_role_);
  std::promise<absl::StatusOr<SampledGroup>> promise;
  std::future<absl::StatusOr<SampledGroup>> future = promise.get_future();
  stack_->engine()->Sample(request, absl::Now() + options_.call_timeout,
                           [&promise](absl::StatusOr<SampledGroup> group) { promise.set_value(std::move(group)); });
  absl::StatusOr<SampledGroup> group = future.get();
  if (!group.ok()) return group.status();
  std::vector<ProofAttempt> out;
  out.reserve(group->completions.size());
  for (const v1::Completion& c : group->completions) {
    out.push_back(SplitGeneratorOutput(c.text(), generator_markers_, c.finish_reason()));
  }
  return out;
}

absl::StatusOr<v1::VerifyResponse> LocalProofBackend::Verify(const std::string& problem, const std::string& proof,
                                                             uint32_t n, const v1::SamplingParams& params) {
  v1::VerifyRequest request;
  request.set_problem(problem);
  request.set_proof(proof);
  request.set_n(n);
  *request.mutable_params() = params;
  request.set_adapter_role(verifier_role_);
  v1::VerifyResponse response;
  std::promise<absl::Status> promise;
  std::future<absl::Status> future = promise.get_future();
  verifier_->Verify(request, absl::Now() + options_.call_timeout, &response,
                    [&promise](absl::Status status) { promise.set_value(std::move(status)); });
  if (absl::Status s = future.get(); !s.ok()) return s;
  return response;
}

}  // namespace dsm
