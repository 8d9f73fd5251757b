#include "services/verifier/generation_engine.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "absl/synchronization/mutex.h"

namespace dsm {
namespace {

std::string DtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kHalf: return "float16";
    default: return std::string(c10::toString(dtype));
  }
}

}  // namespace

std::string ModelNameFromPath(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().empty() ? path : p.filename().string();
}

GenerationEngine::GenerationEngine(GenerationService* generation, const Tokenizer* tokenizer,
                                   const AdapterRegistry* registry, const LlamaModel* model, std::string model_name)
    : generation_(generation),
      tokenizer_(tokenizer),
      registry_(registry),
      model_(model),
      model_name_(std::move(model_name)) {}

absl::StatusOr<std::vector<int32_t>> GenerationEngine::Tokenize(absl::string_view text) const {
  return tokenizer_->Encode(text, /*add_special_tokens=*/true);
}

void GenerationEngine::Sample(const v1::GenerateRequest& request, absl::Time deadline, SampleDone done) {
  struct Collected {
    absl::Mutex mu;
    std::vector<v1::Completion> completions ABSL_GUARDED_BY(mu);
  };
  auto collected = std::make_shared<Collected>();
  auto shared_done = std::make_shared<SampleDone>(std::move(done));
  GenerationService::Callbacks callbacks;
  callbacks.on_completion = [collected](v1::Completion completion) {
    absl::MutexLock lock(&collected->mu);
    collected->completions.push_back(std::move(completion));
    return true;
  };
  callbacks.on_done = [collected, shared_done](absl::Status status, v1::GenerateSummary summary) {
    if (!status.ok()) {
      (*shared_done)(status);
      return;
    }
    SampledGroup group;
    {
      absl::MutexLock lock(&collected->mu);
      group.completions = std::move(collected->completions);
    }
    std::sort(group.completions.begin(), group.completions.end(),
              [](const v1::Completion& a, const v1::Completion& b) { return a.index() < b.index(); });
    group.summary = std::move(summary);
    (*shared_done)(std::move(group));
  };
  absl::Status started = generation_->Start(request, deadline, std::move(callbacks));
  if (!started.ok()) (*shared_done)(started);
}

v1::ModelInfo GenerationEngine::model_info() const {
  v1::ModelInfo info;
  const ModelConfig& config = model_->config();
  info.set_name(model_name_);
  info.set_architecture(config.architecture);
  info.set_vocab_size(static_cast<uint32_t>(config.vocab_size));
  info.set_context_length(static_cast<uint32_t>(config.max_position_embeddings));
  info.set_dtype(DtypeName(model_->dtype()));
  for (int64_t id : config.eos_token_ids) info.add_eos_token_ids(static_cast<int32_t>(id));
  info.set_device(model_->device().str());
  return info;
}

std::map<v1::AdapterRole, uint64_t> GenerationEngine::adapter_versions() const { return registry_->versions(); }

}  // namespace dsm
