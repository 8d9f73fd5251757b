#include "services/coordinator/lease_dispatcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "spdlog/spdlog.h"

namespace dsm {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

bool IsAdapterRole(int role) {
  return role == v1::ADAPTER_ROLE_BASE || role == v1::ADAPTER_ROLE_GENERATOR || role == v1::ADAPTER_ROLE_VERIFIER ||
         role == v1::ADAPTER_ROLE_META_VERIFIER;
}

v1::CoordinatorMessage CancelMessage(const std::string& lease_id, const std::string& reason) {
  v1::CoordinatorMessage m;
  m.mutable_cancel()->set_lease_id(lease_id);
  m.mutable_cancel()->set_reason(reason);
  return m;
}

}  // namespace

absl::Status DispatcherOptions::Validate() const {
  if (lease_ttl < absl::Milliseconds(100) || lease_ttl > absl::Hours(24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_ttl: ", absl::FormatDuration(lease_ttl), " not in [100ms, 24h]"));
  }
  if (heartbeat_interval <= absl::ZeroDuration() || heartbeat_interval >= lease_ttl) {
    return absl::InvalidArgumentError(absl::StrCat("heartbeat_interval: ", absl::FormatDuration(heartbeat_interval),
                                                   " must be > 0 and below lease_ttl ",
                                                   absl::FormatDuration(lease_ttl)));
  }
  if (max_leases_per_worker < 1 || max_leases_per_worker > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_leases_per_worker: ", max_leases_per_worker, " not in [1, 4096]"));
  }
  return absl::OkStatus();
}

LeaseDispatcher::LeaseDispatcher(RunStore* store, DispatcherOptions options, CoordinatorMetrics* metrics)
    : store_(store), options_(std::move(options)), metrics_(metrics) {}

absl::StatusOr<uint64_t> LeaseDispatcher::Connect(const v1::Hello& hello, Send send, Close close) {
  if (hello.worker_id().empty() || hello.worker_id().size() > options_.max_id_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("hello.worker_id: must be 1 to ", options_.max_id_bytes,
                                                   " bytes, got ", hello.worker_id().size()));
  }
  if (hello.roles_size() == 0) return absl::InvalidArgumentError("hello.roles: at least one adapter role is required");
  for (int i = 0; i < hello.roles_size(); ++i) {
    if (!IsAdapterRole(hello.roles(i))) {
      return absl::InvalidArgumentError(absl::StrCat("hello.roles[", i, "]: ", hello.roles(i),
                                                     " is not an adapter role"));
    }
  }
  if (hello.capacity() < 1) return absl::InvalidArgumentError("hello.capacity: must be >= 1");
  const absl::Time now = absl::Now();
  std::vector<std::string> kept(hello.active_lease_ids().begin(), hello.active_lease_ids().end());
  Close replaced_close;
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    // A reconnecting worker keeps the leases it still owns; the rest go.
    auto renewed = store_->queue().Heartbeat(hello.worker_id(), kept, now, options_.lease_ttl);
    if (!renewed.ok()) return renewed.status();
    auto released = store_->queue().ReleaseWorker(hello.worker_id(), now, renewed->renewed);
    if (!released.ok()) return released.status();
    if (metrics_ != nullptr && !released->leases.empty()) {
      metrics_->LeasesReclaimed("released", static_cast<double>(released->leases.size()));
    }
    if (auto it = by_worker_.find(hello.worker_id()); it != by_worker_.end()) {
      replaced_close = std::move(sessions_[it->second].close);
      sessions_.erase(it->second);
    }
    id = next_session_++;
    Session& s = sessions_[id];
    s.id = id;
    s.hello = hello;
    for (int r : hello.roles()) s.roles.push_back(static_cast<v1::AdapterRole>(r));
    s.capacity = std::min(hello.capacity(), options_.max_leases_per_worker);
    s.send = std::move(send);
    s.close = std::move(close);
    s.leases.insert(renewed->renewed.begin(), renewed->renewed.end());
    s.last_heard = now;
    by_worker_[hello.worker_id()] = id;
    // Logged before the worker hears back, so the event precedes anything
    // the worker's work causes.
    AppendWorkerEvent(hello, /*joined=*/true, "");

    v1::CoordinatorMessage welcome;
    *welcome.mutable_welcome()->mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
    *welcome.mutable_welcome()->mutable_lease_ttl() = ToProto(options_.lease_ttl);
    welcome.mutable_welcome()->set_coordinator_id(options_.coordinator_id);
    welcome.mutable_welcome()->set_run_name(options_.run_name);
    s.send(std::move(welcome));
    for (const auto& [lease_id, why] : renewed->rejected) s.send(CancelMessage(lease_id, why));
    DispatchLocked(now);
    if (metrics_ != nullptr) metrics_->SetWorkers(static_cast<double>(sessions_.size()));
  }
  if (replaced_close) replaced_close(absl::AbortedError("replaced by a newer Lease stream of the same worker_id"));
  spdlog::info("coordinator: worker {} joined ({} roles, capacity {}, {} leases kept)", hello.worker_id(),
               hello.roles_size(), hello.capacity(), kept.size());
  return id;
}

