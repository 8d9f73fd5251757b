// ScoringMetrics: the Prometheus families of the scoring services, registered
// once (STYLE.md item 6); children are looked up per record (a few lookups
// per request, negligible next to sampling n analyses). The
// `service` label is "verifier" or "meta_verifier" (the prompt template's
// role).
//
//   dsm_scoring_requests_total{service,code}      requests finished, by gRPC code name
//   dsm_scoring_request_seconds{service}          wall time of a request
//   dsm_scoring_analyses_total{service,format}    analyses parsed, by FormatStatus
//   dsm_scoring_requests_in_flight{service}       requests accepted and not yet done
//
// Thread-safe.
#ifndef DSM_SERVICES_VERIFIER_SCORING_METRICS_H_
#define DSM_SERVICES_VERIFIER_SCORING_METRICS_H_

#include <map>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics_registry.h"
#include "dsm/v1/common.pb.h"
#include "services/scoring/prompt_template.h"

namespace dsm {

class ScoringMetrics {
 public:
  // Registers on `registry` (which must outlive this). Registering twice on
  // one registry is fine (the families are shared).
  static absl::StatusOr<std::unique_ptr<ScoringMetrics>> Create(MetricsRegistry& registry);

  void RecordStarted(PromptRole service);
  void RecordFinished(PromptRole service, absl::StatusCode code, absl::Duration latency);
  void RecordAnalysis(PromptRole service, v1::FormatStatus format);

 private:
  ScoringMetrics() = default;

  CounterFamily* requests_ = nullptr;
  HistogramFamily* seconds_ = nullptr;
  CounterFamily* analyses_ = nullptr;
  GaugeFamily* in_flight_ = nullptr;
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_SCORING_METRICS_H_
