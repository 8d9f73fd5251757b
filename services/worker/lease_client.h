// LeaseClient: a rollout worker's side of Coordinator.Lease. It keeps one
// bidirectional stream open to the coordinator (the worker needs no inbound
// connection), says Hello, heartbeats every Welcome.heartbeat_interval (which
// renews its leases), runs each LeaseGrant through a LeaseWorkRunner and
// streams the LeaseResults back, keeping every result until the coordinator
// acks it (any ResultAck status ends the worker's responsibility).
//
//  - Bounded: at most `capacity` leases run at once; a grant beyond that is
//    answered with a retryable RESOURCE_EXHAUSTED error.
//  - Cancel: the lease is no longer listed as active and its result is
//    dropped (the sampler may still finish its sequences).
//  - Drain: new grants are answered with a retryable UNAVAILABLE; the stream
//    is half-closed once every lease in hand has finished and its result has
//    been acked (or Drain.grace has passed; unacked results are kept).
//  - A broken stream (coordinator restarted, network) is reopened by itself
//    with exponential back-off (initial_backoff doubling up to max_backoff);
//    the new Hello lists the leases still in progress and those whose result
//    is unacked, and unacked results are resent after the Welcome (safe:
//    idempotent by lease_id). After a drained stream the worker waits
//    max_backoff before connecting again.
//
// Why a sync stream on threads of its own rather than a callback reactor:
// there is one stream per process and it lives for the process' life, so two
// threads cost nothing; a blocking Read() loop plus a writer thread that owns
// every Write() (one writer per stream) makes the reconnect loop a plain loop,
// as in AdapterSubscriber. Nothing else ever blocks on the stream: lease
// results arrive on the sampler's (or scorer's) thread and are only queued.
//
// Deadlines: the stream itself has none (it lives as long as the worker;
// channel keep-alive detects a dead coordinator). A lease's work gets the
// deadline max(expires_at, now) + lease_ttl on this worker's clock: leases
// are renewed by every heartbeat while they run, so expires_at is only a
// lower bound; the extra ttl keeps a waiting lease (min_adapter_version) from
// failing early on a slightly skewed clock. The coordinator regrants an
// expired lease anyway, and a late result is still acked.
//
// Thread-safe. Start()/Stop() from the owner; everything else runs on the
// client's threads. The GenerationService, registry, sampler and scorer must
// outlive the client; results of leases still running at destruction are
// dropped safely.
#ifndef DSM_SERVICES_WORKER_LEASE_CLIENT_H_
#define DSM_SERVICES_WORKER_LEASE_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_client.h"
#include "common/metrics_registry.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "model/sampler.h"
#include "services/adapters/adapter_registry.h"
#include "services/worker/generation_service.h"
#include "services/worker/lease_scorer.h"
#include "services/worker/lease_work_runner.h"

namespace dsm {

struct LeaseClientOptions {
  std::string coordinator_address;       // host:port. Required.
  // Stable across restarts of the same worker (Hello.worker_id). Required.
  std::string worker_id;
  std::string hostname;                  // "" = gethostname()
  std::vector<v1::AdapterRole> roles;    // Hello.roles; at least one
  int capacity = 4;                      // leases run at once, >= 1
  v1::ServerLimits limits;               // Hello.limits
  v1::ModelInfo model;                   // Hello.model
  ChannelOptions channel;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(3);
  // Used when Welcome leaves heartbeat_interval / lease_ttl unset.
  absl::Duration default_heartbeat_interval = absl::Seconds(5);
  absl::Duration default_lease_ttl = absl::Seconds(60);
  // After half-closing a drained stream, how long to wait for the
  // coordinator to end it before cancelling it.
  absl::Duration close_timeout = absl::Seconds(5);

  // InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

class LeaseClient {
 public:
  // `generation` and `registry` are required; `sampler` (for
  // Heartbeat.sequences_in_flight), `scorer` and `metrics` may be null.
  static absl::StatusOr<std::unique_ptr<LeaseClient>> Create(LeaseClientOptions options,
                                                             GenerationService* generation,
                                                             AdapterRegistry* registry, const Sampler* sampler,
                                                             LeaseScorer* scorer, MetricsRegistry* metrics);
  ~LeaseClient();  // Stop()

  // Starts the stream thread (connects in the background).
  void Start();
  // Closes the stream and joins the threads. Leases still running finish in
  // the sampler; their results are dropped.
  void Stop();

  // ScoreWork from now on goes to `scorer` (null = none).
  void SetScorer(LeaseScorer* scorer) { runner_.SetScorer(scorer); }

  // For tests and status.
  int64_t streams_opened() const { return streams_opened_.load(); }
  bool connected() const;   // a Welcome was received on the current stream
  int leases_running() const;  // not cancelled, result not produced yet
  int results_unacked() const;

 private:
  struct Session;
  // Lets lease callbacks reach the client only while it is alive.
  struct Guard {
    absl::Mutex mu;
    LeaseClient* client ABSL_GUARDED_BY(mu) = nullptr;
  };
  struct RunningLease {
    bool cancelled = false;
  };
  // dsm_worker_leases_total{outcome}, looked up once; null without a registry.
  struct Metrics {
    Counter* generated = nullptr;
    Counter* scored = nullptr;
    Counter* failed = nullptr;     // outcome="error"
    Counter* cancelled = nullptr;
    Gauge* in_flight = nullptr;
    Counter* reconnects = nullptr;
  };

  LeaseClient(LeaseClientOptions options, GenerationService* generation, AdapterRegistry* registry,
              const Sampler* sampler, LeaseScorer* scorer, MetricsRegistry* metrics);

  void Run();
  // One stream from connect to its end. Returns true if a Welcome arrived.
  bool StreamOnce(bool* drained);
  void WriteLoop(Session* session);
  void OnGrant(const v1::LeaseGrant& grant, absl::Duration lease_ttl);
  void OnAck(const v1::ResultAck& ack);
  void OnCancel(const v1::Cancel& cancel);
  void OnDrain(const v1::Drain& drain);
  void OnLeaseDone(const std::string& lease_id, v1::LeaseResult result);
  // Records `result` as unacked and queues it on the current stream.
  void QueueResult(v1::LeaseResult result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> ActiveLeaseIds() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int RunningCount() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<v1::AdapterVersion> AdapterVersions() const;
  v1::WorkerMessage MakeHello() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WorkerMessage MakeHeartbeat(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool DrainFinished(const Session& session) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Count(Counter* counter) {
    if (counter != nullptr) counter->Increment();
  }
  void UpdateInFlight() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LeaseClientOptions options_;
  GenerationService* const generation_;
  AdapterRegistry* const registry_;
  const Sampler* const sampler_;
  LeaseWorkRunner runner_;
  Metrics metrics_;
  std::shared_ptr<Guard> guard_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Session* session_ ABSL_GUARDED_BY(mu_) = nullptr;  // the stream now open, if any
  std::map<std::string, RunningLease> running_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::LeaseResult> unacked_ ABSL_GUARDED_BY(mu_);
  // For Heartbeat.tokens_per_second.
  int64_t last_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_tokens_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  std::atomic<int64_t> streams_opened_{0};
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_WORKER_LEASE_CLIENT_H_
