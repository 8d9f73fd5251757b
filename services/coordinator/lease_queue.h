// LeaseQueue: the coordinator's persistent work queue. Work items are
// enqueued, handed to workers as leases with an expiry, and each item's
// result is accepted exactly once. Everything lives in the run's state.db
// (tables work_items and leases, see run_schema.h), so a restarted
// coordinator carries on where the last one stopped.
//
// The rules (they implement coordinator.proto's Lease contract):
//  - Lease() grants the queued items with the highest priority, oldest first
//    (lowest item_id; a requeued item keeps its place), each under a new
//    lease id "<db_id>-<item_id>-<attempt>". db_id is random per state.db,
//    so an id from another incarnation's lost state is UNKNOWN_LEASE, never
//    mistaken for a new lease. A lease id is granted once, ever.
//  - Heartbeat() renews a worker's ACTIVE leases; a lease past its expiry is
//    reclaimed on the spot instead (as ExpireLeases would).
//  - Complete(lease_id, result):
//      unknown lease id                              -> UNKNOWN_LEASE
//      this lease already answered (resend)          -> DUPLICATE
//      the item already has a result, or it failed
//      or was cancelled (a late result)              -> EXPIRED_REISSUED
//      otherwise                                     -> ACCEPTED
//    ACCEPTED stores the result, marks the item done and gives it the next
//    result_seq, all in ONE transaction; a late result from an expired lease
//    is ACCEPTED too while the item is unanswered, and the item's regrant
//    (if any) is cancelled and returned so the service can send Cancel. So
//    every item has at most one accepted result, whatever the order of
//    expiries, regrants and resends.
//  - Fail(lease_id, error): the worker gave up. An ACTIVE lease's item is
//    requeued if the error is retryable and attempts remain, else it fails.
//    Answered like Complete (ACCEPTED = the error was recorded).
//  - ExpireLeases(now) and ReleaseWorker() reclaim ACTIVE leases: the item
//    goes back to the queue, or fails once it has had max_attempts grants.
//  - A finished item (done or failed) gets result_seq 1, 2, 3, ... in
//    finishing order: ResultsAfter(cursor) lets the pipeline consume results
//    exactly once across restarts (keep the cursor in RunStore's cursors).
//
// Time is passed in (absl::Time) so that tests are deterministic; the
// coordinator passes absl::Now(). Leases persist with absolute expiry times:
// after a restart, workers that reconnect renew theirs (Heartbeat), the
// others expire.
//
// Thread-safe: every call is one StateDb transaction (StateDb serialises
// them on its one connection); the in-memory counters are atomics.
#ifndef DSM_SERVICES_COORDINATOR_LEASE_QUEUE_H_
#define DSM_SERVICES_COORDINATOR_LEASE_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/run_schema.h"
#include "services/coordinator/state_db.h"

namespace dsm {

struct LeaseQueueOptions {
  uint32_t max_attempts = 3;              // grants per item before it fails, [1, 100]
  uint32_t max_leases_per_call = 256;     // cap on Lease()'s max_items
  uint32_t max_id_bytes = 128;            // worker_id, work key
  uint64_t max_payload_bytes = 64 << 20;  // serialized GenerateWork/ScoreWork

  absl::Status Validate() const;
};

// What to enqueue.
struct WorkItemSpec {
  WorkKind kind = WorkKind::kGenerate;
  std::string payload;  // serialized v1::GenerateWork (kGenerate) or v1::ScoreWork (kScore)
  // The adapter role a worker must host to take it (GenerateWork.adapter_role;
  // VERIFIER or META_VERIFIER for scoring). UNSPECIFIED = any worker.
  v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
  int32_t priority = 0;  // higher first
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  uint32_t iteration = 0;
  // Optional idempotency key (at most max_id_bytes bytes): enqueueing a key
  // that exists returns the existing item, so a restarted pipeline may
  // enqueue its work again safely. Empty = no key.
  std::string key;
};

// A lease handed out by Lease().
struct LeaseGrantInfo {
  std::string lease_id;
  int64_t item_id = 0;
  WorkKind kind = WorkKind::kGenerate;
  v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
  std::string payload;
  uint32_t attempt = 0;  // from 1
  absl::Time expires_at;
};

struct LeaseRef {
  std::string lease_id;
  std::string worker_id;
  int64_t item_id = 0;
};

// How a Complete()/Fail() was taken.
struct CompletionOutcome {
  v1::LeaseResultStatus status = v1::LEASE_RESULT_STATUS_UNSPECIFIED;
  std::string message;  // for ResultAck.message; may be empty
  int64_t item_id = 0;  // 0 for UNKNOWN_LEASE
  // Other leases of the same item cancelled by this acceptance (send them Cancel).
  std::vector<LeaseRef> cancelled;
};

// A worker's LeaseError.
struct LeaseFailure {
  int32_t code = 0;  // grpc::StatusCode number
  std::string message;
  bool retryable = false;
};

// Leases taken back by ExpireLeases/ReleaseWorker/CancelAll.
struct ReclaimOutcome {
  std::vector<LeaseRef> leases;       // reclaimed (expired, released or cancelled)
  uint32_t requeued = 0;              // items back in the queue
  std::vector<int64_t> failed_items;  // items that ran out of attempts
};

struct RenewOutcome {
  std::vector<std::string> renewed;
  // Leases not renewed, with why ("unknown lease", "held by worker w2",
  // "lease is expired", ...): the worker should drop them (send Cancel).
  std::vector<std::pair<std::string, std::string>> rejected;
};

// One work item as stored.
struct WorkItem {
  int64_t item_id = 0;
  std::string key;
  WorkKind kind = WorkKind::kGenerate;
  v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
  int32_t priority = 0;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  uint32_t iteration = 0;
  std::string payload;
  WorkState state = WorkState::kQueued;
  uint32_t attempts = 0;
  uint32_t max_attempts = 0;
  absl::Time enqueued_at;
  std::optional<absl::Time> finished_at;
  std::string accepted_lease_id;  // the lease whose result was accepted (kDone)
  std::string result;             // accepted result bytes (kDone)
  std::string error;              // why it failed (kFailed) or was cancelled
  int64_t result_seq = 0;         // order of finishing (kDone, kFailed); 0 = not finished
};

struct QueueCounters {
  // From the database (exact across restarts).
  uint64_t queued = 0;  // queue depth
  uint64_t leased = 0;  // items under an active lease
  uint64_t done = 0;    // = results accepted, each item once
  uint64_t failed = 0;
  uint64_t cancelled = 0;
  uint64_t leases_outstanding = 0;                      // ACTIVE leases
  uint64_t leases_expired = 0;                          // leases ever reclaimed by expiry
  uint64_t leases_released = 0;                         // leases ever reclaimed from a departed worker
  std::map<std::string, uint64_t> completed_by_worker;  // accepted results per worker_id
  // Since this LeaseQueue was created (Prometheus counters may reset).
  uint64_t results_duplicate = 0;
  uint64_t results_expired_reissued = 0;
  uint64_t results_unknown_lease = 0;
  uint64_t results_errored = 0;
};

class LeaseQueue {
 public:
  // `db` (not owned) must have the run schema (RunStateMigrations) and
  // outlive the queue.
  static absl::StatusOr<std::unique_ptr<LeaseQueue>> Create(StateDb* db, const LeaseQueueOptions& options);

