// LeaseScorer: what a rollout worker that also hosts a scoring role (verifier,
// meta-verifier) plugs into its LeaseClient so that ScoreWork leases can be
// answered. The scoring engine implements it; a worker without one answers
// ScoreWork with a non-retryable FAILED_PRECONDITION.
//
// Implementations must be thread-safe: Score() is called from the lease
// stream's reader thread, and `done` may run on any thread, exactly once.
#ifndef DSM_SERVICES_WORKER_LEASE_SCORER_H_
#define DSM_SERVICES_WORKER_LEASE_SCORER_H_

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dsm/v1/coordinator.pb.h"

namespace dsm {

class LeaseScorer {
 public:
  virtual ~LeaseScorer() = default;

  // Scores `work` (exactly one of verify / assess is set) and calls `done`
  // once with the result of the same kind, or an error (INVALID_ARGUMENT
  // naming the field for a bad request; UNAVAILABLE / DEADLINE_EXCEEDED when
  // another attempt may succeed). Must not block: queue the work and return.
  // `deadline` bounds the whole scoring (the lease expiry plus slack).
  virtual void Score(const v1::ScoreWork& work, absl::Time deadline,
                     std::function<void(absl::StatusOr<v1::ScoreResult>)> done) = 0;
};

}  // namespace dsm

#endif  // DSM_SERVICES_WORKER_LEASE_SCORER_H_
