#include "services/adapters/watch_adapters_reactor.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace dsm {
namespace {

class WatchAdaptersReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchAdaptersReactor(std::shared_ptr<AdapterPublisher::Subscription> subscription,
                       std::function<void(const EncodedAdapterVersion&)> on_version_sent, std::string bulk_endpoint)
      : state_(std::make_shared<State>()) {
    state_->reactor = this;
    state_->subscription = std::move(subscription);
    state_->on_version_sent = std::move(on_version_sent);
    state_->bulk_endpoint = std::move(bulk_endpoint);
    std::weak_ptr<State> weak = state_;
    state_->subscription->SetWakeup([weak] {
      if (auto state = weak.lock()) state->Pump();
    });
    state_->Pump();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {  // the client went away
      state_->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream closed by the client"));
      return;
    }
    state_->WriteDone();
    state_->Pump();
  }

  void OnCancel() override { state_->Close(grpc::Status::CANCELLED); }

  void OnDone() override {
    state_->subscription->Cancel();
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    delete this;
  }

 private:
  // Shared with the wake-up callback, which may outlive the reactor.
  struct State {
    absl::Mutex mu;
    WatchAdaptersReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    std::shared_ptr<const EncodedAdapterVersion> current ABSL_GUARDED_BY(mu);
    std::size_t next_chunk ABSL_GUARDED_BY(mu) = 0;
    grpc::ByteBuffer offer ABSL_GUARDED_BY(mu);  // the bulk offer being written
    std::shared_ptr<AdapterPublisher::Subscription> subscription;
    std::function<void(const EncodedAdapterVersion&)> on_version_sent;
    std::string bulk_endpoint;  // empty: versions go in chunks

    // Messages of `current`: its chunks, or its one bulk offer.
    std::size_t Messages() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return bulk_endpoint.empty() ? current->chunks.size() : 1;
    }

    // Starts the next write if none is in flight and there is something to send.
    void Pump() {
      absl::MutexLock lock(&mu);
      if (reactor == nullptr || writing || finished) return;
      if (!current || next_chunk == Messages()) {
        current = subscription->Next();
        next_chunk = 0;
        if (!current) return;
      }
      writing = true;
      if (bulk_endpoint.empty()) {
        reactor->StartWrite(&current->chunks[next_chunk++]);
        return;
      }
      v1::AdapterChunk message = current->bulk_offer;
      message.mutable_bulk()->set_endpoint(bulk_endpoint);
      offer = OwningByteBuffer(message.SerializeAsString());
      ++next_chunk;
      reactor->StartWrite(&offer);
    }

    void WriteDone() {
      std::shared_ptr<const EncodedAdapterVersion> sent;
      {
        absl::MutexLock lock(&mu);
        writing = false;
        if (current && next_chunk == Messages() && bulk_endpoint.empty()) sent = current;
      }
      if (sent && on_version_sent) on_version_sent(*sent);
    }

    void Close(const grpc::Status& status) {
      absl::MutexLock lock(&mu);
      if (finished || reactor == nullptr) return;
      finished = true;
      reactor->Finish(status);
    }
  };

  std::shared_ptr<State> state_;
};

// A stream that fails at once.
class FailedWriteReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<v1::WatchAdaptersRequest> ParseWatchAdaptersRequest(const grpc::ByteBuffer& request) {
  grpc::ByteBuffer copy(request);  // shares the slices; Deserialize consumes its argument
  v1::WatchAdaptersRequest parsed;
  const grpc::Status status = grpc::SerializationTraits<v1::WatchAdaptersRequest>::Deserialize(&copy, &parsed);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("WatchAdaptersRequest does not parse: ", status.error_message()));
  }
  return parsed;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FailWatchAdapters(const grpc::Status& status) {
  return new FailedWriteReactor(status);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* StartWatchAdapters(
    std::shared_ptr<AdapterPublisher::Subscription> subscription,
    std::function<void(const EncodedAdapterVersion&)> on_version_sent, std::string bulk_endpoint) {
  return new WatchAdaptersReactor(std::move(subscription), std::move(on_version_sent), std::move(bulk_endpoint));
}

}  // namespace dsm
