// ModelStack: the base model and everything that samples from it in one
// process — its tokenizer, the continuous-batching Sampler (started), the
// AdapterRegistry, the GenerationService and a GenerationEngine over them —
// built from a DsmConfig's model, runtime, worker and limits sections. The
// scoring services and `dsm eval` (services/eval/local_proof_backend.h) run on
// one; adapters reach its registry from the learner's stream or from PEFT
// folders (InstallAdapterFolder).
//
// Destroy order matters: the sampler stops first (ending requests still in
// flight, which call back into the registry and the generation service);
// ~ModelStack does that.
#ifndef DSM_SERVICES_VERIFIER_MODEL_STACK_H_
#define DSM_SERVICES_VERIFIER_MODEL_STACK_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/metrics_registry.h"
#include "model/llama_model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "services/adapters/adapter_registry.h"
#include "services/verifier/generation_engine.h"
#include "services/worker/generation_service.h"

namespace dsm {

class ModelStack {
 public:
  // INVALID_ARGUMENT (naming model.path) when the folder or its
  // tokenizer.json is missing. `metrics` (may be null) gets the token counters.
  static absl::StatusOr<std::unique_ptr<ModelStack>> Create(const DsmConfig& config, const GenerationLimits& limits,
                                                            MetricsRegistry* metrics);
  ~ModelStack();

  // Loads a PEFT adapter folder (adapter_config.json +
  // adapter_model.safetensors) and installs it as `version` of `role`.
  absl::Status InstallAdapterFolder(const std::string& dir, v1::AdapterRole role, uint64_t version);

  LlamaModel* model() { return model_.get(); }
  Tokenizer* tokenizer() { return tokenizer_.get(); }
  Sampler* sampler() { return sampler_.get(); }
  AdapterRegistry* registry() { return registry_.get(); }
  GenerationService* generation() { return generation_.get(); }
  GenerationEngine* engine() { return engine_.get(); }

 private:
  ModelStack() = default;

  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<AdapterRegistry> registry_;
  std::unique_ptr<GenerationService> generation_;
  std::unique_ptr<GenerationEngine> engine_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_MODEL_STACK_H_