absl::Status LeaseDispatcher::OnHeartbeat(uint64_t session, const v1::Heartbeat& heartbeat) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return absl::OkStatus();  // replaced; its stream is closing
  Session& s = it->second;
  s.last_heard = now;
  std::vector<std::string> ids(heartbeat.active_lease_ids().begin(), heartbeat.active_lease_ids().end());
  auto renewed = store_->queue().Heartbeat(s.hello.worker_id(), ids, now, options_.lease_ttl);
  if (!renewed.ok()) return renewed.status();
  for (const auto& [lease_id, why] : renewed->rejected) {
    s.leases.erase(lease_id);
    s.send(CancelMessage(lease_id, why));
  }
  return absl::OkStatus();
}

absl::Status LeaseDispatcher::OnResult(uint64_t session, const v1::LeaseResult& result) {
  if (result.lease_id().empty() || result.lease_id().size() > 4 * options_.max_id_bytes) {
    return absl::InvalidArgumentError("result.lease_id: required, at most 512 bytes");
  }
  if (result.outcome_case() == v1::LeaseResult::OUTCOME_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat("result.outcome: lease ", result.lease_id(), " has neither generated, scored nor error"));
  }
  const absl::Time now = absl::Now();
  bool finished = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return absl::OkStatus();
    Session& s = it->second;
    s.last_heard = now;
    absl::StatusOr<CompletionOutcome> outcome;
    const bool error = result.has_error();
    if (error) {
      LeaseFailure failure;
      failure.code = result.error().code();
      failure.message = result.error().message();
      failure.retryable = result.error().retryable();
      outcome = store_->queue().Fail(result.lease_id(), failure, now);
    } else {
      std::string bytes = result.has_generated() ? result.generated().SerializeAsString()
                                                 : result.scored().SerializeAsString();
      outcome = store_->queue().Complete(result.lease_id(), bytes, now);
    }
    if (!outcome.ok()) return outcome.status();
    s.leases.erase(result.lease_id());
    v1::CoordinatorMessage ack;
    ack.mutable_ack()->set_lease_id(result.lease_id());
    ack.mutable_ack()->set_status(outcome->status);
    ack.mutable_ack()->set_message(outcome->message);
    s.send(std::move(ack));
    if (metrics_ != nullptr) metrics_->Result(outcome->status, error, s.hello.worker_id());
    CancelLocked(outcome->cancelled, "another lease's result for this work was accepted");
    finished = outcome->status == v1::LEASE_RESULT_STATUS_ACCEPTED;
    DispatchLocked(now);
  }
  if (finished) NotifyResults();
  return absl::OkStatus();
}

void LeaseDispatcher::Disconnect(uint64_t session, const std::string& reason) {
  v1::Hello hello;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;  // replaced by a newer session
    const absl::Time now = absl::Now();
    hello = RemoveSessionLocked(it, now, reason);
    DispatchLocked(now);
    if (metrics_ != nullptr) metrics_->SetWorkers(static_cast<double>(sessions_.size()));
  }
  AppendWorkerEvent(hello, /*joined=*/false, reason);
}

