#include "services/verifier/scoring_process.h"

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace dsm {

ScoringLimits ScoringLimitsFromConfig(const LimitsOptions& limits) {
  ScoringLimits l;
  l.max_prompt_tokens = limits.max_prompt_tokens;
  l.max_completion_tokens = limits.max_completion_tokens;
  l.max_n = limits.max_n;
  l.default_max_tokens = std::min(l.default_max_tokens, limits.max_completion_tokens);
  return l;
}

absl::StatusOr<std::unique_ptr<ScoringProcess>> ScoringProcess::Create(const DsmConfig& config,
                                                                       const std::string& learner_address,
                                                                       ScoringProcessOptions options,
                                                                       MetricsRegistry* metrics) {
  if (!options.verifier && !options.meta_verifier) {
    return absl::InvalidArgumentError("scoring: neither verifier nor meta-verifier requested");
  }
  if (config.model.path.empty()) return absl::InvalidArgumentError("model.path: required to serve a scorer");
  std::unique_ptr<ScoringProcess> p(new ScoringProcess());
  GenerationLimits generation_limits;
  generation_limits.max_prompt_tokens = options.limits.max_prompt_tokens;
  generation_limits.max_completion_tokens = options.limits.max_completion_tokens;
  generation_limits.max_n = options.limits.max_n;
  generation_limits.default_max_tokens = options.limits.default_max_tokens;
  absl::StatusOr<std::unique_ptr<ModelStack>> stack = ModelStack::Create(config, generation_limits, metrics);
  if (!stack.ok()) return stack.status();
  p->stack_ = std::move(*stack);
  if (absl::Status s = p->StartServices(p->stack_->engine(), options, metrics); !s.ok()) return s;

  // Adapters of every role the hosted services accept stream in from the
  // learner (BASE needs none).
  std::vector<v1::AdapterRole> roles;
  auto add_roles = [&roles](const std::vector<v1::AdapterRole>& from) {
    for (v1::AdapterRole r : from) {
      if (r != v1::ADAPTER_ROLE_BASE && std::find(roles.begin(), roles.end(), r) == roles.end()) roles.push_back(r);
    }
  };
  if (options.verifier) add_roles(options.verifier_roles);
  if (options.meta_verifier) add_roles(options.meta_verifier_roles);
  if (!learner_address.empty()) {
    p->learner_address_ = learner_address;
  } else if (!config.worker.learner.empty()) {
    p->learner_address_ = config.worker.learner;
  } else {
    p->learner_address_ = absl::StrCat(config.server.host, ":", config.services.learner.port);
  }
  if (!roles.empty()) {
    AdapterSubscriberOptions subscriber;
    subscriber.learner_address = p->learner_address_;
    subscriber.roles = roles;
    const Endpoint& endpoint = options.verifier ? config.services.verifier : config.services.meta_verifier;
    subscriber.subscriber_id = absl::StrCat("scorer@", config.server.host, ":", endpoint.port);
    subscriber.channel = ChannelOptions::From(config.server, config.client);
    AdapterRegistry* registry = p->stack_->registry();
    p->subscriber_ = std::make_unique<AdapterSubscriber>(subscriber, [registry](AdapterVersionData data) {
      const std::string role = v1::AdapterRole_Name(data.role);
      const uint64_t version = data.version;
      absl::Status status = registry->Install(data);
      if (!status.ok()) spdlog::error("installing adapter {} v{}: {}", role, version, std::string(status.message()));
    });
    p->subscriber_->Start();
  }
  return p;
}

absl::StatusOr<std::unique_ptr<ScoringProcess>> ScoringProcess::CreateShared(ScoringEngine* engine,
                                                                             ScoringProcessOptions options,
                                                                             MetricsRegistry* metrics) {
  if (!options.verifier && !options.meta_verifier) {
    return absl::InvalidArgumentError("scoring: neither verifier nor meta-verifier requested");
  }
  std::unique_ptr<ScoringProcess> p(new ScoringProcess());
  if (absl::Status s = p->StartServices(engine, options, metrics); !s.ok()) return s;
  return p;
}

absl::Status ScoringProcess::StartServices(ScoringEngine* engine, const ScoringProcessOptions& options,
                                           MetricsRegistry* metrics) {
  engine_ = engine;
  if (metrics != nullptr) {
    absl::StatusOr<std::unique_ptr<ScoringMetrics>> m = ScoringMetrics::Create(*metrics);
    if (!m.ok()) return m.status();
    metrics_ = std::move(*m);
  }
  if (options.verifier) {
    absl::StatusOr<PromptTemplate> prompt = PromptTemplate::LoadRole(options.prompts_dir, PromptRole::kVerifier);
    if (!prompt.ok()) return prompt.status();
    absl::StatusOr<std::unique_ptr<ScoringCore>> core = ScoringCore::Create(
        engine, std::move(*prompt), ScoringOptions{options.limits, options.verifier_roles}, metrics_.get());
    if (!core.ok()) return core.status();
    verifier_core_ = std::move(*core);
    verifier_service_ = std::make_unique<VerifierService>(verifier_core_.get());
  }
  if (options.meta_verifier) {
    absl::StatusOr<PromptTemplate> prompt = PromptTemplate::LoadRole(options.prompts_dir, PromptRole::kMetaVerifier);
    if (!prompt.ok()) return prompt.status();
    absl::StatusOr<std::unique_ptr<ScoringCore>> core = ScoringCore::Create(
        engine, std::move(*prompt), ScoringOptions{options.limits, options.meta_verifier_roles}, metrics_.get());
    if (!core.ok()) return core.status();
    meta_verifier_core_ = std::move(*core);
    meta_verifier_service_ = std::make_unique<MetaVerifierService>(meta_verifier_core_.get());
  }
  return absl::OkStatus();
}

ScoringProcess::~ScoringProcess() {
  if (subscriber_) subscriber_->Stop();
  // The model stack's sampler first: requests it still runs end (aborted)
  // and call back into the cores, the registry and the generation service.
  stack_.reset();
}

}  // namespace dsm
