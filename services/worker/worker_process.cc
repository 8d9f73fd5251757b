#include "services/worker/worker_process.h"

#include <filesystem>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace dsm {

absl::StatusOr<v1::AdapterRole> ParseAdapterRole(const std::string& name) {
  if (name == "generator") return v1::ADAPTER_ROLE_GENERATOR;
  if (name == "verifier") return v1::ADAPTER_ROLE_VERIFIER;
  if (name == "meta_verifier") return v1::ADAPTER_ROLE_META_VERIFIER;
  if (name == "base") return v1::ADAPTER_ROLE_BASE;
  return absl::InvalidArgumentError(absl::StrCat("unknown adapter role \"", name, "\""));
}

absl::StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::Create(const DsmConfig& config,
                                                                     const std::string& learner_address,
                                                                     MetricsRegistry* metrics) {
  if (config.model.path.empty()) return absl::InvalidArgumentError("model.path: required to serve a worker");
  std::unique_ptr<WorkerProcess> w(new WorkerProcess());
  if (absl::Status s = SetTorchThreads(config.runtime.threads); !s.ok()) {
    spdlog::warn("runtime.threads: {}", std::string(s.message()));
  }
  absl::StatusOr<torch::ScalarType> dtype = ParseModelDtype(config.model.dtype);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(config.model.path, {*dtype, torch::kCPU});
  if (!model.ok()) return model.status();
  w->model_ = std::move(*model);
  const std::string tokenizer_path = config.model.path + "/tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(tokenizer_path);
    if (!tokenizer.ok()) return tokenizer.status();
    w->tokenizer_ = std::move(*tokenizer);
  }
  SamplerOptions sampler_options;
  sampler_options.max_batch = config.model.max_batch;
  sampler_options.max_len = config.model.max_len;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler =
      Sampler::Create(w->model_.get(), w->tokenizer_.get(), sampler_options);
  if (!sampler.ok()) return sampler.status();
  w->sampler_ = std::move(*sampler);
  w->sampler_->Start();
  w->registry_ = std::make_unique<AdapterRegistry>(w->model_.get(), w->sampler_.get(), config.worker.keep_versions);

  GenerationLimits limits;
  limits.max_prompt_tokens = config.limits.max_prompt_tokens;
  limits.max_completion_tokens = config.limits.max_completion_tokens;
  limits.max_n = config.limits.max_n;
  w->generation_ = std::make_unique<GenerationService>(w->model_.get(), w->tokenizer_.get(), w->sampler_.get(),
                                                       w->registry_.get(), limits);
  w->service_ = std::make_unique<SamplerService>(w->generation_.get(), w->registry_.get(), config.model.path);

  // Adapters stream in from the learner.
  w->learner_address_ = !learner_address.empty() ? learner_address
                        : !config.worker.learner.empty()
                            ? config.worker.learner
                            : absl::StrCat(config.server.host, ":", config.services.learner.port);
  AdapterSubscriberOptions subscriber;
  subscriber.learner_address = w->learner_address_;
  subscriber.subscriber_id = absl::StrCat("worker@", config.server.host, ":", config.services.worker.port);
  subscriber.channel = ChannelOptions::From(config.server, config.client);
  for (const std::string& name : config.worker.roles) {
    absl::StatusOr<v1::AdapterRole> role = ParseAdapterRole(name);
    if (!role.ok()) return role.status();
    subscriber.roles.push_back(*role);
  }
  GaugeFamily* versions = nullptr;
  CounterFamily* updates = nullptr;
  if (metrics != nullptr) {
    auto v = metrics->AddGauge("dsm_worker_adapter_version", "Newest adapter version installed, per role.", {"role"});
    auto u = metrics->AddCounter("dsm_worker_adapter_updates_total", "Adapter versions installed.", {"role", "result"});
    if (v.ok()) versions = *v;
    if (u.ok()) updates = *u;
  }
  AdapterRegistry* registry = w->registry_.get();
  w->subscriber_ = std::make_unique<AdapterSubscriber>(subscriber, [registry, versions, updates](AdapterVersionData data) {
    const std::string role = v1::AdapterRole_Name(data.role);
    const uint64_t version = data.version;
    absl::Status status = registry->Install(data);
    if (!status.ok()) spdlog::error("installing adapter {} v{}: {}", role, version, std::string(status.message()));
    if (updates != nullptr) updates->WithLabels({role, status.ok() ? "ok" : "error"}).Increment();
    if (versions != nullptr && status.ok()) versions->WithLabels({role}).Set(static_cast<double>(version));
  });
  w->subscriber_->Start();
  return w;
}

WorkerProcess::~WorkerProcess() {
  if (subscriber_) subscriber_->Stop();
  // The sampler first: its last callbacks still use the registry and the
  // generation service.
  sampler_.reset();
}

}  // namespace dsm
