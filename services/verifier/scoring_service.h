// The gRPC faces of the scoring services: dsm.v1.Verifier and
// dsm.v1.MetaVerifier. Thin: each handler passes the request to its
// ScoringCore and converts the status once at the edge (unary callback
// reactors, finished from the core's completion callback, so no gRPC thread
// waits while the analyses are sampled).
//
// Thread-safe; the core must outlive the service.
#ifndef DSM_SERVICES_VERIFIER_SCORING_SERVICE_H_
#define DSM_SERVICES_VERIFIER_SCORING_SERVICE_H_

#include "dsm/v1/scoring.grpc.pb.h"
#include "services/verifier/scoring_core.h"

namespace dsm {

class VerifierService final : public v1::Verifier::CallbackService {
 public:
  explicit VerifierService(ScoringCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context, const v1::GetServerInfoRequest*,
                                          v1::ServerInfo* info) override;

 private:
  ScoringCore* core_;
};

class MetaVerifierService final : public v1::MetaVerifier::CallbackService {
 public:
  explicit MetaVerifierService(ScoringCore* core) : core_(core) {}

  grpc::ServerUnaryReactor* Assess(grpc::CallbackServerContext* context, const v1::AssessRequest* request,
                                   v1::AssessResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context, const v1::GetServerInfoRequest*,
                                          v1::ServerInfo* info) override;

 private:
  ScoringCore* core_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_SCORING_SERVICE_H_
