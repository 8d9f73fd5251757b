#include "services/adapters/adapter_subscriber.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace dsm {

AdapterSubscriber::AdapterSubscriber(AdapterSubscriberOptions options, OnVersion on_version)
    : options_(std::move(options)), on_version_(std::move(on_version)) {
  channel_ = MakeChannel(options_.learner_address, options_.channel);
  stub_ = v1::Learner::NewStub(channel_);
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
  std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>> reader = stub_->WatchAdapters(&context, request);
  AdapterAssembler assembler;
  v1::AdapterChunk chunk;
  bool delivered = false;
  while (reader->Read(&chunk)) {
    absl::StatusOr<std::optional<AdapterVersionData>> result = assembler.Add(chunk);
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
  const grpc::Status status = reader->Finish();
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
