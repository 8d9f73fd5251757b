#include "services/adapters/adapter_subscriber.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/adapters/adapter_chunk_wire.h"
#include "services/adapters/malloc_tuning.h"

namespace dsm {
namespace {

// Learner.WatchAdapters called generically: the request serialised by hand,
// the chunks read as they came off the wire. Blocking, on the calling thread;
// one operation in flight at a time.
class RawServerStream {
 public:
  RawServerStream(grpc::GenericStub* stub, grpc::ClientContext* context, const v1::WatchAdaptersRequest& request)
      : call_(stub->PrepareCall(context, absl::StrCat("/", v1::Learner::service_full_name(), "/WatchAdapters"),
                                &cq_)) {
    if (call_ == nullptr) return;
    call_->StartCall(nullptr);
    if (!Await()) return;
    grpc::ByteBuffer buffer;
    bool own = false;
    if (!grpc::SerializationTraits<v1::WatchAdaptersRequest>::Serialize(request, &buffer, &own).ok()) return;
    call_->WriteLast(buffer, grpc::WriteOptions(), nullptr);
    open_ = Await();
  }

  ~RawServerStream() {
    cq_.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // The next message; false when the stream has ended (then call Finish()).
  bool Read(grpc::ByteBuffer* message) {
    if (!open_) return false;
    call_->Read(message, nullptr);
    open_ = Await();
    return open_;
  }

  grpc::Status Finish() {
    if (call_ == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "WatchAdapters: the call was not created");
    grpc::Status status;
    call_->Finish(&status, nullptr);
    Await();
    return status;
  }

 private:
  bool Await() {
    void* tag = nullptr;
    bool ok = false;
    return cq_.Next(&tag, &ok) && ok;
  }

  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool open_ = false;
};

// Parses one received chunk in place and feeds it to `assembler`; `slices`
// and `pieces` are scratch space kept across calls.
absl::StatusOr<std::optional<AdapterVersionData>> AddChunk(const grpc::ByteBuffer& message,
                                                           std::vector<grpc::Slice>* slices,
                                                           std::vector<absl::string_view>* pieces,
                                                           AdapterAssembler* assembler) {
  if (const grpc::Status dumped = message.Dump(slices); !dumped.ok()) {
    return absl::InternalError(absl::StrCat("reading a received chunk: ", dumped.error_message()));
  }
  pieces->clear();
  for (const grpc::Slice& slice : *slices) {
    pieces->emplace_back(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  absl::StatusOr<AdapterChunkView> chunk = ParseAdapterChunk(*pieces);
  if (!chunk.ok()) return chunk.status();
  return assembler->Add(chunk->fields, chunk->data);
}

}  // namespace

AdapterSubscriber::AdapterSubscriber(AdapterSubscriberOptions options, OnVersion on_version)
    : options_(std::move(options)), on_version_(std::move(on_version)) {
  channel_ = MakeChannel(options_.learner_address, options_.channel);
  stub_ = std::make_unique<grpc::GenericStub>(channel_);
}

AdapterSubscriber::~AdapterSubscriber() { Stop(); }

void AdapterSubscriber::Start() {
  RetainMemoryForAdapterStreaming();
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void AdapterSubscriber::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

std::map<v1::AdapterRole, uint64_t> AdapterSubscriber::held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

void AdapterSubscriber::Run() {
  absl::Duration backoff = options_.initial_backoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (StreamOnce()) backoff = options_.initial_backoff;
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool AdapterSubscriber::StreamOnce() {
  grpc::ClientContext context;
  // No deadline on the stream itself (it lives as long as the run); keep-alive
  // pings on the channel detect a dead learner.
  v1::WatchAdaptersRequest request;
  request.set_subscriber_id(options_.subscriber_id);
  for (v1::AdapterRole role : options_.roles) request.add_roles(role);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    for (const auto& [role, version] : held_) {
      v1::AdapterVersion* held = request.add_held();
      held->set_role(role);
      held->set_version(version);
    }
    context_ = &context;
  }
  ++connects_;
  RawServerStream stream(stub_.get(), &context, request);
  AdapterAssembler assembler;
  grpc::ByteBuffer message;
  std::vector<grpc::Slice> slices;
  std::vector<absl::string_view> pieces;
  bool delivered = false;
  while (stream.Read(&message)) {
    absl::StatusOr<std::optional<AdapterVersionData>> result = AddChunk(message, &slices, &pieces, &assembler);
    if (!result.ok()) {
      // Drop the stream and ask again: the learner re-sends the newest version.
      ++rejected_;
      spdlog::warn("adapter stream from {}: {}; re-requesting", options_.learner_address,
                   std::string(result.status().message()));
      context.TryCancel();
      break;
    }
    if (!result->has_value()) continue;
    AdapterVersionData data = std::move(**result);
    {
      absl::MutexLock lock(&mu_);
      uint64_t& held = held_[data.role];
      if (data.version <= held) continue;  // never go backwards
      held = data.version;
    }
    delivered = true;
    on_version_(std::move(data));
  }
  const grpc::Status status = stream.Finish();
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    spdlog::info("adapter stream from {} ended: {}", options_.learner_address, status.error_message());
  }
  return delivered;
}

}  // namespace dsm
