// LearnerService: the dsm.v1.Learner gRPC service (callback API). Thin
// handlers: protos in, LearnerCore calls, protos out; every absl::Status is
// converted once with ToGrpcStatus.
//
//  - SubmitGroups: a ServerBidiReactor per stream (at most one read and one
//    write in flight). It first sends the initial credit grant, then one ack
//    per group (in arrival order) carrying any credits freed meanwhile, and
//    pure credit grants when the training loop frees buffer space while the
//    client waits with a zero balance. Responses waiting to be written are
//    bounded: the next read starts only when fewer than kMaxPendingWrites
//    are queued.
//  - WatchAdapters (served raw: the request is parsed here, the chunks go out
//    pre-serialised): StartWatchAdapters on an AdapterPublisher subscription,
//    offering the bulk endpoint when there is one and the request accepts it.
//  - GetState, GetServerInfo: answered inline. Checkpoint, InitAdapter, Flush: queued
//    to the core's training thread, finished from there (no RPC thread blocks).
//
// Thread-safe. `core`, `publisher` and `metrics` are not owned and must
// outlive the service (and the server it is registered on).
#ifndef DSM_SERVICES_LEARNER_LEARNER_SERVICE_H_
#define DSM_SERVICES_LEARNER_LEARNER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/time/time.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/watch_adapters_reactor.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_metrics.h"

namespace dsm {

struct LearnerServiceOptions {
  // Credits one stream holds at most (its balance never exceeds this);
  // 0 = max_buffered_groups (the first stream may take the whole window).
  uint32_t stream_credit_window = 0;
  std::string model_name;  // ServerInfo.model.name
  uint64_t max_message_bytes = 16 << 20;
  // The bulk endpoint offered to WatchAdapters subscribers that accept it
  // (0 = none: every version goes in chunks), and the host named in the
  // offer (empty = the host the subscriber dialled, from the call's
  // authority).
  int bulk_port = 0;
  std::string bulk_host;
};

class LearnerService final : public LearnerRawWatchAdaptersService {
 public:
  LearnerService(LearnerCore* core, AdapterPublisher* publisher, LearnerMetrics* metrics,
                 LearnerServiceOptions options = {});

  grpc::ServerBidiReactor<v1::SubmitGroupsRequest, v1::SubmitGroupsResponse>* SubmitGroups(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchAdapters(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* context, const v1::GetStateRequest* request,
                                     v1::LearnerState* response) override;
  grpc::ServerUnaryReactor* Checkpoint(grpc::CallbackServerContext* context, const v1::CheckpointRequest* request,
                                       v1::CheckpointResponse* response) override;
  grpc::ServerUnaryReactor* InitAdapter(grpc::CallbackServerContext* context, const v1::InitAdapterRequest* request,
                                        v1::InitAdapterResponse* response) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context, const v1::FlushRequest* request,
                                  v1::FlushResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

 private:
  uint32_t StreamWindow() const;

  LearnerCore* const core_;
  AdapterPublisher* const publisher_;
  LearnerMetrics* const metrics_;
  const LearnerServiceOptions options_;
  const std::string instance_id_;
  const absl::Time started_at_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_LEARNER_LEARNER_SERVICE_H_
