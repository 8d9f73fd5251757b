#include "services/coordinator/lease_reactor.h"

#include <deque>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_conversion.h"

namespace dsm {
namespace {

class LeaseReactor;

// Messages to the worker: queued from any thread, written one at a time.
class Outbox {
 public:
  Outbox(LeaseReactor* reactor, size_t max_queued) : reactor_(reactor), max_queued_(max_queued) {}
  bool Push(v1::CoordinatorMessage message);
  void Close(grpc::Status status);
  void WriteDone(bool ok);
  void Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
  }

 private:
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  LeaseReactor* reactor_ ABSL_GUARDED_BY(mu_);
  const size_t max_queued_;
  std::deque<v1::CoordinatorMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::CoordinatorMessage in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> closing_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class LeaseReactor final : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage> {
 public:
  LeaseReactor(LeaseDispatcher* dispatcher, size_t max_queued)
      : dispatcher_(dispatcher), outbox_(std::make_shared<Outbox>(this, max_queued)) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the worker half-closed or went away
      EndSession("stream closed");
      outbox_->Close(grpc::Status::OK);
      return;
    }
    absl::Status status = Handle();
    if (!status.ok()) {
      EndSession(std::string(status.message()));
      outbox_->Close(ToGrpcStatus(status));
      return;
    }
    StartRead(&in_);
  }
  void OnWriteDone(bool ok) override { outbox_->WriteDone(ok); }
  void OnCancel() override {
    EndSession("cancelled");
    outbox_->Close(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    EndSession("stream done");
    outbox_->Detach();
    delete this;
  }

 private:
  absl::Status Handle() {
    switch (in_.message_case()) {
      case v1::WorkerMessage::kHello: {
        if (Session().has_value()) return absl::FailedPreconditionError("hello: sent twice on one stream");
        std::shared_ptr<Outbox> outbox = outbox_;
        auto session = dispatcher_->Connect(
            in_.hello(), [outbox](v1::CoordinatorMessage m) { return outbox->Push(std::move(m)); },
            [outbox](const absl::Status& s) { outbox->Close(ToGrpcStatus(s)); });
        if (!session.ok()) return session.status();
        bool ended = false;
        {
          absl::MutexLock lock(&mu_);
          session_ = *session;
          ended = ended_;
        }
        if (ended) dispatcher_->Disconnect(*session, "cancelled");  // the call ended meanwhile
        return absl::OkStatus();
      }
      case v1::WorkerMessage::kHeartbeat:
        if (!Session().has_value()) return absl::FailedPreconditionError("heartbeat: Hello must come first");
        return dispatcher_->OnHeartbeat(*Session(), in_.heartbeat());
      case v1::WorkerMessage::kResult:
        if (!Session().has_value()) return absl::FailedPreconditionError("result: Hello must come first");
        return dispatcher_->OnResult(*Session(), in_.result());
      default:
        return absl::InvalidArgumentError("message: none of hello, heartbeat, result is set");
    }
  }

  std::optional<uint64_t> Session() {
    absl::MutexLock lock(&mu_);
    return session_;
  }

  // Tells the dispatcher once, whichever callback sees the end first.
  void EndSession(const std::string& reason) {
    std::optional<uint64_t> session;
    {
      absl::MutexLock lock(&mu_);
      if (!ended_) session = session_;
      ended_ = true;
    }
    if (session.has_value()) dispatcher_->Disconnect(*session, reason);
  }

  LeaseDispatcher* const dispatcher_;
  std::shared_ptr<Outbox> outbox_;
  v1::WorkerMessage in_;
  absl::Mutex mu_;
  std::optional<uint64_t> session_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;

  friend class Outbox;
};

bool Outbox::Push(v1::CoordinatorMessage message) {
  absl::MutexLock lock(&mu_);
  if (reactor_ == nullptr || closing_.has_value() || finished_) return false;
  if (queue_.size() >= max_queued_) {
    closing_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            absl::StrCat("the worker is not reading: ", max_queued_, " messages queued"));
    queue_.clear();
    Pump();
    return false;
  }
  queue_.push_back(std::move(message));
  Pump();
  return true;
}

void Outbox::Close(grpc::Status status) {
  absl::MutexLock lock(&mu_);
  if (closing_.has_value() || finished_) return;
  closing_ = std::move(status);
  Pump();
}

void Outbox::WriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok && !closing_.has_value()) {
    closing_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker stopped reading");
    queue_.clear();
  }
  Pump();
}

void Outbox::Pump() {
  if (reactor_ == nullptr || writing_ || finished_) return;
  if (!queue_.empty()) {
    in_flight_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    reactor_->StartWrite(&in_flight_);
  } else if (closing_.has_value()) {
    finished_ = true;
    reactor_->Finish(*closing_);
  }
}

}  // namespace

grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>* StartLeaseReactor(LeaseDispatcher* dispatcher,
                                                                                    size_t max_queued) {
  return new LeaseReactor(dispatcher, max_queued);
}

}  // namespace dsm
