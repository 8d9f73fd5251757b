#include "services/coordinator/coordinator_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_conversion.h"
#include "common/run_states.h"
#include "services/coordinator/lease_reactor.h"

namespace dsm {
namespace {

constexpr size_t kMaxQueuedToWorker = 4096;

// Finishes a unary call with `result` copied into `response`.
template <typename T>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, absl::StatusOr<T> result, T* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

// Buffers an ImportRecords stream, then imports it in one call.
class ImportReactor final : public grpc::ServerReadReactor<v1::ImportRecordsRequest> {
 public:
  ImportReactor(CoordinatorProcess* process, v1::ImportRecordsResponse* response)
      : process_(process), response_(response) {
    StartRead(&in_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      if (records_.empty()) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "records: none sent"));
      auto imported = process_->Import(records_);
      if (imported.ok()) *response_ = *std::move(imported);
      return Finish(ToGrpcStatus(imported.status()));
    }
    if (absl::Status s = process_->CheckImport(in_); !s.ok()) return Finish(ToGrpcStatus(s));
    if (records_.size() >= process_->options().max_import_records) {
      return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 absl::StrCat("records: more than ", process_->options().max_import_records,
                                              " in one ImportRecords stream; split the import")));
    }
    records_.push_back(std::move(in_));
    in_.Clear();
    StartRead(&in_);
  }
  void OnCancel() override {}
  void OnDone() override { delete this; }

 private:
  CoordinatorProcess* const process_;
  v1::ImportRecordsResponse* const response_;
  v1::ImportRecordsRequest in_;
  std::vector<v1::ImportRecordsRequest> records_;
};

}  // namespace

CoordinatorService::CoordinatorService(CoordinatorProcess* process, absl::Duration watch_poll)
    : process_(process), watch_poll_(watch_poll) {
  poller_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(watch_poll_)) PollWatches();
  });
}

CoordinatorService::~CoordinatorService() {
  stop_.Notify();
  if (poller_.joinable()) poller_.join();
  absl::MutexLock lock(&mu_);
  for (Watch& w : watches_) w.handle.Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is stopping"));
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* CoordinatorService::Lease(
    grpc::CallbackServerContext* /*context*/) {
  return StartLeaseReactor(process_->dispatcher(), kMaxQueuedToWorker);
}

grpc::ServerUnaryReactor* CoordinatorService::StartRun(grpc::CallbackServerContext* context,
                                                       const v1::StartRunRequest* request, v1::RunStatus* response) {
  return Answer(context, process_->StartRun(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetRun(grpc::CallbackServerContext* context,
                                                     const v1::GetRunRequest* request, v1::RunStatus* response) {
  return Answer(context, process_->GetRun(request->name()), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ListRuns(grpc::CallbackServerContext* context,
                                                       const v1::ListRunsRequest* request,
                                                       v1::ListRunsResponse* response) {
  return Answer(context, process_->ListRuns(*request), response);
}

grpc::ServerUnaryReactor* CoordinatorService::CancelRun(grpc::CallbackServerContext* context,
                                                        const v1::CancelRunRequest* request,
                                                        v1::RunStatus* response) {
  return Answer(context, process_->CancelRun(*request), response);
}

grpc::ServerWriteReactor<v1::RunEvent>* CoordinatorService::WatchRun(grpc::CallbackServerContext* /*context*/,
                                                                    const v1::WatchRunRequest* request) {
  auto [writer, handle] = StreamWriter<v1::RunEvent>::Create();
  // Checked now so a bad name fails at once.
  auto first = process_->Events(request->name(), request->from_sequence(), 1);
  if (!first.ok()) {
    handle.Close(ToGrpcStatus(first.status()));
    return writer;
  }
  absl::MutexLock lock(&mu_);
  watches_.push_back(Watch{request->name(), std::max<uint64_t>(request->from_sequence(), 1), handle});
  return writer;
}

void CoordinatorService::PollWatches() {
  absl::MutexLock lock(&mu_);
  for (auto it = watches_.begin(); it != watches_.end();) {
    Watch& w = *it;
    bool done = w.handle.cancelled();
    while (!done) {
      auto events = process_->Events(w.name, w.next, 256);
      if (!events.ok()) {
        w.handle.Close(ToGrpcStatus(events.status()));
        done = true;
        break;
      }
      for (v1::RunEvent& e : *events) {
        w.next = e.sequence() + 1;
        const bool terminal = IsRunEndEvent(e);
        if (!w.handle.Push(std::move(e))) {
          done = true;
          break;
        }
        if (terminal) {
          w.handle.Close(grpc::Status::OK);
          done = true;
          break;
        }
      }
      if (events->size() < 256) break;
    }
    it = done ? watches_.erase(it) : std::next(it);
  }
}

grpc::ServerReadReactor<v1::ImportRecordsRequest>* CoordinatorService::ImportRecords(
    grpc::CallbackServerContext* /*context*/, v1::ImportRecordsResponse* response) {
  return new ImportReactor(process_, response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetServerInfo(grpc::CallbackServerContext* context,
                                                            const v1::GetServerInfoRequest* /*request*/,
                                                            v1::ServerInfo* response) {
  response->set_service(v1::Coordinator::service_full_name());
  response->set_dsm_version(DSM_VERSION);
  v1::ServerLimits* limits = response->mutable_limits();
  limits->set_max_message_bytes(process_->options().max_message_bytes);
  limits->set_max_id_bytes(process_->options().dispatcher.max_id_bytes);
  limits->set_max_text_bytes(process_->store()->options().limits.max_text_bytes);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dsm
