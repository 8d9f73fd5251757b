// WorkerProcess: everything a rollout worker runs, wired from the config: the
// base model, its tokenizer, the batched Sampler (on a thread of its own), the
// adapter registry fed by a subscriber to the learner's WatchAdapters, and
// the dsm.v1.Sampler service, and (given a coordinator address) a LeaseClient
// that pulls work from the coordinator. The caller registers service() on a
// GrpcServer.
#ifndef DSM_SERVICES_WORKER_WORKER_PROCESS_H_
#define DSM_SERVICES_WORKER_WORKER_PROCESS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/metrics_registry.h"
#include "services/adapters/adapter_registry.h"
#include "services/adapters/adapter_subscriber.h"
#include "services/worker/generation_service.h"
#include "services/worker/lease_client.h"
#include "services/worker/sampler_service.h"

namespace dsm {

class WorkerProcess {
 public:
  // `learner_address` overrides the config's (host:port; "" = from config).
  // `coordinator_address` (host:port; "" = none): when set, a LeaseClient
  // pulls work from that coordinator. `lease` tunes it; the fields the
  // worker knows (address, roles, limits, model) are filled in here, and an
  // empty worker_id becomes "<hostname>-<services.worker.port>" (or
  // "<hostname>-pid<pid>" when that port is 0, i.e. picked at start).
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Create(const DsmConfig& config,
                                                               const std::string& learner_address,
                                                               MetricsRegistry* metrics,
                                                               const std::string& coordinator_address = "",
                                                               LeaseClientOptions lease = {},
                                                               bool start_lease_client = true);
  ~WorkerProcess();

  SamplerService* service() { return service_.get(); }
  AdapterRegistry* registry() { return registry_.get(); }
  // For services that share this worker's model and sampler (ScoringProcess).
  GenerationService* generation() { return generation_.get(); }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const LlamaModel* model() const { return model_.get(); }
  const std::string& learner_address() const { return learner_address_; }
  // Null unless a coordinator address was given.
  LeaseClient* lease_client() { return lease_client_.get(); }
  // With `start_lease_client` false in Create: plugs `scorer` (may be null)
  // into the lease client and starts pulling work, so that the first
  // ScoreWork lease already finds the scorer.
  void StartLeaseClient(LeaseScorer* scorer);

 private:
  WorkerProcess() = default;

  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<AdapterRegistry> registry_;
  std::unique_ptr<GenerationService> generation_;
  std::unique_ptr<SamplerService> service_;
  std::unique_ptr<AdapterSubscriber> subscriber_;
  std::unique_ptr<LeaseClient> lease_client_;
  std::string learner_address_;
};

// "generator" -> ADAPTER_ROLE_GENERATOR, ...
absl::StatusOr<v1::AdapterRole> ParseAdapterRole(const std::string& name);

}  // namespace dsm

#endif  // DSM_SERVICES_WORKER_WORKER_PROCESS_H_
