#include "services/adapters/adapter_subscriber.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/adapters/adapter_chunk_wire.h"

namespace dsm {
namespace {

// What the stream brings: a whole version received in chunks, or a version
// offered for bulk transfer (an AdapterChunk with `bulk` set).
struct StreamItem {
  std::optional<AdapterVersionData> version;
  std::optional<v1::AdapterChunk> offer;
};

// Parses one received message in place and feeds it to `assembler` (or, a
// bulk offer, returns it); `slices` and `pieces` are scratch space kept
// across calls. Nullopt while a version needs more chunks.
absl::StatusOr<std::optional<StreamItem>> AddMessage(const grpc::ByteBuffer& message,
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
  if (chunk->fields.has_bulk()) {
    if (assembler->in_version()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bulk offer of version ", chunk->fields.version(), " inside a version sent in chunks"));
    }
    return std::optional<StreamItem>(StreamItem{std::nullopt, std::move(chunk->fields)});
  }
  absl::StatusOr<std::optional<AdapterVersionData>> version = assembler->Add(chunk->fields, chunk->data);
  if (!version.ok()) return version.status();
  if (!version->has_value()) return std::optional<StreamItem>();
  return std::optional<StreamItem>(StreamItem{std::move(*version), std::nullopt});
}

// Learner.WatchAdapters called generically with the callback API: the
// request is serialised here, and each chunk is parsed and assembled on the
// gRPC thread that received it (no hand-off per message). A whole version
// waits for the subscriber's thread to take it before the next read starts,
// so a slow callback holds the stream back (HTTP/2 flow control) instead of
// queueing versions.
class WatchAdaptersCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  WatchAdaptersCall(grpc::GenericStub* stub, grpc::ClientContext* context, const v1::WatchAdaptersRequest& request)
      : context_(context) {
    grpc::Slice serialized(request.SerializeAsString());
    request_ = grpc::ByteBuffer(&serialized, 1);
    stub->PrepareBidiStreamingCall(context, absl::StrCat("/", v1::Learner::service_full_name(), "/WatchAdapters"),
                                   grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&message_);
    AddHold();  // reads are also started from Next(), outside the reactions: released when reading ends
    StartCall();
  }

  // Blocks until the next whole version or bulk offer (then the stream reads
  // on) or the end of the stream (nullopt; see Finish()). A chunk the
  // assembler rejects cancels the call.
  std::optional<StreamItem> Next() {
    std::optional<StreamItem> next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return item_.has_value() || done_; };
      mu_.Await(absl::Condition(&ready));
      if (!item_) return std::nullopt;
      next = std::move(item_);
      item_.reset();
    }
    StartRead(&message_);
    return next;
  }

  // After Next() returned nullopt: how the call ended, and in `rejected` the
  // chunk error that ended it, if any.
  grpc::Status Finish(absl::Status* rejected) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    *rejected = rejected_;
    return status_;
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the stream is over; OnDone follows
      RemoveHold();
      return;
    }
    absl::StatusOr<std::optional<StreamItem>> result = AddMessage(message_, &slices_, &pieces_, &assembler_);
    if (!result.ok()) {
      {
        absl::MutexLock lock(&mu_);
        rejected_ = result.status();
      }
      context_->TryCancel();
      RemoveHold();  // no more reads
      return;
    }
    if (!result->has_value()) {
      StartRead(&message_);
      return;
    }
    absl::MutexLock lock(&mu_);
    item_ = std::move(*result);  // Next() starts the next read
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

 private:
  grpc::ClientContext* const context_;
  grpc::ByteBuffer request_;
  // Used by the reading callbacks only (one at a time).
  grpc::ByteBuffer message_;
  std::vector<grpc::Slice> slices_;
  std::vector<absl::string_view> pieces_;
  AdapterAssembler assembler_;
  absl::Mutex mu_;
  std::optional<StreamItem> item_ ABSL_GUARDED_BY(mu_);
  absl::Status rejected_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

AdapterSubscriber::AdapterSubscriber(AdapterSubscriberOptions options, OnVersion on_version)
    : options_(std::move(options)), on_version_(std::move(on_version)), bulk_(options_.bulk) {
  channel_ = MakeChannel(options_.learner_address, options_.channel);
  stub_ = std::make_unique<grpc::GenericStub>(channel_);
}

AdapterSubscriber::~AdapterSubscriber() { Stop(); }

void AdapterSubscriber::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void AdapterSubscriber::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
    if (fallback_context_ != nullptr) fallback_context_->TryCancel();
  }
  bulk_.Interrupt();
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

