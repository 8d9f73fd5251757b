// LeaseWorkRunner: turns one LeaseGrant into one LeaseResult. GenerateWork
// becomes a v1::GenerateRequest run through GenerationService::Start (so it
// shares the worker's Sampler, and its continuous batching, with every other
// lease and with direct Generate calls); the n completions are collected and
// returned as LeaseResult.generated. ScoreWork goes to the LeaseScorer, when
// there is one. Anything that fails becomes LeaseResult.error with the gRPC
// code, a one-line message naming the field, and whether another attempt may
// succeed (see RetryableLeaseError).
//
// Knows nothing about streams, acks or cancellation: LeaseClient does that.
//
// Thread-safe. Run() never blocks; `done` runs exactly once, on the calling
// thread (a request rejected at once), the sampler's thread or the scorer's
// thread, and must not block. `done` may run after the runner is destroyed
// (it captures nothing of the runner), but the GenerationService and the
// scorer must outlive every lease in flight.
#ifndef DSM_SERVICES_WORKER_LEASE_WORK_RUNNER_H_
#define DSM_SERVICES_WORKER_LEASE_WORK_RUNNER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/worker/generation_service.h"
#include "services/worker/lease_scorer.h"

namespace dsm {

class LeaseWorkRunner {
 public:
  using Done = std::function<void(v1::LeaseResult)>;

  // `roles`: the adapter roles this worker generates with (Hello.roles);
  // ADAPTER_ROLE_BASE is always allowed. `generation` must outlive the
  // leases; `scorer` may be null (then ScoreWork fails, see Run()).
  LeaseWorkRunner(GenerationService* generation, std::vector<v1::AdapterRole> roles, LeaseScorer* scorer);

  // Replaces the scorer for leases started from now on (null = none).
  void SetScorer(LeaseScorer* scorer);

  // Runs the work of `grant` and reports its LeaseResult (lease_id set) to
  // `done`. `deadline` bounds waiting for min_adapter_version and scoring.
  // Errors (as LeaseResult.error):
  //   INVALID_ARGUMENT, not retryable: no work, n = 0, or whatever
  //     GenerationService rejects (e.g. "n: 100 exceeds max_n 8").
  //   FAILED_PRECONDITION, not retryable: an adapter role this worker does
  //     not host, or ScoreWork without a scorer (naming the missing role).
  //   DEADLINE_EXCEEDED, retryable: min_adapter_version did not arrive.
  void Run(const v1::LeaseGrant& grant, absl::Time deadline, Done done);

  // A LeaseResult carrying `status` (not OK) as its LeaseError.
  static v1::LeaseResult ErrorResult(const std::string& lease_id, const absl::Status& status);

 private:
  void RunGenerate(const std::string& lease_id, const v1::GenerateWork& work, absl::Time deadline, Done done);
  void RunScore(const std::string& lease_id, const v1::ScoreWork& work, absl::Time deadline, Done done);

  GenerationService* const generation_;
  const std::vector<v1::AdapterRole> roles_;
  mutable absl::Mutex mu_;
  LeaseScorer* scorer_ ABSL_GUARDED_BY(mu_);
};

// Whether a lease that failed with `code` may succeed if granted again (to
// this or another worker): UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
// ABORTED, CANCELLED, INTERNAL and UNKNOWN (local faults of one worker) are;
// request errors (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE,
// NOT_FOUND, ...) are not.
bool RetryableLeaseError(absl::StatusCode code);

}  // namespace dsm

#endif  // DSM_SERVICES_WORKER_LEASE_WORK_RUNNER_H_
