// LearnerProcess: the learner service wired from the config: the base model
// (float32, trained through LoRA), one adapter and trainer per role, the
// adapter publisher and its bulk endpoint (adapter_bulk_server.h; off with
// learner.bulk_transfer: false or TLS), metrics, and the dsm.v1.Learner
// service. The caller
// registers service() on a GrpcServer.
#ifndef DSM_SERVICES_LEARNER_LEARNER_PROCESS_H_
#define DSM_SERVICES_LEARNER_LEARNER_PROCESS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/metrics_registry.h"
#include "services/adapters/adapter_bulk_server.h"
#include "services/adapters/adapter_publisher.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_metrics.h"
#include "services/learner/learner_service.h"

namespace dsm {

// The learner's options from the config (exposed for tests).
absl::StatusOr<LearnerOptions> LearnerOptionsFromConfig(const DsmConfig& config);

class LearnerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<LearnerProcess>> Create(const DsmConfig& config, MetricsRegistry& metrics);
  ~LearnerProcess();

  LearnerService* service() { return service_.get(); }
  LearnerCore* core() { return core_.get(); }

 private:
  LearnerProcess() = default;

  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<AdapterPublisher> publisher_;
  std::unique_ptr<AdapterBulkServer> bulk_server_;  // null when off (or TLS)
  std::unique_ptr<LearnerMetrics> metrics_;
  std::unique_ptr<LearnerCore> core_;
  std::unique_ptr<LearnerService> service_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_LEARNER_LEARNER_PROCESS_H_
