// LearnerMetrics: every Prometheus family the learner service exports,
// registered once, with the per-role / per-result children looked up once
// (STYLE.md item 6). Callers use the Record…() helpers; nothing on the hot
// path looks a metric up by name.
//
// Thread-safe (the underlying counters, gauges and histograms are).
#ifndef DSM_SERVICES_LEARNER_LEARNER_METRICS_H_
#define DSM_SERVICES_LEARNER_LEARNER_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "common/adapter_roles.h"
#include "common/metrics_registry.h"
#include "dsm/v1/learner.pb.h"

namespace dsm {


class LearnerMetrics {
 public:
  // Registers the families on `registry` (which must outlive this object).
  // Registering twice on one registry is fine (the families are shared).
  static absl::StatusOr<std::unique_ptr<LearnerMetrics>> Create(MetricsRegistry& registry);

  struct StepRecord {
    double loss = 0;
    double kl = 0;
    double clip_fraction = 0;
    double reward_mean = 0;
    double reward_std = 0;
    double grad_norm = 0;
    int64_t tokens = 0;
    double seconds = 0;
  };
  void RecordStep(v1::AdapterRole role, const StepRecord& step);
  // One ack of SubmitGroups (ACCEPTED, DUPLICATE, DROPPED_*, REJECTED).
  void RecordGroup(v1::GroupStatus status);
  // Samples dropped, by reason: stale or no variance.
  void RecordDroppedSamples(v1::GroupStatus reason, int64_t samples);
  // How many versions behind the current one an accepted sample was.
  void RecordPolicyLag(v1::AdapterRole role, double versions);
  void RecordAdapterPublished(v1::AdapterRole role, uint64_t version);
  // One adapter version of `bytes` tensor bytes sent to a subscriber, over
  // the bulk endpoint or in WatchAdapters chunks.
  void RecordAdapterVersionSent(uint64_t bytes, bool bulk);

 private:
  struct RoleHandles {
    Counter* steps = nullptr;
    Gauge* loss = nullptr;
    Gauge* kl = nullptr;
    Gauge* clip_fraction = nullptr;
    Gauge* reward_mean = nullptr;
    Gauge* reward_std = nullptr;
    Gauge* grad_norm = nullptr;
    Counter* tokens = nullptr;
    Histogram* step_seconds = nullptr;
    Histogram* policy_lag = nullptr;
    Gauge* adapter_version = nullptr;
  };
  LearnerMetrics() = default;
  const RoleHandles* Role(v1::AdapterRole role) const;

  std::map<v1::AdapterRole, RoleHandles> roles_;
  std::map<v1::GroupStatus, Counter*> groups_;
  Counter* dropped_stale_ = nullptr;
  Counter* dropped_no_variance_ = nullptr;
  Counter* adapter_bytes_sent_ = nullptr;
  Counter* versions_sent_bulk_ = nullptr;
  Counter* versions_sent_in_band_ = nullptr;
};

}  // namespace dsm

#endif  // DSM_SERVICES_LEARNER_LEARNER_METRICS_H_
