#include "services/worker/lease_client.h"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// `d` when it is set and positive, else `fallback`.
absl::Duration PositiveOr(const google::protobuf::Duration& d, absl::Duration fallback) {
  const absl::Duration value = FromProto(d);
  return value > absl::ZeroDuration() ? value : fallback;
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

}  // namespace

// One stream, from connect to its end. Lives on the stream thread's stack;
// the fields below `stream` are guarded by LeaseClient::mu_.
struct LeaseClient::Session {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>> stream;
  std::deque<v1::WorkerMessage> outbox;  // written in order by the writer thread
  bool welcomed = false;
  bool ended = false;        // the reader is done: the writer exits
  bool draining = false;     // a Drain arrived
  absl::Time drain_deadline = absl::InfiniteFuture();
  bool half_closed = false;  // WritesDone sent after a Drain
  absl::Duration heartbeat_interval;
  absl::Duration lease_ttl;
};

absl::Status LeaseClientOptions::Validate() const {
  if (coordinator_address.empty()) return absl::InvalidArgumentError("coordinator_address: required");
  if (worker_id.empty()) return absl::InvalidArgumentError("worker_id: required");
  if (roles.empty()) return absl::InvalidArgumentError("roles: at least one adapter role is required");
  if (capacity < 1) return absl::InvalidArgumentError(absl::StrCat("capacity: ", capacity, " is below 1"));
  if (initial_backoff <= absl::ZeroDuration() || max_backoff < initial_backoff) {
    return absl::InvalidArgumentError("initial_backoff: must be > 0 and at most max_backoff");
  }
  if (default_heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_heartbeat_interval: must be > 0");
  }
  if (default_lease_ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("default_lease_ttl: must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LeaseClient>> LeaseClient::Create(LeaseClientOptions options,
                                                                 GenerationService* generation,
                                                                 AdapterRegistry* registry, const Sampler* sampler,
                                                                 LeaseScorer* scorer, MetricsRegistry* metrics) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (options.hostname.empty()) options.hostname = HostName();
  return std::unique_ptr<LeaseClient>(
      new LeaseClient(std::move(options), generation, registry, sampler, scorer, metrics));
}

LeaseClient::LeaseClient(LeaseClientOptions options, GenerationService* generation, AdapterRegistry* registry,
                         const Sampler* sampler, LeaseScorer* scorer, MetricsRegistry* metrics)
    : options_(std::move(options)),
      generation_(generation),
      registry_(registry),
      sampler_(sampler),
      runner_(generation, options_.roles, scorer),
      guard_(std::make_shared<Guard>()) {
  {
    absl::MutexLock lock(&guard_->mu);
    guard_->client = this;
  }
  channel_ = MakeChannel(options_.coordinator_address, options_.channel);
  stub_ = v1::Coordinator::NewStub(channel_);
  if (metrics != nullptr) {
    auto leases = metrics->AddCounter("dsm_worker_leases_total",
                                      "Leases this worker finished, by outcome (generated, scored, error, cancelled).",
                                      {"outcome"});
    auto in_flight = metrics->AddGauge("dsm_worker_leases_in_flight", "Leases running on this worker now.");
    auto reconnects = metrics->AddCounter("dsm_worker_lease_stream_reconnects_total",
                                          "Times the worker reopened its Lease stream to the coordinator.");
    if (leases.ok()) {
      metrics_.generated = &(*leases)->WithLabels({"generated"});
      metrics_.scored = &(*leases)->WithLabels({"scored"});
      metrics_.failed = &(*leases)->WithLabels({"error"});
      metrics_.cancelled = &(*leases)->WithLabels({"cancelled"});
    }
    if (in_flight.ok()) metrics_.in_flight = &(*in_flight)->Default();
    if (reconnects.ok()) metrics_.reconnects = &(*reconnects)->Default();
  }
}

LeaseClient::~LeaseClient() {
  Stop();
  absl::MutexLock lock(&guard_->mu);
  guard_->client = nullptr;
}

void LeaseClient::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void LeaseClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (session_ != nullptr) session_->context.TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool LeaseClient::connected() const {
  absl::MutexLock lock(&mu_);
  return session_ != nullptr && session_->welcomed;
}

int LeaseClient::leases_running() const {
  absl::MutexLock lock(&mu_);
  return RunningCount();
}

int LeaseClient::results_unacked() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(unacked_.size());
}

