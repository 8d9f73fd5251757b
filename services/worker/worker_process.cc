#include "services/worker/worker_process.h"

#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/adapter_roles.h"
#include "services/learner/learner_metrics.h"

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
                                                                     MetricsRegistry* metrics,
                                                                     const std::string& coordinator_address,
                                                                     LeaseClientOptions lease,
                                                                     bool start_lease_client) {
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
  if (metrics != nullptr) {
    if (absl::Status s = w->generation_->CountTokensIn(*metrics); !s.ok()) return s;
  }
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
    const std::string role = AdapterRoleName(data.role);  // the learner's label values
    const uint64_t version = data.version;
    absl::Status status = registry->Install(data);
    if (!status.ok()) spdlog::error("installing adapter {} v{}: {}", role, version, std::string(status.message()));
    if (updates != nullptr) updates->WithLabels({role, status.ok() ? "ok" : "error"}).Increment();
    if (versions != nullptr && status.ok()) versions->WithLabels({role}).Set(static_cast<double>(version));
  });
  w->subscriber_->Start();

  // Work is pulled from the coordinator, if there is one.
  if (!coordinator_address.empty()) {
    lease.coordinator_address = coordinator_address;
    lease.roles = subscriber.roles;
    if (lease.hostname.empty()) {
      char host[256] = {};
      lease.hostname = gethostname(host, sizeof(host) - 1) == 0 ? host : "localhost";
    }
    if (lease.worker_id.empty()) {
      lease.worker_id = config.services.worker.port != 0
                            ? absl::StrCat(lease.hostname, "-", config.services.worker.port)
                            : absl::StrCat(lease.hostname, "-pid", getpid());
    }
    lease.channel = ChannelOptions::From(config.server, config.client);
    v1::ServerLimits& l = lease.limits;
    l.set_max_prompt_tokens(limits.max_prompt_tokens);
    l.set_max_completion_tokens(limits.max_completion_tokens);
    l.set_default_max_tokens(limits.default_max_tokens);
    l.set_max_n(limits.max_n);
    l.set_max_message_bytes(config.server.max_message_bytes);
    l.set_max_batch_sequences(config.model.max_batch);
    const ModelConfig& model_config = w->model_->config();
    v1::ModelInfo& info = lease.model;
    info.set_name(config.model.path);
    info.set_architecture(model_config.architecture);
    info.set_vocab_size(static_cast<uint32_t>(model_config.vocab_size));
    info.set_context_length(static_cast<uint32_t>(config.model.max_len));
    info.set_dtype(config.model.dtype);
    for (int64_t eos : model_config.eos_token_ids) info.add_eos_token_ids(static_cast<int32_t>(eos));
    info.set_device("cpu");
    absl::StatusOr<std::unique_ptr<LeaseClient>> client = LeaseClient::Create(
        std::move(lease), w->generation_.get(), w->registry_.get(), w->sampler_.get(), nullptr, metrics);
    if (!client.ok()) return client.status();
    w->lease_client_ = std::move(*client);
    if (start_lease_client) w->lease_client_->Start();
  }
  return w;
}

void WorkerProcess::StartLeaseClient(LeaseScorer* scorer) {
  if (lease_client_ == nullptr) return;
  lease_client_->SetScorer(scorer);
  lease_client_->Start();
}

WorkerProcess::~WorkerProcess() {
  // No new leases; results of running ones are dropped (the coordinator
  // regrants them).
  if (lease_client_) lease_client_->Stop();
  if (subscriber_) subscriber_->Stop();
  // The sampler first: its last callbacks still use the registry and the
  // generation service.
  sampler_.reset();
}

}  // namespace dsm
