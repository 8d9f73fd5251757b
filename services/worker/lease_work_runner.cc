#include "services/worker/lease_work_runner.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dsm {

bool RetryableLeaseError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

v1::LeaseResult LeaseWorkRunner::ErrorResult(const std::string& lease_id, const absl::Status& status) {
  v1::LeaseResult result;
  result.set_lease_id(lease_id);
  v1::LeaseError* error = result.mutable_error();
  // An OK status here is a caller bug; report it as INTERNAL rather than 0.
  error->set_code(status.ok() ? static_cast<int>(absl::StatusCode::kInternal) : static_cast<int>(status.code()));
  error->set_message(status.ok() ? "error without a status" : std::string(status.message()));
  error->set_retryable(RetryableLeaseError(status.code()));
  return result;
}

LeaseWorkRunner::LeaseWorkRunner(GenerationService* generation, std::vector<v1::AdapterRole> roles,
                                 LeaseScorer* scorer)
    : generation_(generation), roles_(std::move(roles)), scorer_(scorer) {}

void LeaseWorkRunner::SetScorer(LeaseScorer* scorer) {
  absl::MutexLock lock(&mu_);
  scorer_ = scorer;
}

void LeaseWorkRunner::Run(const v1::LeaseGrant& grant, absl::Time deadline, Done done) {
  switch (grant.work_case()) {
    case v1::LeaseGrant::kGenerate:
      RunGenerate(grant.lease_id(), grant.generate(), deadline, std::move(done));
      return;
    case v1::LeaseGrant::kScore:
      RunScore(grant.lease_id(), grant.score(), deadline, std::move(done));
      return;
    default:
      done(ErrorResult(grant.lease_id(), absl::InvalidArgumentError("work: required (generate or score)")));
  }
}

void LeaseWorkRunner::RunGenerate(const std::string& lease_id, const v1::GenerateWork& work, absl::Time deadline,
                                  Done done) {
  if (work.n() == 0) {
    done(ErrorResult(lease_id, absl::InvalidArgumentError("n: 0 is below 1")));
    return;
  }
  const v1::AdapterRole role = work.adapter_role();
  if (role != v1::ADAPTER_ROLE_UNSPECIFIED && role != v1::ADAPTER_ROLE_BASE && v1::AdapterRole_IsValid(role) &&
      std::find(roles_.begin(), roles_.end(), role) == roles_.end()) {
    std::vector<std::string> held;
    for (v1::AdapterRole r : roles_) held.push_back(v1::AdapterRole_Name(r));
    done(ErrorResult(lease_id, absl::FailedPreconditionError(absl::StrCat(
                                   "adapter_role: ", v1::AdapterRole_Name(role),
                                   " is not one of this worker's roles (", absl::StrJoin(held, ", "), ")"))));
    return;
  }
  v1::GenerateRequest request;
  *request.mutable_prompt() = work.prompt();
  request.set_n(work.n());
  *request.mutable_params() = work.params();
  request.set_adapter_role(role);
  request.set_min_adapter_version(work.min_adapter_version());
  request.set_request_id(lease_id);

  // Everything the callbacks need; they outlive this call (and the runner).
  struct Group {
    absl::Mutex mu;
    std::vector<v1::Completion> completions ABSL_GUARDED_BY(mu);
  };
  auto group = std::make_shared<Group>();
  const uint32_t n = work.n();
  absl::StatusOr<std::vector<int32_t>> prompt_ids = generation_->EncodePrompt(work.prompt());
  auto shared_done = std::make_shared<Done>(std::move(done));
  GenerationService::Callbacks callbacks;
  callbacks.on_completion = [group](v1::Completion completion) {
    absl::MutexLock lock(&group->mu);
    group->completions.push_back(std::move(completion));
    return true;
  };
  callbacks.on_done = [group, shared_done, lease_id, n, prompt_ids](absl::Status status,
                                                                      v1::GenerateSummary summary) {
    if (!status.ok()) {
      (*shared_done)(ErrorResult(lease_id, status));
      return;
    }
    v1::LeaseResult result;
    result.set_lease_id(lease_id);
    v1::GenerateResult* generated = result.mutable_generated();
    {
      absl::MutexLock lock(&group->mu);
      if (group->completions.size() != n) {
        (*shared_done)(ErrorResult(lease_id, absl::InternalError(absl::StrCat(
                                                 "completions: ", group->completions.size(), " of n ", n,
                                                 " finished"))));
        return;
      }
      std::sort(group->completions.begin(), group->completions.end(),
                [](const v1::Completion& a, const v1::Completion& b) { return a.index() < b.index(); });
      for (v1::Completion& c : group->completions) *generated->add_completions() = std::move(c);
    }
    // Start() accepted the prompt, so it was encodable.
    if (prompt_ids.ok()) generated->mutable_prompt_token_ids()->Add(prompt_ids->begin(), prompt_ids->end());
    *generated->mutable_stats() = summary.stats();
    (*shared_done)(std::move(result));
  };
  absl::Status started = generation_->Start(request, deadline, std::move(callbacks));
  if (!started.ok()) (*shared_done)(ErrorResult(lease_id, started));
}

void LeaseWorkRunner::RunScore(const std::string& lease_id, const v1::ScoreWork& work, absl::Time deadline,
                               Done done) {
  const char* role = nullptr;
  switch (work.request_case()) {
    case v1::ScoreWork::kVerify: role = "verifier"; break;
    case v1::ScoreWork::kAssess: role = "meta_verifier"; break;
    default:
      done(ErrorResult(lease_id, absl::InvalidArgumentError("score.request: required (verify or assess)")));
      return;
  }
  LeaseScorer* scorer = nullptr;
  {
    absl::MutexLock lock(&mu_);
    scorer = scorer_;
  }
  if (scorer == nullptr) {
    done(ErrorResult(lease_id, absl::FailedPreconditionError(absl::StrCat(
                                   "score: this worker hosts no ", role, " role (no scoring engine)"))));
    return;
  }
  scorer->Score(work, deadline, [lease_id, done = std::move(done)](absl::StatusOr<v1::ScoreResult> scored) {
    if (!scored.ok()) {
      done(ErrorResult(lease_id, scored.status()));
      return;
    }
    v1::LeaseResult result;
    result.set_lease_id(lease_id);
    *result.mutable_scored() = std::move(*scored);
    done(std::move(result));
  });
}

}  // namespace dsm