void LeaseClient::Run() {
  absl::Duration backoff = options_.initial_backoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    bool drained = false;
    const bool welcomed = StreamOnce(&drained);
    if (welcomed) backoff = options_.initial_backoff;
    const absl::Duration wait = drained ? options_.max_backoff : backoff;
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), wait)) return;
    }
    if (!welcomed) backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool LeaseClient::StreamOnce(bool* drained) {
  Session session;
  v1::WorkerMessage hello;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    session_ = &session;
    hello = MakeHello();
  }
  if (streams_opened_.fetch_add(1) > 0 && metrics_.reconnects != nullptr) metrics_.reconnects->Increment();
  // No deadline on the stream itself: it lives as long as the worker.
  session.stream = stub_->Lease(&session.context);
  v1::CoordinatorMessage message;
  std::thread writer;
  if (session.stream->Write(hello) && session.stream->Read(&message)) {
    if (message.has_welcome()) {
      const v1::Welcome& welcome = message.welcome();
      absl::MutexLock lock(&mu_);
      session.welcomed = true;
      session.heartbeat_interval = PositiveOr(welcome.heartbeat_interval(), options_.default_heartbeat_interval);
      session.lease_ttl = PositiveOr(welcome.lease_ttl(), options_.default_lease_ttl);
      // Results the previous stream did not see acked go out again.
      for (const auto& [id, result] : unacked_) *session.outbox.emplace_back().mutable_result() = result;
      spdlog::info("lease stream to {}: welcomed by coordinator {} (run \"{}\"), {} result(s) to resend",
                   options_.coordinator_address, welcome.coordinator_id(), welcome.run_name(),
                   session.outbox.size());
    } else {
      spdlog::warn("lease stream to {}: the first message was not a Welcome; reconnecting",
                   options_.coordinator_address);
      session.context.TryCancel();
    }
  }
  if (session.welcomed) {
    writer = std::thread([this, &session] { WriteLoop(&session); });
    const absl::Duration ttl = session.lease_ttl;
    while (session.stream->Read(&message)) {
      switch (message.message_case()) {
        case v1::CoordinatorMessage::kGrant: OnGrant(message.grant(), ttl); break;
        case v1::CoordinatorMessage::kAck: OnAck(message.ack()); break;
        case v1::CoordinatorMessage::kCancel: OnCancel(message.cancel()); break;
        case v1::CoordinatorMessage::kDrain: OnDrain(message.drain()); break;
        default:
          spdlog::warn("lease stream to {}: ignoring an unexpected message (case {})", options_.coordinator_address,
                       static_cast<int>(message.message_case()));
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    session.ended = true;
  }
  if (writer.joinable()) writer.join();
  const grpc::Status status = session.stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    session_ = nullptr;
    *drained = session.half_closed;
    if (!stopping_ && session.welcomed) {
      spdlog::info("lease stream to {} ended ({}: {}){}", options_.coordinator_address,
                   static_cast<int>(status.error_code()), status.error_message(),
                   *drained ? " after a drain" : "; reconnecting");
    } else if (!stopping_) {
      spdlog::debug("lease stream to {}: no session ({}: {}); retrying", options_.coordinator_address,
                    static_cast<int>(status.error_code()), status.error_message());
    }
  }
  return session.welcomed;
}

