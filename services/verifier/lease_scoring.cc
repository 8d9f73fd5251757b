#include "services/verifier/lease_scoring.h"

#include <memory>
#include <utility>

namespace dsm {

void ScoringLeaseScorer::Score(const v1::ScoreWork& work, absl::Time deadline,
                               std::function<void(absl::StatusOr<v1::ScoreResult>)> done) {
  switch (work.request_case()) {
    case v1::ScoreWork::kVerify: {
      if (verifier_ == nullptr) {
        return done(absl::FailedPreconditionError("score.verify: this worker hosts no verifier"));
      }
      auto result = std::make_shared<v1::ScoreResult>();
      verifier_->Verify(work.verify(), deadline, result->mutable_verify(),
                        [result, done = std::move(done)](absl::Status s) {
                          if (!s.ok()) return done(s);
                          done(std::move(*result));
                        });
      return;
    }
    case v1::ScoreWork::kAssess: {
      if (meta_verifier_ == nullptr) {
        return done(absl::FailedPreconditionError("score.assess: this worker hosts no meta-verifier"));
      }
      auto result = std::make_shared<v1::ScoreResult>();
      meta_verifier_->Assess(work.assess(), deadline, result->mutable_assess(),
                             [result, done = std::move(done)](absl::Status s) {
                               if (!s.ok()) return done(s);
                               done(std::move(*result));
                             });
      return;
    }
    default:
      return done(absl::InvalidArgumentError("score.request: neither verify nor assess is set"));
  }
}

}  // namespace dsm
