// LeaseDispatcher: the domain side of Coordinator.Lease, free of gRPC types.
//
// Each connected worker is a session (its Hello, a Send function that queues
// a CoordinatorMessage on its stream, a Close function that ends the
// stream). The dispatcher hands the run's queued work (LeaseQueue) to
// sessions with free capacity (min(Hello.capacity, max_leases_per_worker)
// leases at once, only work whose role the worker hosts), answers each
// LeaseResult with a ResultAck (exactly-once rules: lease_queue.h), sends
// Cancel for leases the worker must drop (a regrant was answered first, a
// reconnecting worker lists a lease it lost, the run was cancelled), and
// takes a departed worker's leases back at once so that other workers get
// them. Tick() expires leases that were not renewed in time; a worker whose
// lease expired and that has sent nothing for a whole lease_ttl is gone (a
// dead host or a cut link, which TCP may not notice for many minutes): its
// stream is closed with UNAVAILABLE so that no more work goes to it (alive,
// it reconnects and lists its leases).
//
// A worker_id connecting again replaces its older stream (which is closed
// with ABORTED); the leases it lists in Hello.active_lease_ids and still
// owns are kept, the rest are released and Cancelled.
//
// Thread-safe: one mutex serialises sessions and queue calls (each queue
// call is one short SQLite transaction). Send/Close must not block and must
// not call back into the dispatcher.
#ifndef DSM_SERVICES_COORDINATOR_LEASE_DISPATCHER_H_
#define DSM_SERVICES_COORDINATOR_LEASE_DISPATCHER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/lease_queue.h"
#include "services/coordinator/run_store.h"

namespace dsm {

struct DispatcherOptions {
  absl::Duration lease_ttl = absl::Seconds(60);          // a lease lives this long without renewal
  absl::Duration heartbeat_interval = absl::Seconds(5);  // asked of workers (Welcome)
  uint32_t max_leases_per_worker = 64;                   // caps Hello.capacity
  uint32_t max_id_bytes = 128;                           // worker_id, lease_id
  std::string coordinator_id;                            // Welcome.coordinator_id (random per process)
  std::string run_name;                                  // Welcome.run_name

  absl::Status Validate() const;
};

class LeaseDispatcher {
 public:
  // Queues a message on the session's stream; false once the stream is gone.
  using Send = std::function<bool(v1::CoordinatorMessage)>;
  // Ends the session's stream with this status.
  using Close = std::function<void(absl::Status)>;

  // `store` and `metrics` (may be null) are not owned and must outlive this.
  LeaseDispatcher(RunStore* store, DispatcherOptions options, CoordinatorMetrics* metrics);

  // A worker's Hello: validated (INVALID_ARGUMENT naming the field; nothing
  // changes), replaces an older session of the same worker_id, sends
  // Welcome, then any work. Returns the session id.
  absl::StatusOr<uint64_t> Connect(const v1::Hello& hello, Send send, Close close);
  // Renews the listed leases; Cancels those the worker no longer owns.
  absl::Status OnHeartbeat(uint64_t session, const v1::Heartbeat& heartbeat);
  // Takes a result (ResultAck sent), then hands out more work.
  // INVALID_ARGUMENT for a malformed result (no lease_id, no outcome).
  absl::Status OnResult(uint64_t session, const v1::LeaseResult& result);
  // The session's stream ended: its leases go back to the queue at once
  // (unless a newer session of the same worker replaced it).
  void Disconnect(uint64_t session, const std::string& reason);

  // Enqueues work (see LeaseQueue::Enqueue) and hands it out.
  absl::StatusOr<std::vector<int64_t>> Enqueue(absl::Span<const WorkItemSpec> items);
  // Expires leases past their time (Cancel sent to their workers, work
  // requeued), hands out work, refreshes the gauges. Call about once a second.
  void Tick();
  // Cancels every unfinished item and lease (CancelRun).
  absl::Status CancelAll(const std::string& reason);
  // Sends Drain to every session (shutdown).
  void DrainAll(const std::string& reason, absl::Duration grace);

  // Runs after work items finished (results accepted or items failed), on
  // the thread that finished them, without the dispatcher's lock.
  void SetResultListener(std::function<void()> listener);

  uint32_t workers_connected() const;
  const DispatcherOptions& options() const { return options_; }

 private:
  struct Session {
    uint64_t id = 0;
    v1::Hello hello;
    std::vector<v1::AdapterRole> roles;
    uint32_t capacity = 1;
    Send send;
    Close close;
    std::set<std::string> leases;  // granted, not yet answered, expired or cancelled
    absl::Time last_grant = absl::InfinitePast();
    absl::Time last_heard;  // the worker's last message (Hello, Heartbeat, result)
  };

  // Removes a session and puts its leases back in the queue; returns its Hello.
  v1::Hello RemoveSessionLocked(std::map<uint64_t, Session>::iterator it, absl::Time now,
                                const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void DispatchLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the workers holding `leases` to drop them.
  void CancelLocked(const std::vector<LeaseRef>& leases, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Session* SessionOf(const std::string& worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queue gauges (a few COUNT queries): once per Tick, not per result.
  void RefreshGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AppendWorkerEvent(const v1::Hello& hello, bool joined, const std::string& reason);
  void NotifyResults();

  RunStore* const store_;
  const DispatcherOptions options_;
  CoordinatorMetrics* const metrics_;

  mutable absl::Mutex mu_;
  std::map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> by_worker_ ABSL_GUARDED_BY(mu_);
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;

  absl::Mutex listener_mu_;
  std::function<void()> result_listener_ ABSL_GUARDED_BY(listener_mu_);
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_LEASE_DISPATCHER_H_