void LeaseClient::WriteLoop(Session* session) {
  absl::Time next_heartbeat = absl::Now() + session->heartbeat_interval;
  absl::Time close_deadline = absl::InfiniteFuture();
  absl::MutexLock lock(&mu_);
  auto ready = [this, session]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stopping_ || session->ended) return true;
    if (session->half_closed) return false;
    return !session->outbox.empty() || (session->draining && DrainFinished(*session));
  };
  for (;;) {
    mu_.AwaitWithDeadline(absl::Condition(&ready),
                          session->half_closed ? close_deadline : std::min(next_heartbeat, session->drain_deadline));
    if (stopping_ || session->ended) return;
    const absl::Time now = absl::Now();
    if (session->half_closed) {
      if (now >= close_deadline) {
        spdlog::warn("lease stream to {}: the coordinator did not end the drained stream; cancelling it",
                     options_.coordinator_address);
        session->context.TryCancel();
        return;
      }
      continue;
    }
    if (session->outbox.empty() && session->draining && (DrainFinished(*session) || now >= session->drain_deadline)) {
      session->half_closed = true;
      close_deadline = now + options_.close_timeout;
      spdlog::info("lease stream to {}: drained ({} lease(s) running, {} result(s) unacked); closing",
                   options_.coordinator_address, RunningCount(), unacked_.size());
      mu_.Unlock();
      session->stream->WritesDone();
      mu_.Lock();
      continue;
    }
    if (now >= next_heartbeat) {
      session->outbox.push_back(MakeHeartbeat(now));
      next_heartbeat = now + session->heartbeat_interval;
    }
    if (session->outbox.empty()) continue;
    v1::WorkerMessage message = std::move(session->outbox.front());
    session->outbox.pop_front();
    mu_.Unlock();
    const bool written = session->stream->Write(message);
    mu_.Lock();
    if (!written) return;  // the stream is broken; the reader sees it end
  }
}

void LeaseClient::OnGrant(const v1::LeaseGrant& grant, absl::Duration lease_ttl) {
  const std::string& id = grant.lease_id();
  if (id.empty()) {
    spdlog::warn("lease stream to {}: ignoring a grant without lease_id", options_.coordinator_address);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (running_.count(id) > 0) return;  // granted twice: already running
    if (auto it = unacked_.find(id); it != unacked_.end()) {
      if (session_ != nullptr) *session_->outbox.emplace_back().mutable_result() = it->second;
      return;
    }
    absl::Status refused;
    if (session_ != nullptr && session_->draining) {
      refused = absl::UnavailableError("lease: this worker is draining");
    } else if (RunningCount() >= options_.capacity) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("capacity: ", RunningCount(), " leases already running, capacity ", options_.capacity));
    }
    if (!refused.ok()) {
      Count(metrics_.failed);
      QueueResult(LeaseWorkRunner::ErrorResult(id, refused));
      return;
    }
    running_[id] = RunningLease{};
    UpdateInFlight();
  }
  const absl::Time now = absl::Now();
  const absl::Time expires = grant.has_expires_at() ? FromProto(grant.expires_at()) : now;
  const absl::Time deadline = std::max(expires, now) + lease_ttl;
  std::shared_ptr<Guard> guard = guard_;
  runner_.Run(grant, deadline, [guard, id](v1::LeaseResult result) {
    absl::MutexLock lock(&guard->mu);
    if (guard->client != nullptr) guard->client->OnLeaseDone(id, std::move(result));
  });
}

void LeaseClient::OnLeaseDone(const std::string& lease_id, v1::LeaseResult result) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(lease_id);
  if (it == running_.end()) return;
  const bool cancelled = it->second.cancelled;
  running_.erase(it);
  UpdateInFlight();
  if (cancelled) {
    Count(metrics_.cancelled);
    return;
  }
  Count(result.has_generated() ? metrics_.generated : result.has_scored() ? metrics_.scored : metrics_.failed);
  if (result.has_error()) {
    spdlog::warn("lease {} failed: {} (code {}, {})", lease_id, result.error().message(), result.error().code(),
                 result.error().retryable() ? "retryable" : "not retryable");
  }
  QueueResult(std::move(result));
}

void LeaseClient::QueueResult(v1::LeaseResult result) {
  const std::string id = result.lease_id();
  if (session_ != nullptr && session_->welcomed && !session_->half_closed) {
    *session_->outbox.emplace_back().mutable_result() = result;
  }
  unacked_[id] = std::move(result);
}

void LeaseClient::OnAck(const v1::ResultAck& ack) {
  absl::MutexLock lock(&mu_);
  // Every status ends this worker's responsibility for the lease.
  unacked_.erase(ack.lease_id());
  if (ack.status() != v1::LEASE_RESULT_STATUS_ACCEPTED && ack.status() != v1::LEASE_RESULT_STATUS_DUPLICATE) {
    spdlog::info("lease {}: result {} {}", ack.lease_id(), v1::LeaseResultStatus_Name(ack.status()), ack.message());
  }
}