v1::WatchAdaptersRequest AdapterSubscriber::Request(bool accept_bulk, std::optional<v1::AdapterRole> only) {
  v1::WatchAdaptersRequest request;
  request.set_subscriber_id(options_.subscriber_id);
  request.set_accept_bulk(accept_bulk);
  if (only.has_value()) {
    request.add_roles(*only);
  } else {
    for (v1::AdapterRole role : options_.roles) request.add_roles(role);
  }
  for (const auto& [role, version] : held_) {
    if (only.has_value() && role != *only) continue;
    v1::AdapterVersion* held = request.add_held();
    held->set_role(role);
    held->set_version(version);
  }
  return request;
}

bool AdapterSubscriber::Deliver(AdapterVersionData data) {
  {
    absl::MutexLock lock(&mu_);
    uint64_t& held = held_[data.role];
    if (data.version <= held) return false;  // never go backwards
    held = data.version;
  }
  on_version_(std::move(data));
  return true;
}

std::optional<AdapterVersionData> AdapterSubscriber::FetchInBand(v1::AdapterRole role) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.bulk.transfer_timeout);
  v1::WatchAdaptersRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return std::nullopt;
    request = Request(/*accept_bulk=*/false, role);
    fallback_context_ = &context;
  }
  WatchAdaptersCall call(stub_.get(), &context, request);
  std::optional<StreamItem> item = call.Next();
  context.TryCancel();  // one version is all this call is for
  while (call.Next().has_value()) {
  }
  absl::Status rejected;
  const grpc::Status status = call.Finish(&rejected);
  {
    absl::MutexLock lock(&mu_);
    fallback_context_ = nullptr;
  }
  if (!item.has_value() || !item->version.has_value()) {
    spdlog::warn("adapter stream from {}: fetching {} in chunks failed: {}", options_.learner_address,
                 v1::AdapterRole_Name(role), !rejected.ok() ? std::string(rejected.message()) : status.error_message());
    return std::nullopt;
  }
  return std::move(item->version);
}

bool AdapterSubscriber::StreamOnce() {
  grpc::ClientContext context;
  // No deadline on the stream itself (it lives as long as the run); keep-alive
  // pings on the channel detect a dead learner.
  v1::WatchAdaptersRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    request = Request(options_.accept_bulk && !options_.channel.security.tls, std::nullopt);
    context_ = &context;
  }
  ++connects_;
  WatchAdaptersCall stream(stub_.get(), &context, request);
  bool delivered = false;
  absl::Status bulk_rejected;
  bool dropping = false;  // the stream was cancelled: what it still brings is ignored
  while (std::optional<StreamItem> item = stream.Next()) {
    if (dropping) continue;
    if (item->version.has_value()) {
      ++in_band_versions_;
      delivered = Deliver(std::move(*item->version)) || delivered;
      continue;
    }
    const v1::AdapterChunk& offer = *item->offer;
    {
      absl::MutexLock lock(&mu_);
      if (offer.version() <= held_[offer.role()]) continue;
    }
    absl::StatusOr<AdapterVersionData> fetched = bulk_.Fetch(offer);
    if (fetched.ok()) {
      ++bulk_versions_;
      delivered = Deliver(std::move(*fetched)) || delivered;
      continue;
    }
    if (absl::IsDataLoss(fetched.status())) {  // as a corrupt chunk: drop the stream, ask again
      bulk_rejected = fetched.status();
      dropping = true;
      context.TryCancel();
      continue;  // Next() ends the stream
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) continue;
    }
    spdlog::warn("adapter stream from {}: bulk transfer of {} v{} failed ({}); fetching it in chunks",
                 options_.learner_address, v1::AdapterRole_Name(offer.role()), offer.version(),
                 std::string(fetched.status().message()));
    ++bulk_fallbacks_;
    std::optional<AdapterVersionData> in_band = FetchInBand(offer.role());
    if (!in_band.has_value()) {
      dropping = true;
      context.TryCancel();  // reconnect from the start
      continue;
    }
    ++in_band_versions_;
    delivered = Deliver(std::move(*in_band)) || delivered;
  }
  absl::Status rejected;
  const grpc::Status status = stream.Finish(&rejected);
  if (rejected.ok()) rejected = bulk_rejected;
  if (!rejected.ok()) {
    // The stream was dropped to ask again: the learner re-sends the newest version.
    ++rejected_;
    spdlog::warn("adapter stream from {}: {}; re-requesting", options_.learner_address,
                 std::string(rejected.message()));
  }
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
