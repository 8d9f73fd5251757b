// ScoringProcess: the verifier and/or meta-verifier services of one process.
// Each hosted service is a ScoringCore (its prompt template from
// options.prompts_dir) behind its gRPC face; both run on ONE ScoringEngine:
//
// - Create(): standalone (`dsm serve verifier`, `dsm serve meta-verifier`,
//   `dsm serve verifier,meta-verifier`). Loads the base model, its tokenizer,
//   the batched Sampler, the adapter registry fed by a subscriber to the
//   learner's WatchAdapters (for every role the hosted services use) and a
//   GenerationService, as WorkerProcess::Create does.
// - CreateShared(): over an engine someone else owns, e.g. a GenerationEngine
//   over the rollout worker's GenerationService, so `dsm serve
//   worker,verifier,meta-verifier` holds one copy of the weights and every
//   request of every service shares the sampler's batches.
//
// The caller registers verifier_service() / meta_verifier_service() on a
// GrpcServer each. Not thread-safe to create/destroy; the services are.
// With CreateShared the engine's sampler must be stopped (or every server
// drained) before this object is destroyed: in-flight requests call back
// into the cores.
#ifndef DSM_SERVICES_VERIFIER_SCORING_PROCESS_H_
#define DSM_SERVICES_VERIFIER_SCORING_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/metrics_registry.h"
#include "services/adapters/adapter_registry.h"
#include "services/adapters/adapter_subscriber.h"
#include "services/verifier/generation_engine.h"
#include "services/verifier/model_stack.h"
#include "services/verifier/scoring_core.h"
#include "services/verifier/scoring_metrics.h"
#include "services/verifier/scoring_service.h"
#include "services/worker/generation_service.h"

namespace dsm {

struct ScoringProcessOptions {
  // Folder of verifier.txt / meta_verifier.txt (prompt_template.h).
  std::string prompts_dir = "configs/prompts";
  bool verifier = false;       // host dsm.v1.Verifier
  bool meta_verifier = false;  // host dsm.v1.MetaVerifier
  // Adapter roles each service accepts (ServerInfo.roles); each list must
  // hold its service's default role (VERIFIER / META_VERIFIER). The
  // meta-verifier also samples with the verifier adapter: phase 3 trains that
  // adapter on the meta-verifier's data too (METHOD.md: one adapter does both
  // jobs), so it asks this service to assess analyses with it.
  std::vector<v1::AdapterRole> verifier_roles = {v1::ADAPTER_ROLE_VERIFIER};
  std::vector<v1::AdapterRole> meta_verifier_roles = {v1::ADAPTER_ROLE_META_VERIFIER, v1::ADAPTER_ROLE_VERIFIER};
  ScoringLimits limits;  // see ScoringLimitsFromConfig
};

// The config's limits (max_prompt_tokens, max_completion_tokens, max_n) over
// the ScoringLimits defaults.
ScoringLimits ScoringLimitsFromConfig(const LimitsOptions& limits);

class ScoringProcess {
 public:
  // `learner_address` overrides the config's (host:port; "" = config.worker
  // .learner, else services.learner on server.host). `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<ScoringProcess>> Create(const DsmConfig& config,
                                                                const std::string& learner_address,
                                                                ScoringProcessOptions options,
                                                                MetricsRegistry* metrics);
  // Over `engine` (not owned; must outlive this). The adapters of the
  // hosted roles must reach the engine's registry some other way (e.g. the
  // worker subscribes to them: config.worker.roles).
  static absl::StatusOr<std::unique_ptr<ScoringProcess>> CreateShared(ScoringEngine* engine,
                                                                      ScoringProcessOptions options,
                                                                      MetricsRegistry* metrics);
  ~ScoringProcess();

  // Null when the service is not hosted.
  ScoringCore* verifier_core() { return verifier_core_.get(); }
  ScoringCore* meta_verifier_core() { return meta_verifier_core_.get(); }
  VerifierService* verifier_service() { return verifier_service_.get(); }
  MetaVerifierService* meta_verifier_service() { return meta_verifier_service_.get(); }
  ScoringEngine* engine() { return engine_; }
  // Standalone only (null with CreateShared).
  AdapterRegistry* registry() { return stack_ == nullptr ? nullptr : stack_->registry(); }
  const std::string& learner_address() const { return learner_address_; }

 private:
  ScoringProcess() = default;
  absl::Status StartServices(ScoringEngine* engine, const ScoringProcessOptions& options, MetricsRegistry* metrics);

  // Standalone: the model stack (declared in construction order).
  std::unique_ptr<ModelStack> stack_;
  std::unique_ptr<AdapterSubscriber> subscriber_;
  std::string learner_address_;

  ScoringEngine* engine_ = nullptr;
  std::unique_ptr<ScoringMetrics> metrics_;
  std::unique_ptr<ScoringCore> verifier_core_;
  std::unique_ptr<ScoringCore> meta_verifier_core_;
  std::unique_ptr<VerifierService> verifier_service_;
  std::unique_ptr<MetaVerifierService> meta_verifier_service_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_SCORING_PROCESS_H_