v1::Hello LeaseDispatcher::RemoveSessionLocked(std::map<uint64_t, Session>::iterator it, absl::Time now,
                                               const std::string& reason) {
  v1::Hello hello = std::move(it->second.hello);
  by_worker_.erase(hello.worker_id());
  sessions_.erase(it);
  auto released = store_->queue().ReleaseWorker(hello.worker_id(), now);
  if (!released.ok()) {
    spdlog::error("coordinator: releasing the leases of {}: {}", hello.worker_id(),
                  std::string(released.status().message()));
  } else {
    if (metrics_ != nullptr) {
      metrics_->LeasesReclaimed("released", static_cast<double>(released->leases.size()));
      metrics_->WorkFailed(static_cast<double>(released->failed_items.size()));
    }
    spdlog::info("coordinator: worker {} left ({}): {} leases back in the queue", hello.worker_id(), reason,
                 released->requeued);
  }
  return hello;
}

absl::StatusOr<std::vector<int64_t>> LeaseDispatcher::Enqueue(absl::Span<const WorkItemSpec> items) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto ids = store_->queue().Enqueue(items, now);
  if (!ids.ok()) return ids.status();
  DispatchLocked(now);
  return ids;
}

void LeaseDispatcher::Tick() {
  const absl::Time now = absl::Now();
  const std::string silent = absl::StrCat("no message for ", absl::FormatDuration(options_.lease_ttl),
                                          " and a lease expired: the worker is gone");
  bool failed = false;
  std::vector<std::pair<v1::Hello, Close>> gone;
  {
    absl::MutexLock lock(&mu_);
    auto expired = store_->queue().ExpireLeases(now);
    if (!expired.ok()) {
      spdlog::error("coordinator: expiring leases: {}", std::string(expired.status().message()));
    } else if (!expired->leases.empty()) {
      if (metrics_ != nullptr) {
        metrics_->LeasesReclaimed("expired", static_cast<double>(expired->leases.size()));
        metrics_->WorkFailed(static_cast<double>(expired->failed_items.size()));
      }
      CancelLocked(expired->leases, "the lease expired (no heartbeat renewed it)");
      failed = !expired->failed_items.empty();
      // A worker that let a lease expire and has said nothing for a whole
      // lease_ttl is gone, though its stream may look open for minutes yet
      // (a cut link). Left connected, it would be the least loaded worker
      // and get the same work again until the work ran out of attempts.
      for (const LeaseRef& ref : expired->leases) {
        auto id = by_worker_.find(ref.worker_id);
        if (id == by_worker_.end()) continue;
        auto it = sessions_.find(id->second);
        if (it == sessions_.end() || now - it->second.last_heard < options_.lease_ttl) continue;
        Close close = std::move(it->second.close);
        gone.emplace_back(RemoveSessionLocked(it, now, silent), std::move(close));
      }
    }
    DispatchLocked(now);
    RefreshGaugesLocked();
  }
  for (auto& [hello, close] : gone) {
    if (close) close(absl::UnavailableError(silent));
    AppendWorkerEvent(hello, /*joined=*/false, silent);
  }
  if (failed || !gone.empty()) NotifyResults();
}

absl::Status LeaseDispatcher::CancelAll(const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    auto cancelled = store_->queue().CancelAll(absl::Now(), reason);
    if (!cancelled.ok()) return cancelled.status();
    if (metrics_ != nullptr) metrics_->LeasesReclaimed("cancelled", static_cast<double>(cancelled->leases.size()));
    CancelLocked(cancelled->leases, reason);
  }
  NotifyResults();
  return absl::OkStatus();
}

void LeaseDispatcher::DrainAll(const std::string& reason, absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  for (auto& [id, s] : sessions_) {
    v1::CoordinatorMessage m;
    m.mutable_drain()->set_reason(reason);
    *m.mutable_drain()->mutable_grace() = ToProto(grace);
    s.send(std::move(m));
  }
}

void LeaseDispatcher::SetResultListener(std::function<void()> listener) {
  absl::MutexLock lock(&listener_mu_);
  result_listener_ = std::move(listener);
}

