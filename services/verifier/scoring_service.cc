#include "services/verifier/scoring_service.h"

#include "absl/time/clock.h"
#include "common/status_conversion.h"

namespace dsm {
namespace {

// The call's deadline, capped at a day (a call without one has "infinity").
absl::Time CallDeadline(grpc::CallbackServerContext* context) {
  const absl::Time cap = absl::Now() + absl::Hours(24);
  const absl::Time deadline = absl::FromChrono(context->deadline());
  return deadline > cap ? cap : deadline;
}

}  // namespace

grpc::ServerUnaryReactor* VerifierService::Verify(grpc::CallbackServerContext* context,
                                                  const v1::VerifyRequest* request, v1::VerifyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_->Verify(*request, CallDeadline(context), response,
                [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* VerifierService::GetServerInfo(grpc::CallbackServerContext* context,
                                                         const v1::GetServerInfoRequest*, v1::ServerInfo* info) {
  core_->FillServerInfo(info);
  info->set_service(v1::Verifier::service_full_name());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MetaVerifierService::Assess(grpc::CallbackServerContext* context,
                                                      const v1::AssessRequest* request,
                                                      v1::AssessResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  core_->Assess(*request, CallDeadline(context), response,
                [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* MetaVerifierService::GetServerInfo(grpc::CallbackServerContext* context,
                                                             const v1::GetServerInfoRequest*, v1::ServerInfo* info) {
  core_->FillServerInfo(info);
  info->set_service(v1::MetaVerifier::service_full_name());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dsm
