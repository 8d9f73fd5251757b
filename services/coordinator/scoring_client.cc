#include "services/coordinator/scoring_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/seed_mix.h"
#include "common/status_conversion.h"
#include "spdlog/spdlog.h"

namespace dsm {
namespace {

bool Retryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kResourceExhausted;
}

}  // namespace

absl::Status ScoringClientOptions::Validate() const {
  if (max_attempts < 1 || max_attempts > 100) {
    return absl::InvalidArgumentError(absl::StrCat("max_attempts: ", max_attempts, " not in [1, 100]"));
  }
  if (deadline <= absl::ZeroDuration()) return absl::InvalidArgumentError("deadline: must be > 0");
  if (initial_backoff < absl::ZeroDuration() || max_backoff < initial_backoff) {
    return absl::InvalidArgumentError("max_backoff: must be >= initial_backoff >= 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ScoringClient>> ScoringClient::Create(ScoringClientOptions options,
                                                                     MetricsRegistry* metrics) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  std::unique_ptr<ScoringClient> client(new ScoringClient(options));
  if (!options.verifier_target.empty()) {
    client->verifier_ = v1::Verifier::NewStub(MakeChannel(options.verifier_target, options.channel));
  }
  if (!options.meta_verifier_target.empty()) {
    client->meta_verifier_ = v1::MetaVerifier::NewStub(MakeChannel(options.meta_verifier_target, options.channel));
  }
  if (metrics != nullptr) {
    auto calls = metrics->AddCounter("dsm_coordinator_scoring_calls_total",
                                     "Verify/Assess calls made by the coordinator, by final status code.",
                                     {"service", "code"});
    auto retries = metrics->AddCounter("dsm_coordinator_scoring_retries_total",
                                       "Verify/Assess attempts repeated after a retryable error.", {"service"});
    if (!calls.ok()) return calls.status();
    if (!retries.ok()) return retries.status();
    client->calls_ = *calls;
    client->retries_ = *retries;
  }
  return client;
}

template <typename Call>
absl::Status ScoringClient::WithRetries(const char* service, Call attempt) {
  absl::Duration backoff = options_.initial_backoff;
  absl::Status status;
  for (int i = 1; i <= options_.max_attempts; ++i) {
    grpc::ClientContext context;
    SetDeadline(&context, options_.deadline);
    status = FromGrpcStatus(attempt(&context));
    if (status.ok() || !Retryable(status.code()) || i == options_.max_attempts) break;
    if (retries_ != nullptr) retries_->WithLabels({service}).Increment();
    spdlog::warn("coordinator: {} attempt {} of {} failed, retrying: {}", service, i, options_.max_attempts,
                 std::string(status.message()));
    absl::SleepFor(backoff);
    backoff = std::min(options_.max_backoff, backoff * 2);
  }
  if (calls_ != nullptr) calls_->WithLabels({service, absl::StatusCodeToString(status.code())}).Increment();
  return status;
}

void ScoringClient::RequireAdapterVersion(v1::AdapterRole role, uint64_t version) {
  absl::MutexLock lock(&mu_);
  uint64_t& floor = floors_[role];
  floor = std::max(floor, version);
}

uint64_t ScoringClient::RequiredAdapterVersion(v1::AdapterRole role) const {
  absl::MutexLock lock(&mu_);
  auto it = floors_.find(role);
  return it == floors_.end() ? 0 : it->second;
}

template <typename Request>
Request ScoringClient::Prepared(const Request& original, v1::AdapterRole default_role) const {
  Request request = original;
  if (options_.seed.has_value() && !request.params().has_seed() && !request.request_id().empty()) {
    request.mutable_params()->set_seed(NamedSeed(*options_.seed, request.request_id()));
  }
  const v1::AdapterRole role =
      request.adapter_role() == v1::ADAPTER_ROLE_UNSPECIFIED ? default_role : request.adapter_role();
  request.set_min_adapter_version(std::max(request.min_adapter_version(), RequiredAdapterVersion(role)));
  return request;
}

absl::StatusOr<v1::VerifyResponse> ScoringClient::Verify(const v1::VerifyRequest& original) {
  if (verifier_ == nullptr) return absl::FailedPreconditionError("verifier: no verifier address configured");
  const v1::VerifyRequest request = Prepared(original, v1::ADAPTER_ROLE_VERIFIER);
  v1::VerifyResponse response;
  absl::Status s = WithRetries("verifier", [&](grpc::ClientContext* context) {
    response.Clear();
    return verifier_->Verify(context, request, &response);
  });
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("Verify: ", s.message()));
  return response;
}

absl::StatusOr<v1::AssessResponse> ScoringClient::Assess(const v1::AssessRequest& original) {
  if (meta_verifier_ == nullptr) {
    return absl::FailedPreconditionError("meta_verifier: no meta-verifier address configured");
  }
  const v1::AssessRequest request = Prepared(original, v1::ADAPTER_ROLE_META_VERIFIER);
  v1::AssessResponse response;
  absl::Status s = WithRetries("meta_verifier", [&](grpc::ClientContext* context) {
    response.Clear();
    return meta_verifier_->Assess(context, request, &response);
  });
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("Assess: ", s.message()));
  return response;
}

}  // namespace dsm
