#include "services/worker/sampler_service.h"

#include "absl/time/clock.h"
#include "common/status_conversion.h"
#include "common/stream_writer.h"

namespace dsm {

SamplerService::SamplerService(GenerationService* generation, AdapterRegistry* registry, std::string model_name)
    : generation_(generation), registry_(registry), model_name_(std::move(model_name)) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* SamplerService::Generate(grpc::CallbackServerContext* context,
                                                                         const v1::GenerateRequest* request) {
  auto [writer, handle] = StreamWriter<v1::GenerateResponse>::Create();
  absl::Time deadline = absl::FromChrono(context->deadline());
  if (deadline > absl::Now() + absl::Hours(24)) deadline = absl::Now() + absl::Hours(24);
  GenerationService::Callbacks callbacks;
  callbacks.on_completion = [handle](v1::Completion completion) mutable {
    v1::GenerateResponse response;
    *response.mutable_completion() = std::move(completion);
    return handle.Push(std::move(response));
  };
  callbacks.on_done = [handle](absl::Status status, v1::GenerateSummary summary) mutable {
    if (status.ok()) {
      v1::GenerateResponse response;
      *response.mutable_summary() = std::move(summary);
      handle.Push(std::move(response));
    }
    handle.Close(ToGrpcStatus(status));
  };
  absl::Status started = generation_->Start(*request, deadline, std::move(callbacks));
  if (!started.ok()) handle.Close(ToGrpcStatus(started));
  return writer;
}

grpc::ServerUnaryReactor* SamplerService::GetServerInfo(grpc::CallbackServerContext* context,
                                                        const v1::GetServerInfoRequest*, v1::ServerInfo* info) {
  info->set_service(v1::Sampler::service_full_name());
  info->set_dsm_version(DSM_VERSION);
  v1::ServerLimits* limits = info->mutable_limits();
  const GenerationLimits& l = generation_->limits();
  limits->set_max_prompt_tokens(l.max_prompt_tokens);
  limits->set_max_completion_tokens(l.max_completion_tokens);
  limits->set_max_n(l.max_n);
  limits->set_default_max_tokens(l.default_max_tokens);
  for (const auto& [role, version] : registry_->versions()) {
    v1::AdapterVersion* v = info->add_adapter_versions();
    v->set_role(role);
    v->set_version(version);
  }
  (void)model_name_;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dsm
