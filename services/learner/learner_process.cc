#include "services/learner/learner_process.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/worker/worker_process.h"

namespace dsm {

absl::StatusOr<LearnerOptions> LearnerOptionsFromConfig(const DsmConfig& config) {
  const LearnerConfig& l = config.learner;
  LearnerOptions o;
  o.roles.clear();
  for (const std::string& name : l.roles) {
    absl::StatusOr<v1::AdapterRole> role = ParseAdapterRole(name);
    if (!role.ok()) return role.status();
    o.roles.push_back(*role);
  }
  o.lora.r = config.lora.r;
  o.lora.lora_alpha = config.lora.alpha;
  o.lora.lora_dropout = config.lora.dropout;
  o.lora.target_modules = config.lora.target_modules;
  o.lora.base_model_name_or_path = config.model.path;
  o.seed = static_cast<uint64_t>(config.run.seed);
  o.max_buffered_groups = static_cast<uint32_t>(l.max_buffered_groups);
  o.groups_per_step = static_cast<uint32_t>(l.groups_per_step);
  o.max_policy_lag = static_cast<uint32_t>(l.max_policy_lag);
  o.max_prompt_tokens = static_cast<uint32_t>(config.limits.max_prompt_tokens);
  o.max_completion_tokens = static_cast<uint32_t>(config.limits.max_completion_tokens);
  o.max_n = static_cast<uint32_t>(config.limits.max_n);

  TrainerOptions& t = o.trainer;
  t.learning_rate = l.learning_rate;
  t.warmup_steps = l.warmup_steps;
  t.max_grad_norm = l.max_grad_norm;
  t.weight_decay = l.weight_decay;
  t.micro_batch_tokens = l.micro_batch_tokens;
  t.temperature = l.temperature;
  t.seed = static_cast<uint64_t>(config.run.seed);
  t.checkpoint_dir = !l.checkpoint_dir.empty()
                         ? l.checkpoint_dir
                         : absl::StrCat(config.run.runs_dir, "/", config.run.name, "/checkpoints");
  t.checkpoint_every_steps = l.checkpoint_every_steps;
  t.keep_checkpoints = l.keep_checkpoints;
  t.resume = true;
  GrpoOptions& g = t.grpo;
  g.epsilon_low = l.grpo.epsilon_low;
  g.epsilon_high = l.grpo.epsilon_high;
  g.kl_beta = l.grpo.kl_beta;
  g.scale_rewards = l.grpo.scale_rewards;
  g.dynamic_sampling = l.grpo.dynamic_sampling;
  g.importance_correction = l.grpo.importance_correction;
  g.aggregation = l.grpo.aggregation == "token"      ? LossAggregation::kTokenMean
                  : l.grpo.aggregation == "constant" ? LossAggregation::kConstantNorm
                                                     : LossAggregation::kSequenceMean;
  g.max_completion_tokens = config.limits.max_completion_tokens;
  if (absl::Status s = o.Validate(); !s.ok()) return s;
  return o;
}

absl::StatusOr<std::unique_ptr<LearnerProcess>> LearnerProcess::Create(const DsmConfig& config,
                                                                       MetricsRegistry& metrics) {
  if (config.model.path.empty()) return absl::InvalidArgumentError("model.path: required to serve a learner");
  absl::StatusOr<LearnerOptions> options = LearnerOptionsFromConfig(config);
  if (!options.ok()) return options.status();
  std::unique_ptr<LearnerProcess> p(new LearnerProcess());
  const int threads = config.learner.threads > 0 ? config.learner.threads : config.runtime.threads;
  if (absl::Status s = SetTorchThreads(threads); !s.ok()) {
    spdlog::warn("learner threads: {}", std::string(s.message()));
  }
  // The learner trains in float32 whatever the samplers use.
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(config.model.path, {torch::kFloat, torch::kCPU});
  if (!model.ok()) return model.status();
  p->model_ = std::move(*model);
  p->publisher_ = std::make_unique<AdapterPublisher>();
  absl::StatusOr<std::unique_ptr<LearnerMetrics>> learner_metrics = LearnerMetrics::Create(metrics);
  if (!learner_metrics.ok()) return learner_metrics.status();
  p->metrics_ = std::move(*learner_metrics);
  absl::StatusOr<std::unique_ptr<LearnerCore>> core =
      LearnerCore::Create(p->model_.get(), *options, p->publisher_.get(), p->metrics_.get());
  if (!core.ok()) return core.status();
  p->core_ = std::move(*core);
  LearnerServiceOptions service_options;
  service_options.model_name = config.model.path;
  service_options.max_message_bytes = static_cast<uint64_t>(config.server.max_message_bytes);
  LearnerMetrics* const learner_metrics_ptr = p->metrics_.get();
  absl::StatusOr<std::unique_ptr<AdapterBulkServer>> bulk =
      StartAdapterBulkServer(config, p->publisher_.get(), [learner_metrics_ptr](const EncodedAdapterVersion& v) {
        learner_metrics_ptr->RecordAdapterVersionSent(v.bytes, /*bulk=*/true);
      });
  if (!bulk.ok()) return bulk.status();
  p->bulk_server_ = std::move(*bulk);
  if (p->bulk_server_ != nullptr) {
    service_options.bulk_port = p->bulk_server_->port();
    service_options.bulk_host = config.learner.bulk_host;
  }
  p->service_ = std::make_unique<LearnerService>(p->core_.get(), p->publisher_.get(), p->metrics_.get(),
                                                 service_options);
  return p;
}

LearnerProcess::~LearnerProcess() {
  if (bulk_server_) bulk_server_->Stop();
  if (core_) core_->Stop();
}

}  // namespace dsm