uint32_t LeaseDispatcher::workers_connected() const {
  absl::MutexLock lock(&mu_);
  return static_cast<uint32_t>(sessions_.size());
}

void LeaseDispatcher::DispatchLocked(absl::Time now) {
  // Least loaded first, then the one served longest ago: work spreads over
  // the workers, and a worker whose lease just expired is not the first to
  // get it again.
  std::vector<Session*> order;
  for (auto& [id, s] : sessions_) {
    if (s.leases.size() < s.capacity) order.push_back(&s);
  }
  std::sort(order.begin(), order.end(), [](const Session* a, const Session* b) {
    const double la = static_cast<double>(a->leases.size()) / a->capacity;
    const double lb = static_cast<double>(b->leases.size()) / b->capacity;
    return la != lb ? la < lb : a->last_grant < b->last_grant;
  });
  for (Session* session : order) {
    Session& s = *session;
    const auto free = static_cast<uint32_t>(s.capacity - s.leases.size());
    auto grants = store_->queue().Lease(s.hello.worker_id(), free, now, options_.lease_ttl, s.roles);
    if (!grants.ok()) {
      spdlog::error("coordinator: leasing work to {}: {}", s.hello.worker_id(), std::string(grants.status().message()));
      return;
    }
    for (LeaseGrantInfo& g : *grants) {
      v1::CoordinatorMessage m;
      v1::LeaseGrant* grant = m.mutable_grant();
      grant->set_lease_id(g.lease_id);
      *grant->mutable_expires_at() = ToProto(g.expires_at);
      grant->set_attempt(g.attempt);
      const bool parsed = g.kind == WorkKind::kGenerate ? grant->mutable_generate()->ParseFromString(g.payload)
                                                        : grant->mutable_score()->ParseFromString(g.payload);
      if (!parsed) {
        // Cannot happen with payloads this coordinator enqueued; fail the item.
        LeaseFailure failure;
        failure.code = static_cast<int32_t>(absl::StatusCode::kDataLoss);
        failure.message = absl::StrCat("work item ", g.item_id, ": stored payload does not parse");
        (void)store_->queue().Fail(g.lease_id, failure, now);
        continue;
      }
      s.leases.insert(g.lease_id);
      s.last_grant = now;
      s.send(std::move(m));
    }
    if (metrics_ != nullptr) metrics_->LeasesGranted(static_cast<double>(grants->size()));
  }
}

void LeaseDispatcher::CancelLocked(const std::vector<LeaseRef>& leases, const std::string& reason) {
  for (const LeaseRef& ref : leases) {
    Session* s = SessionOf(ref.worker_id);
    if (s == nullptr) continue;
    s->leases.erase(ref.lease_id);
    s->send(CancelMessage(ref.lease_id, reason));
  }
}

LeaseDispatcher::Session* LeaseDispatcher::SessionOf(const std::string& worker_id) {
  auto it = by_worker_.find(worker_id);
  if (it == by_worker_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  return s == sessions_.end() ? nullptr : &s->second;
}

void LeaseDispatcher::RefreshGaugesLocked() {
  if (metrics_ == nullptr) return;
  metrics_->SetWorkers(static_cast<double>(sessions_.size()));
  auto counters = store_->queue().Counters();
  if (counters.ok()) {
    metrics_->SetQueue(static_cast<double>(counters->queued), static_cast<double>(counters->leases_outstanding));
  }
}

void LeaseDispatcher::AppendWorkerEvent(const v1::Hello& hello, bool joined, const std::string& reason) {
  v1::RunEvent event;
  v1::WorkerInfo* info = joined ? event.mutable_worker_joined() : event.mutable_worker_left();
  info->set_worker_id(hello.worker_id());
  info->set_hostname(hello.hostname());
  info->mutable_roles()->CopyFrom(hello.roles());
  info->set_reason(reason);
  // Without a run row there is no event log yet; that is fine.
  (void)store_->AppendEvent(std::move(event), absl::Now());
}

void LeaseDispatcher::NotifyResults() {
  std::function<void()> listener;
  {
    absl::MutexLock lock(&listener_mu_);
    listener = result_listener_;
  }
  if (listener) listener();
}

}  // namespace dsm
