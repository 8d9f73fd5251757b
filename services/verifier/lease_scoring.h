// ScoringLeaseScorer: answers a worker's ScoreWork leases with the scoring
// cores this process hosts (the verifier for ScoreWork.verify, the
// meta-verifier for ScoreWork.assess), so `dsm serve
// worker,verifier,meta-verifier --coordinator H:P` also takes scoring work
// from the coordinator's queue. Work for a role not hosted here fails with
// FAILED_PRECONDITION naming it. Thread-safe; never blocks.
#ifndef DSM_SERVICES_VERIFIER_LEASE_SCORING_H_
#define DSM_SERVICES_VERIFIER_LEASE_SCORING_H_

#include "services/verifier/scoring_core.h"
#include "services/worker/lease_scorer.h"

namespace dsm {

class ScoringLeaseScorer final : public LeaseScorer {
 public:
  // Either core may be null (not hosted); neither is owned.
  ScoringLeaseScorer(ScoringCore* verifier, ScoringCore* meta_verifier)
      : verifier_(verifier), meta_verifier_(meta_verifier) {}

  void Score(const v1::ScoreWork& work, absl::Time deadline,
             std::function<void(absl::StatusOr<v1::ScoreResult>)> done) override;

 private:
  ScoringCore* const verifier_;
  ScoringCore* const meta_verifier_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_LEASE_SCORING_H_
