// The gRPC face of a rollout worker's sampling engine: dsm.v1.Sampler.
// Thin: each handler unpacks the request, calls GenerationService, and
// converts the status once at the edge.
#ifndef DSM_SERVICES_WORKER_SAMPLER_SERVICE_H_
#define DSM_SERVICES_WORKER_SAMPLER_SERVICE_H_

#include <string>
#include <vector>

#include "dsm/v1/sampler.grpc.pb.h"
#include "services/worker/generation_service.h"

namespace dsm {

class SamplerService final : public v1::Sampler::CallbackService {
 public:
  SamplerService(GenerationService* generation, AdapterRegistry* registry, std::string model_name);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context, const v1::GetServerInfoRequest*,
                                          v1::ServerInfo* info) override;

 private:
  GenerationService* generation_;
  AdapterRegistry* registry_;
  const std::string model_name_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_WORKER_SAMPLER_SERVICE_H_
