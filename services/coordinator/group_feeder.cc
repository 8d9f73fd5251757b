#include "services/coordinator/group_feeder.h"

#include <algorithm>
#include <deque>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_conversion.h"
#include "spdlog/spdlog.h"

namespace dsm {

GroupFeeder::GroupFeeder(RunStore* store, GroupFeederOptions options)
    : store_(store), options_(std::move(options)) {
  stub_ = v1::Learner::NewStub(MakeChannel(options_.learner_target, options_.channel));
  thread_ = std::thread([this] { Run(); });
}

GroupFeeder::~GroupFeeder() { Stop(); }

void GroupFeeder::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void GroupFeeder::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (stream_context_ != nullptr) stream_context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

GroupFeederCounters GroupFeeder::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

void GroupFeeder::Run() {
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    const absl::Time started = absl::Now();
    absl::Status s = Session();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      ++counters_.reconnects;
    }
    spdlog::warn("coordinator: learner stream to {} ended ({}); reconnecting", options_.learner_target,
                 std::string(s.message()));
    if (absl::Now() - started > absl::Seconds(10)) backoff = options_.initial_backoff;
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff);
    if (stopping_) return;
    backoff = std::min(options_.max_backoff, backoff * 2);
  }
}

absl::Status GroupFeeder::Session() {
  // Which accepted groups the learner's checkpoint does not cover yet.
  v1::LearnerState state;
  {
    grpc::ClientContext context;
    SetDeadline(&context, options_.state_deadline);
    grpc::Status s = stub_->GetState(&context, v1::GetStateRequest(), &state);
    if (!s.ok()) return FromGrpcStatus(s);
  }
  std::deque<v1::ScoredGroup> resend;
  {
    auto accepted = store_->GroupsWithStatus(v1::GROUP_STATUS_ACCEPTED, 1 << 30, state.checkpointed_accept_sequence());
    if (!accepted.ok()) return accepted.status();
    for (const GroupRecord& g : *accepted) resend.push_back(RunStore::ToScoredGroup(g));
  }

  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    stream_context_ = &context;
  }
  auto stream = stub_->SubmitGroups(&context);
  // Shared between this thread (sender) and the reader below.
  int64_t credits = 0;
  bool broken = false;
  // Every group sent on this stream: none is sent twice on one stream (the
  // store's PENDING snapshot can lag behind an ack that just arrived); only a
  // new stream re-sends, and only what the learner's checkpoint lacks.
  std::set<std::string> sent;
  std::thread reader([&] {
    v1::SubmitGroupsResponse response;
    while (stream->Read(&response)) {
      if (response.has_ack()) {
        const v1::GroupAck& ack = response.ack();
        // A DUPLICATE of a group the learner already holds keeps its status.
        if (ack.status() != v1::GROUP_STATUS_DUPLICATE) {
          if (absl::Status s = store_->SetGroupStatus(ack.group_id(), ack.status(), ack.accept_sequence()); !s.ok()) {
            spdlog::error("coordinator: storing the ack of {}: {}", ack.group_id(), std::string(s.message()));
          }
        } else if (auto g = store_->GetGroup(ack.group_id()); g.ok() && g->has_value() &&
                                                              (*g)->status == kGroupPending) {
          (void)store_->SetGroupStatus(ack.group_id(), v1::GROUP_STATUS_DUPLICATE, 0);
        }
        if (ack.status() == v1::GROUP_STATUS_REJECTED) {
          spdlog::error("coordinator: learner rejected group {}: {}", ack.group_id(), ack.message());
        }
      }
      absl::MutexLock lock(&mu_);
      if (response.has_ack()) {
        ++counters_.acks;
      }
      credits += response.credits();
    }
    absl::MutexLock lock(&mu_);
    broken = true;
  });

  absl::Status result = absl::OkStatus();
  while (true) {
    // Wait for credit and either something to resend or a wake-up.
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || broken || credits > 0; };
      mu_.Await(absl::Condition(&ready));
      if (stopping_ || broken) break;
    }
    std::optional<v1::ScoredGroup> next;
    bool resent = false;
    if (!resend.empty()) {
      next = std::move(resend.front());
      resend.pop_front();
      resent = true;
    } else {
      auto pending = store_->GroupsWithStatus(kGroupPending, options_.batch);
      if (!pending.ok()) {
        result = pending.status();
        break;
      }
      absl::MutexLock lock(&mu_);
      for (const GroupRecord& g : *pending) {
        if (!sent.count(g.group_id)) {
          next = RunStore::ToScoredGroup(g);
          break;
        }
      }
      if (!next.has_value()) {
        // Nothing to send: wait for a wake-up (or a poll period).
        auto woken = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || broken || woken_; };
        mu_.AwaitWithTimeout(absl::Condition(&woken), absl::Milliseconds(500));
        woken_ = false;
        continue;
      }
    }
    v1::SubmitGroupsRequest request;
    *request.mutable_group() = *std::move(next);
    {
      absl::MutexLock lock(&mu_);
      sent.insert(request.group().group_id());
      --credits;
      ++counters_.sent;
      if (resent) ++counters_.resent;
    }
    if (!stream->Write(request)) break;
  }
  stream->WritesDone();
  context.TryCancel();
  reader.join();
  const grpc::Status finished = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    stream_context_ = nullptr;
  }
  if (!result.ok()) return result;
  return finished.ok() ? absl::UnavailableError("the learner closed the stream") : FromGrpcStatus(finished);
}

}  // namespace dsm
