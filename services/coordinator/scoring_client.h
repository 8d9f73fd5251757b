// ScoringClient: the coordinator's calls to the verifier and meta-verifier
// services. One channel per service over all its replicas (MakeChannel:
// round-robin over every address of the target, e.g.
// "ipv4:10.0.0.5:50054,10.0.0.6:50054" or a DNS name with several records),
// so concurrent calls spread over the replicas. Every attempt has a
// deadline. UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are tried
// again (after exponential back-off, on whichever replica the balancer picks)
// up to max_attempts; then — or at once for any other error — the call
// fails and is counted in dsm_coordinator_scoring_calls_total{service,code}.
// A failed call is an error for the caller to handle, never a score.
//
// Reproducible sampling: with `seed` set, a request whose params carry no
// seed is sent with NamedSeed(seed, request_id) (the samplers derive each
// completion's seed from it and are batch-invariant), so the same run asks
// for the same samples. RequireAdapterVersion raises the min_adapter_version
// of every later request for a role: the coordinator pins the version each
// Learner.Flush returned, so no sampler answers with an older adapter.
//
// Thread-safe; calls block the calling thread.
#ifndef DSM_SERVICES_COORDINATOR_SCORING_CLIENT_H_
#define DSM_SERVICES_COORDINATOR_SCORING_CLIENT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_client.h"
#include "common/metrics_registry.h"
#include "dsm/v1/scoring.grpc.pb.h"

namespace dsm {

struct ScoringClientOptions {
  std::string verifier_target;       // "" = no verifier calls
  std::string meta_verifier_target;  // "" = no meta-verifier calls
  absl::Duration deadline = absl::Seconds(300);  // per attempt
  int max_attempts = 4;                          // [1, 100]
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  ChannelOptions channel;
  // The run's seed: requests without a seed get one derived from it and their request_id.
  // Unset = the servers draw random seeds.
  std::optional<uint64_t> seed;

  absl::Status Validate() const;
};

class ScoringClient {
 public:
  // `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<ScoringClient>> Create(ScoringClientOptions options,
                                                               MetricsRegistry* metrics);

  absl::StatusOr<v1::VerifyResponse> Verify(const v1::VerifyRequest& request);
  absl::StatusOr<v1::AssessResponse> Assess(const v1::AssessRequest& request);

  // Later requests for `role` (a Verify's UNSPECIFIED is VERIFIER, an Assess's META_VERIFIER)
  // ask for at least `version`; a request's own higher minimum stands. Never lowers a floor.
  void RequireAdapterVersion(v1::AdapterRole role, uint64_t version);
  uint64_t RequiredAdapterVersion(v1::AdapterRole role) const;

 private:
  explicit ScoringClient(ScoringClientOptions options) : options_(std::move(options)) {}
  // Runs `attempt` until it succeeds, fails for good or runs out of attempts.
  template <typename Call>
  absl::Status WithRetries(const char* service, Call attempt);
  // The seed and the version floor, applied to a copy of the request.
  template <typename Request>
  Request Prepared(const Request& request, v1::AdapterRole default_role) const;

  const ScoringClientOptions options_;
  std::unique_ptr<v1::Verifier::Stub> verifier_;
  std::unique_ptr<v1::MetaVerifier::Stub> meta_verifier_;
  CounterFamily* calls_ = nullptr;
  CounterFamily* retries_ = nullptr;
  mutable absl::Mutex mu_;
  std::map<v1::AdapterRole, uint64_t> floors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_SCORING_CLIENT_H_
