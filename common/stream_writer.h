// StreamWriter<T>: a server-streaming callback reactor fed from any thread.
// Push() queues a message, Close() ends the call after the queued messages
// are written; one write is in flight at a time and no thread blocks. The
// reactor deletes itself when the call is done; Push/Close after that (or
// after the client cancelled) are ignored, so producers need not track the
// call's lifetime — they hold a Handle.
#ifndef DSM_COMMON_STREAM_WRITER_H_
#define DSM_COMMON_STREAM_WRITER_H_

#include <deque>
#include <functional>
#include <memory>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"

namespace dsm {

template <typename T>
class StreamWriter final : public grpc::ServerWriteReactor<T> {
 public:
  // What producers keep: safe to use after the reactor is gone.
  class Handle {
   public:
    // False once the call has ended (the client went away or Close() ran).
    bool Push(T message) { return state_->Push(std::move(message)); }
    void Close(grpc::Status status) { state_->Close(std::move(status)); }
    bool cancelled() const { return state_->cancelled(); }

   private:
    friend class StreamWriter;
    explicit Handle(std::shared_ptr<typename StreamWriter::State> state) : state_(std::move(state)) {}
    std::shared_ptr<typename StreamWriter::State> state_;
  };

  // `on_cancel` (may be empty) runs once if the client cancels.
  static std::pair<StreamWriter*, Handle> Create(std::function<void()> on_cancel = nullptr) {
    auto* writer = new StreamWriter(std::move(on_cancel));
    return {writer, Handle(writer->state_)};
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      state_->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the client stopped reading"));
      return;
    }
    state_->WriteDone();
  }
  void OnCancel() override {
    std::function<void()> on_cancel;
    {
      absl::MutexLock lock(&state_->mu);
      state_->is_cancelled = true;
      on_cancel = std::move(on_cancel_);
    }
    if (on_cancel) on_cancel();
    state_->Close(grpc::Status::CANCELLED);
  }
  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct State {
    absl::Mutex mu;
    StreamWriter* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::deque<T> queue ABSL_GUARDED_BY(mu);
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool closing ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    bool is_cancelled ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
    T in_flight ABSL_GUARDED_BY(mu);

    bool Push(T message) {
      absl::MutexLock lock(&mu);
      if (reactor == nullptr || closing || finished) return false;
      queue.push_back(std::move(message));
      Pump();
      return true;
    }
    void Close(grpc::Status s) {
      absl::MutexLock lock(&mu);
      if (closing || finished) return;
      closing = true;
      status = std::move(s);
      if (is_cancelled) queue.clear();
      Pump();
    }
    void WriteDone() {
      absl::MutexLock lock(&mu);
      writing = false;
      Pump();
    }
    bool cancelled() {
      absl::MutexLock lock(&mu);
      return is_cancelled || finished;
    }
    void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || writing || finished) return;
      if (!queue.empty()) {
        in_flight = std::move(queue.front());
        queue.pop_front();
        writing = true;
        reactor->StartWrite(&in_flight);
      } else if (closing) {
        finished = true;
        reactor->Finish(status);
      }
    }
  };

  explicit StreamWriter(std::function<void()> on_cancel)
      : state_(std::make_shared<State>()), on_cancel_(std::move(on_cancel)) {
    absl::MutexLock lock(&state_->mu);
    state_->reactor = this;
  }

  std::shared_ptr<State> state_;
  std::function<void()> on_cancel_;
};

}  // namespace dsm

#endif  // DSM_COMMON_STREAM_WRITER_H_
