// The coordinator's Prometheus metrics, declared once:
//   dsm_coordinator_queue_depth                 work items waiting for a lease
//   dsm_coordinator_leases_outstanding          leases granted and not yet answered
//   dsm_coordinator_leases_granted_total        leases handed out
//   dsm_coordinator_leases_reclaimed_total{reason}  expired | released (worker left) | cancelled
//   dsm_coordinator_results_total{status}       LeaseResults by ResultAck status
//                                               (accepted, duplicate, expired_reissued,
//                                               unknown_lease, error)
//   dsm_coordinator_work_failed_total           work items out of attempts
//   dsm_coordinator_workers_connected           Lease streams open
//   dsm_coordinator_worker_results_total{worker}  accepted results per worker (throughput)
// Thread-safe.
#ifndef DSM_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_
#define DSM_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics_registry.h"
#include "dsm/v1/coordinator.pb.h"

namespace dsm {

class CoordinatorMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> Create(MetricsRegistry& registry);

  void SetQueue(double depth, double outstanding) {
    queue_depth_->Set(depth);
    outstanding_->Set(outstanding);
  }
  void LeasesGranted(double n) { granted_->Increment(n); }
  void LeasesReclaimed(const std::string& reason, double n) { reclaimed_->WithLabels({reason}).Increment(n); }
  void Result(v1::LeaseResultStatus status, bool error, const std::string& worker_id);
  void WorkFailed(double n) { failed_->Increment(n); }
  void SetWorkers(double n) { workers_->Set(n); }

 private:
  CoordinatorMetrics() = default;
  Gauge* queue_depth_ = nullptr;
  Gauge* outstanding_ = nullptr;
  Counter* granted_ = nullptr;
  CounterFamily* reclaimed_ = nullptr;
  CounterFamily* results_ = nullptr;
  Counter* failed_ = nullptr;
  Gauge* workers_ = nullptr;
  CounterFamily* worker_results_ = nullptr;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_