  // Enqueues work items in one transaction; returns their item ids (the
  // existing id for a key already enqueued).
  absl::StatusOr<std::vector<int64_t>> Enqueue(absl::Span<const WorkItemSpec> items, absl::Time now);
  absl::StatusOr<int64_t> Enqueue(const WorkItemSpec& item, absl::Time now);

  // Grants up to max_items queued items to worker_id (only items whose role
  // is in `roles`, or UNSPECIFIED; empty `roles` = any), expiring at
  // now + lease_duration. Fewer (or none) if the queue holds fewer.
  absl::StatusOr<std::vector<LeaseGrantInfo>> Lease(const std::string& worker_id, uint32_t max_items, absl::Time now,
                                                    absl::Duration lease_duration,
                                                    absl::Span<const v1::AdapterRole> roles = {});

  // Renews worker_id's ACTIVE leases among lease_ids to now + lease_duration.
  absl::StatusOr<RenewOutcome> Heartbeat(const std::string& worker_id, absl::Span<const std::string> lease_ids,
                                         absl::Time now, absl::Duration lease_duration);

  // A worker's result (serialized GenerateResult or ScoreResult). See the rules above.
  absl::StatusOr<CompletionOutcome> Complete(const std::string& lease_id, const std::string& result, absl::Time now);
  // A worker's LeaseError.
  absl::StatusOr<CompletionOutcome> Fail(const std::string& lease_id, const LeaseFailure& failure, absl::Time now);

  // Reclaims every ACTIVE lease whose expiry is <= now.
  absl::StatusOr<ReclaimOutcome> ExpireLeases(absl::Time now);
  // Reclaims worker_id's ACTIVE leases at once (its stream ended), except
  // those in `keep` (a reconnecting worker still holds them: Hello.active_lease_ids).
  absl::StatusOr<ReclaimOutcome> ReleaseWorker(const std::string& worker_id, absl::Time now,
                                               absl::Span<const std::string> keep = {});
  // Cancels every unfinished item and ACTIVE lease (CancelRun).
  absl::StatusOr<ReclaimOutcome> CancelAll(absl::Time now, const std::string& reason);

  absl::StatusOr<WorkItem> GetItem(int64_t item_id);
  // Finished items (done or failed) with result_seq > after_seq, in result_seq order.
  absl::StatusOr<std::vector<WorkItem>> ResultsAfter(int64_t after_seq, uint32_t limit);
  // worker_id's ACTIVE leases.
  absl::StatusOr<std::vector<LeaseRef>> ActiveLeases(const std::string& worker_id);
  absl::StatusOr<QueueCounters> Counters();

  const LeaseQueueOptions& options() const { return options_; }

 private:
  LeaseQueue(StateDb* db, const LeaseQueueOptions& options, std::string db_id)
      : db_(db), options_(options), db_id_(std::move(db_id)) {}
  absl::StatusOr<CompletionOutcome> Answer(const std::string& lease_id, const std::string* result,
                                           const LeaseFailure* failure, absl::Time now);

  StateDb* const db_;
  const LeaseQueueOptions options_;
  const std::string db_id_;
  std::atomic<uint64_t> duplicate_{0};
  std::atomic<uint64_t> expired_reissued_{0};
  std::atomic<uint64_t> unknown_{0};
  std::atomic<uint64_t> errored_{0};
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_LEASE_QUEUE_H_
