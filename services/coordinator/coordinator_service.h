// CoordinatorService: the dsm.v1.Coordinator gRPC service, thin handlers
// over CoordinatorProcess (run control) and LeaseDispatcher (the Lease
// stream, lease_reactor.h). WatchRun streams stored events, then new ones
// (polled every watch_poll, so at most that late), and ends after the event
// that puts the run in a terminal state. ImportRecords buffers the stream
// (bounded by max_import_records; each message checked as it arrives) and
// imports it in one call when the client half-closes.
#ifndef DSM_SERVICES_COORDINATOR_COORDINATOR_SERVICE_H_
#define DSM_SERVICES_COORDINATOR_COORDINATOR_SERVICE_H_

#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/stream_writer.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "services/coordinator/coordinator_process.h"

namespace dsm {

class CoordinatorService final : public v1::Coordinator::CallbackService {
 public:
  explicit CoordinatorService(CoordinatorProcess* process, absl::Duration watch_poll = absl::Milliseconds(200));
  ~CoordinatorService() override;

  grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* Lease(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* StartRun(grpc::CallbackServerContext* context, const v1::StartRunRequest* request,
                                     v1::RunStatus* response) override;
  grpc::ServerUnaryReactor* GetRun(grpc::CallbackServerContext* context, const v1::GetRunRequest* request,
                                   v1::RunStatus* response) override;
  grpc::ServerUnaryReactor* ListRuns(grpc::CallbackServerContext* context, const v1::ListRunsRequest* request,
                                     v1::ListRunsResponse* response) override;
  grpc::ServerWriteReactor<v1::RunEvent>* WatchRun(grpc::CallbackServerContext* context,
                                                  const v1::WatchRunRequest* request) override;
  grpc::ServerReadReactor<v1::ImportRecordsRequest>* ImportRecords(grpc::CallbackServerContext* context,
                                                                  v1::ImportRecordsResponse* response) override;
  grpc::ServerUnaryReactor* CancelRun(grpc::CallbackServerContext* context, const v1::CancelRunRequest* request,
                                      v1::RunStatus* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

 private:
  struct Watch {
    std::string name;
    uint64_t next = 1;
    StreamWriter<v1::RunEvent>::Handle handle;
  };
  void PollWatches();

  CoordinatorProcess* const process_;
  const absl::Duration watch_poll_;
  absl::Mutex mu_;
  std::list<Watch> watches_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread poller_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_COORDINATOR_SERVICE_H_