void LeaseClient::OnCancel(const v1::Cancel& cancel) {
  absl::MutexLock lock(&mu_);
  const std::string& id = cancel.lease_id();
  if (auto it = running_.find(id); it != running_.end() && !it->second.cancelled) {
    it->second.cancelled = true;
    UpdateInFlight();
  }
  unacked_.erase(id);
  if (session_ != nullptr) {
    auto& outbox = session_->outbox;
    auto for_lease = [&id](const v1::WorkerMessage& m) { return m.has_result() && m.result().lease_id() == id; };
    outbox.erase(std::remove_if(outbox.begin(), outbox.end(), for_lease), outbox.end());
  }
  spdlog::info("lease {} cancelled by the coordinator: {}", id, cancel.reason());
}

void LeaseClient::OnDrain(const v1::Drain& drain) {
  absl::MutexLock lock(&mu_);
  if (session_ == nullptr || session_->draining) return;
  session_->draining = true;
  const absl::Duration grace = PositiveOr(drain.grace(), session_->lease_ttl);
  session_->drain_deadline = absl::Now() + grace;
  spdlog::info("lease stream to {}: drain ({}), {} lease(s) to finish within {}", options_.coordinator_address,
               drain.reason(), RunningCount(), absl::FormatDuration(grace));
}

std::vector<std::string> LeaseClient::ActiveLeaseIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, lease] : running_) {
    if (!lease.cancelled) ids.push_back(id);
  }
  // A lease whose result is not acked yet is still this worker's: keep it
  // renewed so that it does not expire while the result is in transit.
  for (const auto& [id, result] : unacked_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

int LeaseClient::RunningCount() const {
  int count = 0;
  for (const auto& [id, lease] : running_) count += lease.cancelled ? 0 : 1;
  return count;
}

std::vector<v1::AdapterVersion> LeaseClient::AdapterVersions() const {
  std::vector<v1::AdapterVersion> out;
  for (const auto& [role, version] : registry_->versions()) {
    v1::AdapterVersion& v = out.emplace_back();
    v.set_role(role);
    v.set_version(version);
  }
  return out;
}

v1::WorkerMessage LeaseClient::MakeHello() {
  v1::WorkerMessage message;
  v1::Hello* hello = message.mutable_hello();
  hello->set_worker_id(options_.worker_id);
  hello->set_hostname(options_.hostname);
  for (v1::AdapterRole role : options_.roles) hello->add_roles(role);
  hello->set_capacity(static_cast<uint32_t>(options_.capacity));
  for (v1::AdapterVersion& v : AdapterVersions()) *hello->add_adapter_versions() = std::move(v);
  for (std::string& id : ActiveLeaseIds()) hello->add_active_lease_ids(std::move(id));
  *hello->mutable_limits() = options_.limits;
  *hello->mutable_model() = options_.model;
  hello->set_dsm_version(DSM_VERSION);
  return message;
}

v1::WorkerMessage LeaseClient::MakeHeartbeat(absl::Time now) {
  v1::WorkerMessage message;
  v1::Heartbeat* heartbeat = message.mutable_heartbeat();
  for (std::string& id : ActiveLeaseIds()) heartbeat->add_active_lease_ids(std::move(id));
  for (v1::AdapterVersion& v : AdapterVersions()) *heartbeat->add_adapter_versions() = std::move(v);
  if (sampler_ != nullptr) {
    heartbeat->set_sequences_in_flight(static_cast<uint32_t>(sampler_->queued() + sampler_->running()));
  }
  const int64_t tokens = generation_->generated_tokens();
  if (last_tokens_time_ != absl::InfinitePast() && now > last_tokens_time_) {
    heartbeat->set_tokens_per_second(static_cast<double>(tokens - last_tokens_) /
                                     absl::ToDoubleSeconds(now - last_tokens_time_));
  }
  last_tokens_ = tokens;
  last_tokens_time_ = now;
  return message;
}

bool LeaseClient::DrainFinished(const Session& session) const {
  return session.draining && RunningCount() == 0 && unacked_.empty();
}

void LeaseClient::UpdateInFlight() {
  if (metrics_.in_flight != nullptr) metrics_.in_flight->Set(RunningCount());
}

}  // namespace dsm
