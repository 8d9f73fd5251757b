// Test helper: a scripted coordinator. Each Coordinator.Lease call becomes a
// FakeLeaseStream the test drives: it reads what the worker sent (Next), sends
// CoordinatorMessages (Send) and ends the call (Finish). When the worker
// half-closes, the stream finishes with OK by itself (as a coordinator does
// after a Drain). Register on a GrpcServer bound to port 0.
//
// Thread-safe.
#ifndef DSM_TESTS_INTEGRATION_FAKE_COORDINATOR_H_
#define DSM_TESTS_INTEGRATION_FAKE_COORDINATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "dsm/v1/coordinator.grpc.pb.h"

namespace dsm_test {

class FakeLeaseStream {
 public:
  using Reactor = grpc::ServerBidiReactor<dsm::v1::WorkerMessage, dsm::v1::CoordinatorMessage>;
  using Match = std::function<bool(const dsm::v1::WorkerMessage&)>;

  // Queues a message to the worker (ignored once the call has ended).
  void Send(dsm::v1::CoordinatorMessage message) {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    outbox_.push_back(std::move(message));
    Pump();
  }
  // Ends the call with `status` after the queued messages.
  void Finish(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    Close(std::move(status));
  }
  // Takes the first received message that `match`es (others stay queued),
  // waiting up to `timeout`.
  std::optional<dsm::v1::WorkerMessage> Next(absl::Duration timeout, const Match& match = nullptr) {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
        if (!match || match(*it)) {
          dsm::v1::WorkerMessage message = std::move(*it);
          inbox_.erase(it);
          return message;
        }
      }
      if (client_done_ || done_) return std::nullopt;
      const uint64_t seen = changes_;
      auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return changes_ != seen; };
      if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) return std::nullopt;
    }
  }
  // Everything received so far, in order.
  std::vector<dsm::v1::WorkerMessage> History() const {
    absl::MutexLock lock(&mu_);
    return history_;
  }
  // True once the worker half-closed (or the call ended) within `timeout`.
  bool WaitClientDone(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return client_done_ || done_; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  bool client_done() const {
    absl::MutexLock lock(&mu_);
    return client_done_;
  }

 private:
  friend class FakeCoordinator;
  class LeaseReactor;

  void Close(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closing_) return;
    closing_ = true;
    status_ = std::move(status);
    Pump();
  }
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reactor_ == nullptr || writing_ || finished_) return;
    if (!outbox_.empty() && !cancelled_) {
      in_flight_ = std::move(outbox_.front());
      outbox_.pop_front();
      writing_ = true;
      reactor_->StartWrite(&in_flight_);
    } else if (closing_) {
      finished_ = true;
      reactor_->Finish(status_);
    }
  }

  mutable absl::Mutex mu_;
  Reactor* reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<dsm::v1::WorkerMessage> inbox_ ABSL_GUARDED_BY(mu_);
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every arrival and at the end
  std::vector<dsm::v1::WorkerMessage> history_ ABSL_GUARDED_BY(mu_);
  std::deque<dsm::v1::CoordinatorMessage> outbox_ ABSL_GUARDED_BY(mu_);
  dsm::v1::CoordinatorMessage in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool client_done_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

class FakeLeaseStream::LeaseReactor final : public FakeLeaseStream::Reactor {
 public:
  explicit LeaseReactor(std::shared_ptr<FakeLeaseStream> stream) : stream_(std::move(stream)) {
    absl::MutexLock lock(&stream_->mu_);
    stream_->reactor_ = this;
    StartRead(&in_);
  }
  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&stream_->mu_);
    ++stream_->changes_;
    if (!ok) {
      stream_->client_done_ = true;
      stream_->Close(grpc::Status::OK);
      return;
    }
    stream_->inbox_.push_back(in_);
    stream_->history_.push_back(in_);
    if (!stream_->finished_) StartRead(&in_);
  }
  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&stream_->mu_);
    stream_->writing_ = false;
    if (!ok) {
      stream_->outbox_.clear();
      stream_->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker stopped reading"));
    }
    stream_->Pump();
  }
  void OnCancel() override {
    absl::MutexLock lock(&stream_->mu_);
    stream_->cancelled_ = true;
    stream_->outbox_.clear();
    stream_->Close(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&stream_->mu_);
      stream_->reactor_ = nullptr;
      stream_->done_ = true;
      ++stream_->changes_;
    }
    delete this;
  }

 private:
  std::shared_ptr<FakeLeaseStream> stream_;
  dsm::v1::WorkerMessage in_;
};

class FakeCoordinator final : public dsm::v1::Coordinator::CallbackService {
 public:
  grpc::ServerBidiReactor<dsm::v1::WorkerMessage, dsm::v1::CoordinatorMessage>* Lease(
      grpc::CallbackServerContext*) override {
    auto stream = std::make_shared<FakeLeaseStream>();
    auto* reactor = new FakeLeaseStream::LeaseReactor(stream);
    absl::MutexLock lock(&mu_);
    pending_.push_back(std::move(stream));
    ++streams_;
    return reactor;
  }
  // The next Lease call not yet taken, waiting up to `timeout`; null if none.
  std::shared_ptr<FakeLeaseStream> NextStream(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto any = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !pending_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&any), timeout)) return nullptr;
    std::shared_ptr<FakeLeaseStream> stream = std::move(pending_.front());
    pending_.pop_front();
    return stream;
  }
  int streams() const {
    absl::MutexLock lock(&mu_);
    return streams_;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<FakeLeaseStream>> pending_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_FAKE_COORDINATOR_H_
