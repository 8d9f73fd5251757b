// GenerationEngine: the real ScoringEngine, over a worker-style
// GenerationService (and so over the shared continuous-batching Sampler and
// adapter registry). It owns nothing: the same GenerationService may also
// serve dsm.v1.Sampler in the same process (`dsm serve
// worker,verifier,meta-verifier`), and every request of every service then
// shares the sampler's batches.
//
// Thread-safe.
#ifndef DSM_SERVICES_VERIFIER_GENERATION_ENGINE_H_
#define DSM_SERVICES_VERIFIER_GENERATION_ENGINE_H_

#include <string>

#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "services/adapters/adapter_registry.h"
#include "services/verifier/scoring_engine.h"
#include "services/worker/generation_service.h"

namespace dsm {

class GenerationEngine final : public ScoringEngine {
 public:
  // All must outlive this object; `tokenizer` must not be null.
  // `model_name` is reported in ModelInfo.name.
  GenerationEngine(GenerationService* generation, const Tokenizer* tokenizer, const AdapterRegistry* registry,
                   const LlamaModel* model, std::string model_name);

  absl::StatusOr<std::vector<int32_t>> Tokenize(absl::string_view text) const override;
  void Sample(const v1::GenerateRequest& request, absl::Time deadline, SampleDone done) override;
  v1::ModelInfo model_info() const override;
  std::map<v1::AdapterRole, uint64_t> adapter_versions() const override;

 private:
  GenerationService* generation_;
  const Tokenizer* tokenizer_;
  const AdapterRegistry* registry_;
  const LlamaModel* model_;
  const std::string model_name_;
};

// ModelInfo.name from the config's model.path: "models/tiny/" -> "tiny".
std::string ModelNameFromPath(const std::string& path);

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_GENERATION_ENGINE_H_
