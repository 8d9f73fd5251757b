#include "services/coordinator/coordinator_metrics.h"

namespace dsm {

absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> CoordinatorMetrics::Create(MetricsRegistry& registry) {
  auto depth = registry.AddGauge("dsm_coordinator_queue_depth", "Work items waiting for a lease.");
  auto outstanding =
      registry.AddGauge("dsm_coordinator_leases_outstanding", "Leases granted and not yet answered.");
  auto granted = registry.AddCounter("dsm_coordinator_leases_granted_total", "Leases handed out to workers.");
  auto reclaimed = registry.AddCounter("dsm_coordinator_leases_reclaimed_total",
                                       "Leases taken back, by reason (expired, released, cancelled).", {"reason"});
  auto results = registry.AddCounter("dsm_coordinator_results_total",
                                     "Lease results received, by how they were taken.", {"status"});
  auto failed = registry.AddCounter("dsm_coordinator_work_failed_total",
                                    "Work items that failed (out of attempts or a non-retryable error).");
  auto workers = registry.AddGauge("dsm_coordinator_workers_connected", "Workers with an open Lease stream.");
  auto per_worker = registry.AddCounter("dsm_coordinator_worker_results_total",
                                        "Results accepted, per worker.", {"worker"});
  for (const absl::Status& s : {depth.status(), outstanding.status(), granted.status(), reclaimed.status(),
                                results.status(), failed.status(), workers.status(), per_worker.status()}) {
    if (!s.ok()) return s;
  }
  std::unique_ptr<CoordinatorMetrics> m(new CoordinatorMetrics());
  m->queue_depth_ = &(*depth)->WithLabels({});
  m->outstanding_ = &(*outstanding)->WithLabels({});
  m->granted_ = &(*granted)->WithLabels({});
  m->reclaimed_ = *reclaimed;
  m->results_ = *results;
  m->failed_ = &(*failed)->WithLabels({});
  m->workers_ = &(*workers)->WithLabels({});
  m->worker_results_ = *per_worker;
  return m;
}

void CoordinatorMetrics::Result(v1::LeaseResultStatus status, bool error, const std::string& worker_id) {
  const char* name = "unknown_lease";
  switch (status) {
    case v1::LEASE_RESULT_STATUS_ACCEPTED:
      name = error ? "error" : "accepted";
      break;
    case v1::LEASE_RESULT_STATUS_DUPLICATE:
      name = "duplicate";
      break;
    case v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED:
      name = "expired_reissued";
      break;
    default:
      break;
  }
  results_->WithLabels({name}).Increment();
  if (status == v1::LEASE_RESULT_STATUS_ACCEPTED && !error) worker_results_->WithLabels({worker_id}).Increment();
}

}  // namespace dsm
