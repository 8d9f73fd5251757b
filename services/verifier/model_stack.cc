#include "services/verifier/model_stack.h"

#include <filesystem>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "model/lora.h"

namespace dsm {

absl::StatusOr<std::unique_ptr<ModelStack>> ModelStack::Create(const DsmConfig& config,
                                                               const GenerationLimits& limits,
                                                               MetricsRegistry* metrics) {
  if (config.model.path.empty()) return absl::InvalidArgumentError("model.path: required");
  const std::string tokenizer_path = config.model.path + "/tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.path: ", tokenizer_path, " not found (prompts are sent as text)"));
  }
  std::unique_ptr<ModelStack> s(new ModelStack());
  if (absl::Status status = SetTorchThreads(config.runtime.threads); !status.ok()) {
    spdlog::warn("runtime.threads: {}", std::string(status.message()));
  }
  absl::StatusOr<torch::ScalarType> dtype = ParseModelDtype(config.model.dtype);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(config.model.path, {*dtype, torch::kCPU});
  if (!model.ok()) return model.status();
  s->model_ = std::move(*model);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(tokenizer_path);
  if (!tokenizer.ok()) return tokenizer.status();
  s->tokenizer_ = std::move(*tokenizer);
  SamplerOptions sampler_options;
  sampler_options.max_batch = config.model.max_batch;
  sampler_options.max_len = config.model.max_len;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      Sampler::Create(s->model_.get(), s->tokenizer_.get(), sampler_options);
  if (!sampler.ok()) return sampler.status();
  s->sampler_ = std::move(*sampler);
  s->sampler_->Start();
  s->registry_ = std::make_unique<AdapterRegistry>(s->model_.get(), s->sampler_.get(), config.worker.keep_versions);
  s->generation_ = std::make_unique<GenerationService>(s->model_.get(), s->tokenizer_.get(), s->sampler_.get(),
                                                       s->registry_.get(), limits);
  if (metrics != nullptr) {
    if (absl::Status status = s->generation_->CountTokensIn(*metrics); !status.ok()) return status;
  }
  s->engine_ = std::make_unique<GenerationEngine>(s->generation_.get(), s->tokenizer_.get(), s->registry_.get(),
                                                  s->model_.get(), ModelNameFromPath(config.model.path));
  return s;
}

ModelStack::~ModelStack() { sampler_.reset(); }

absl::Status ModelStack::InstallAdapterFolder(const std::string& dir, v1::AdapterRole role, uint64_t version) {
  absl::StatusOr<std::unique_ptr<LoraAdapter>> adapter = LoraAdapter::Load(dir, model_->config());
  if (!adapter.ok()) return absl::Status(adapter.status().code(), absl::StrCat(dir, ": ", adapter.status().message()));
  AdapterVersionData data;
  data.role = role;
  data.version = version;
  data.adapter_config_json = LoraConfigToJson((*adapter)->config());
  data.tensors = (*adapter)->NamedTensors();  // aliases: they keep the tensors alive
  data.published_at = absl::Now();
  return registry_->Install(data);
}

}  // namespace dsm
