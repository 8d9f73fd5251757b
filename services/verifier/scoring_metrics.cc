#include "services/verifier/scoring_metrics.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"

namespace dsm {

absl::StatusOr<std::unique_ptr<ScoringMetrics>> ScoringMetrics::Create(MetricsRegistry& registry) {
  auto requests = registry.AddCounter("dsm_scoring_requests_total", "Scoring requests finished, by status code.",
                                      {"service", "code"});
  // A tiny CPU model answers in tens of milliseconds, a 7B model writing n
  // long analyses on a T4 in minutes: 10 ms .. ~160 s in powers of two.
  auto seconds = registry.AddHistogram("dsm_scoring_request_seconds", "Wall time of one scoring request.",
                                       {"service"}, ExponentialBuckets(0.01, 2, 15));
  auto analyses = registry.AddCounter("dsm_scoring_analyses_total", "Analyses parsed, by format status.",
                                      {"service", "format"});
  auto in_flight = registry.AddGauge("dsm_scoring_requests_in_flight", "Scoring requests accepted and not done.",
                                     {"service"});
  for (const absl::Status& s : {requests.status(), seconds.status(), analyses.status(), in_flight.status()}) {
    if (!s.ok()) return s;
  }
  std::unique_ptr<ScoringMetrics> m(new ScoringMetrics());
  m->requests_ = *requests;
  m->seconds_ = *seconds;
  m->analyses_ = *analyses;
  m->in_flight_ = *in_flight;
  return m;
}

void ScoringMetrics::RecordStarted(PromptRole service) {
  in_flight_->WithLabels({PromptRoleName(service)}).Increment();
}

void ScoringMetrics::RecordFinished(PromptRole service, absl::StatusCode code, absl::Duration latency) {
  const char* name = PromptRoleName(service);
  in_flight_->WithLabels({name}).Decrement();
  requests_->WithLabels({name, absl::StatusCodeToString(code)}).Increment();
  seconds_->WithLabels({name}).Observe(absl::ToDoubleSeconds(latency));
}

void ScoringMetrics::RecordAnalysis(PromptRole service, v1::FormatStatus format) {
  std::string label = absl::AsciiStrToLower(v1::FormatStatus_Name(format));
  if (label.rfind("format_status_", 0) == 0) label = label.substr(14);
  analyses_->WithLabels({PromptRoleName(service), label}).Increment();
}

}  // namespace dsm
