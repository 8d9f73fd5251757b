#include "services/runner/run_event_follower.h"

#include <algorithm>
#include <utility>

#include "common/grpc_client.h"
#include "common/run_states.h"

namespace dsm {

RunEventFollower::RunEventFollower(v1::Coordinator::StubInterface* coordinator, std::string run_name,
                                   uint64_t from_sequence, RunEventFollowerOptions options)
    : coordinator_(coordinator),
      run_name_(std::move(run_name)),
      options_(options),
      next_sequence_(std::max<uint64_t>(from_sequence, 1)) {
  thread_ = std::thread([this] { Loop(); });
}

RunEventFollower::~RunEventFollower() { Stop(); }

void RunEventFollower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (open_ != nullptr) open_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

std::vector<v1::RunEvent> RunEventFollower::Drain() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::RunEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

bool RunEventFollower::WaitForEnd(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ended), timeout);
  return ended_;
}

uint64_t RunEventFollower::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void RunEventFollower::Loop() {
  while (true) {
    grpc::ClientContext context;
    SetDeadline(&context, options_.stream_deadline);
    v1::WatchRunRequest request;
    request.set_name(run_name_);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || ended_) return;
      request.set_from_sequence(next_sequence_);
      open_ = &context;
    }
    std::unique_ptr<grpc::ClientReaderInterface<v1::RunEvent>> reader = coordinator_->WatchRun(&context, request);
    v1::RunEvent event;
    bool ended = false;
    while (!ended && reader->Read(&event)) {
      absl::MutexLock lock(&mu_);
      if (event.sequence() < next_sequence_) continue;  // already seen (cannot happen with a correct server)
      next_sequence_ = event.sequence() + 1;
      ended = IsRunEndEvent(event);
      if (events_.size() >= options_.max_buffered) {
        events_.pop_front();
        ++dropped_;
      }
      events_.push_back(std::move(event));
    }
    const grpc::Status status = reader->Finish();
    absl::MutexLock lock(&mu_);
    open_ = nullptr;
    if (ended) {
      ended_ = true;
      return;
    }
    // A deadline that passed reopens at once; anything else after a pause.
    if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.retry_delay);
    }
  }
}

}  // namespace dsm
