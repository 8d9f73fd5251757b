#include "services/coordinator/lease_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

using Connection = StateDb::Connection;

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

absl::StatusOr<int64_t> NextResultSeq(Connection& c) {
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT COALESCE(MAX(result_seq), 0) + 1 FROM work_items"));
  DSM_ASSIGN_OR_RETURN(bool row, st.Step());
  (void)row;
  return st.ColumnInt(0);
}

// Marks item_id finished as failed (terminal), with the next result_seq.
absl::Status FailItem(Connection& c, int64_t item_id, const std::string& error, absl::Time now) {
  DSM_ASSIGN_OR_RETURN(int64_t seq, NextResultSeq(c));
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                       c.Prepare("UPDATE work_items SET state = ?1, error = ?2, finished_us = ?3, result_seq = ?4 "
                                 "WHERE item_id = ?5"));
  st.BindInt(1, static_cast<int>(WorkState::kFailed)).BindText(2, error).BindInt(3, Micros(now)).BindInt(4, seq);
  st.BindInt(5, item_id);
  return st.Run();
}

// Takes back an ACTIVE lease (new_state: expired, released or cancelled)
// and requeues its item, or fails it once it has had max_attempts grants.
absl::Status Reclaim(Connection& c, const LeaseRef& lease, LeaseState new_state, absl::Time now, ReclaimOutcome* out) {
  {
    DSM_ASSIGN_OR_RETURN(
        StateDb::Statement st,
        c.Prepare("UPDATE leases SET state = ?1, reclaimed = ?1, answered_us = ?2 WHERE lease_id = ?3"));
    st.BindInt(1, static_cast<int>(new_state)).BindInt(2, Micros(now)).BindText(3, lease.lease_id);
    DSM_RETURN_IF_ERROR(st.Run());
  }
  out->leases.push_back(lease);
  int64_t state = 0, attempts = 0, max_attempts = 0;
  {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT state, attempts, max_attempts FROM work_items WHERE item_id = ?1"));
    st.BindInt(1, lease.item_id);
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row)
      return absl::InternalError(absl::StrCat("lease ", lease.lease_id, ": work item ", lease.item_id, " missing"));
    state = st.ColumnInt(0);
    attempts = st.ColumnInt(1);
    max_attempts = st.ColumnInt(2);
  }
  if (state != static_cast<int>(WorkState::kLeased)) return absl::OkStatus();
  if (attempts >= max_attempts) {
    out->failed_items.push_back(lease.item_id);
    return FailItem(c, lease.item_id,
                    absl::StrCat("lease ", lease.lease_id, " (worker ", lease.worker_id, ") ",
                                 LeaseStateName(new_state), " on attempt ", attempts, " of ", max_attempts),
                    now);
  }
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("UPDATE work_items SET state = ?1 WHERE item_id = ?2"));
  st.BindInt(1, static_cast<int>(WorkState::kQueued)).BindInt(2, lease.item_id);
  ++out->requeued;
  return st.Run();
}

WorkItem ReadItem(const StateDb::Statement& st) {
  // Column order of kItemColumns.
  WorkItem item;
  item.item_id = st.ColumnInt(0);
  item.key = st.ColumnText(1);
  item.kind = static_cast<WorkKind>(st.ColumnInt(2));
  item.role = static_cast<v1::AdapterRole>(st.ColumnInt(3));
  item.priority = static_cast<int32_t>(st.ColumnInt(4));
  item.phase = static_cast<v1::Phase>(st.ColumnInt(5));
  item.iteration = static_cast<uint32_t>(st.ColumnInt(6));
  item.payload = st.ColumnBlob(7);
  item.state = static_cast<WorkState>(st.ColumnInt(8));
  item.attempts = static_cast<uint32_t>(st.ColumnInt(9));
  item.max_attempts = static_cast<uint32_t>(st.ColumnInt(10));
  item.enqueued_at = absl::FromUnixMicros(st.ColumnInt(11));
  if (!st.ColumnIsNull(12)) item.finished_at = absl::FromUnixMicros(st.ColumnInt(12));
  item.accepted_lease_id = st.ColumnText(13);
  item.result = st.ColumnBlob(14);
  item.error = st.ColumnText(15);
  item.result_seq = st.ColumnIsNull(16) ? 0 : st.ColumnInt(16);
  return item;
}

#define DSM_ITEM_COLUMNS                                                                                \
  "item_id, COALESCE(work_key, ''), kind, role, priority, phase, iteration, payload, state, attempts, " \
  "max_attempts, enqueued_us, finished_us, COALESCE(accepted_lease_id, ''), result, error, result_seq"

}  // namespace

absl::Status LeaseQueueOptions::Validate() const {
  if (max_attempts < 1 || max_attempts > 100) {
    return absl::InvalidArgumentError(absl::StrCat("coordinator.max_attempts: ", max_attempts, " not in [1, 100]"));
  }
  if (max_leases_per_call < 1) return absl::InvalidArgumentError("coordinator.max_leases_per_call: must be >= 1");
  if (max_id_bytes < 1) return absl::InvalidArgumentError("coordinator.max_id_bytes: must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LeaseQueue>> LeaseQueue::Create(StateDb* db, const LeaseQueueOptions& options) {
  DSM_RETURN_IF_ERROR(options.Validate());
  std::string db_id;
  DSM_RETURN_IF_ERROR(db->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT value FROM meta WHERE key = 'db_id'"));
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return absl::DataLossError(absl::StrCat(db->path(), ": meta.db_id missing"));
    db_id = st.ColumnText(0);
    return absl::OkStatus();
  }));
  return std::unique_ptr<LeaseQueue>(new LeaseQueue(db, options, std::move(db_id)));
}

absl::StatusOr<std::vector<int64_t>> LeaseQueue::Enqueue(absl::Span<const WorkItemSpec> items, absl::Time now) {
  for (size_t i = 0; i < items.size(); ++i) {
    const WorkItemSpec& w = items[i];
    if (w.kind != WorkKind::kGenerate && w.kind != WorkKind::kScore) {
      return absl::InvalidArgumentError(
          absl::StrCat("work[", i, "].kind: ", static_cast<int>(w.kind), " is not GENERATE (1) or SCORE (2)"));
    }
    if (w.payload.size() > options_.max_payload_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("work[", i, "].payload: ", w.payload.size(),
                                                     " bytes > max_payload_bytes ", options_.max_payload_bytes));
    }
    if (w.key.size() > options_.max_id_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("work[", i, "].key: ", w.key.size(), " bytes > max_id_bytes ", options_.max_id_bytes));
    }
  }
  std::vector<int64_t> ids;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ids.clear();
    for (const WorkItemSpec& w : items) {
      if (!w.key.empty()) {
        DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT item_id FROM work_items WHERE work_key = ?1"));
        st.BindText(1, w.key);
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (row) {
          ids.push_back(st.ColumnInt(0));
          continue;
        }
      }
      DSM_ASSIGN_OR_RETURN(
          StateDb::Statement st,
          c.Prepare("INSERT INTO work_items (work_key, kind, role, priority, phase, iteration, payload, state, "
                    "max_attempts, enqueued_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
      if (w.key.empty()) {
        st.BindNull(1);
      } else {
        st.BindText(1, w.key);
      }
      st.BindInt(2, static_cast<int>(w.kind)).BindInt(3, w.role).BindInt(4, w.priority).BindInt(5, w.phase);
      st.BindInt(6, w.iteration).BindBlob(7, w.payload).BindInt(8, static_cast<int>(WorkState::kQueued));
      st.BindInt(9, options_.max_attempts).BindInt(10, Micros(now));
      DSM_RETURN_IF_ERROR(st.Run());
      ids.push_back(c.LastInsertRowId());
    }
    return absl::OkStatus();
  }));
  return ids;
}

absl::StatusOr<int64_t> LeaseQueue::Enqueue(const WorkItemSpec& item, absl::Time now) {
  DSM_ASSIGN_OR_RETURN(std::vector<int64_t> ids, Enqueue(absl::MakeConstSpan(&item, 1), now));
  return ids.front();
}

absl::StatusOr<std::vector<LeaseGrantInfo>> LeaseQueue::Lease(const std::string& worker_id, uint32_t max_items,
                                                              absl::Time now, absl::Duration lease_duration,
                                                              absl::Span<const v1::AdapterRole> roles) {
  if (worker_id.empty() || worker_id.size() > options_.max_id_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker_id: ", worker_id.size(), " bytes not in [1, max_id_bytes ", options_.max_id_bytes, "]"));
  }
  if (max_items < 1 || max_items > options_.max_leases_per_call) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_items: ", max_items, " not in [1, max_leases_per_call ", options_.max_leases_per_call, "]"));
  }
  if (lease_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_duration: ", absl::FormatDuration(lease_duration), " is not positive"));
  }
  // Roles as a bit mask over AdapterRole numbers; bit 0 (UNSPECIFIED) = work any worker may take.
  int64_t role_mask = 0;
  for (v1::AdapterRole r : roles) {
    if (r < 0 || r > 62) return absl::InvalidArgumentError(absl::StrCat("roles: ", r, " is not an AdapterRole"));
    role_mask |= int64_t{1} << r;
  }
  if (role_mask != 0) role_mask |= 1;
  std::vector<LeaseGrantInfo> grants;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    grants.clear();
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT item_id, kind, role, payload, attempts FROM work_items "
                                     "WHERE state = ?1 AND (?2 = 0 OR ((1 << role) & ?2) != 0) "
                                     "ORDER BY priority DESC, item_id LIMIT ?3"));
      st.BindInt(1, static_cast<int>(WorkState::kQueued)).BindInt(2, role_mask).BindInt(3, max_items);
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        LeaseGrantInfo g;
        g.item_id = st.ColumnInt(0);
        g.kind = static_cast<WorkKind>(st.ColumnInt(1));
        g.role = static_cast<v1::AdapterRole>(st.ColumnInt(2));
        g.payload = st.ColumnBlob(3);
        g.attempt = static_cast<uint32_t>(st.ColumnInt(4)) + 1;
        g.lease_id = absl::StrCat(db_id_, "-", g.item_id, "-", g.attempt);
        g.expires_at = now + lease_duration;
        grants.push_back(std::move(g));
      }
    }
    for (const LeaseGrantInfo& g : grants) {
      {
        DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                             c.Prepare("UPDATE work_items SET state = ?1, attempts = ?2 WHERE item_id = ?3"));
        st.BindInt(1, static_cast<int>(WorkState::kLeased)).BindInt(2, g.attempt).BindInt(3, g.item_id);
        DSM_RETURN_IF_ERROR(st.Run());
      }
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("INSERT INTO leases (lease_id, item_id, worker_id, attempt, granted_us, "
                                     "expires_us, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
      st.BindText(1, g.lease_id).BindInt(2, g.item_id).BindText(3, worker_id).BindInt(4, g.attempt);
      st.BindInt(5, Micros(now)).BindInt(6, Micros(g.expires_at)).BindInt(7, static_cast<int>(LeaseState::kActive));
      DSM_RETURN_IF_ERROR(st.Run());
    }
    return absl::OkStatus();
  }));
  return grants;
}

absl::StatusOr<RenewOutcome> LeaseQueue::Heartbeat(const std::string& worker_id,
                                                   absl::Span<const std::string> lease_ids, absl::Time now,
                                                   absl::Duration lease_duration) {
  if (lease_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_duration: ", absl::FormatDuration(lease_duration), " is not positive"));
  }
  RenewOutcome out;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    out = RenewOutcome();
    ReclaimOutcome reclaimed;  // leases found past their expiry
    for (const std::string& id : lease_ids) {
      LeaseRef lease{id, "", 0};
      int64_t state = 0, expires_us = 0;
      {
        DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                             c.Prepare("SELECT worker_id, item_id, state, expires_us FROM leases WHERE lease_id = ?1"));
        st.BindText(1, id);
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) {
          out.rejected.emplace_back(id, "unknown lease");
          continue;
        }
        lease.worker_id = st.ColumnText(0);
        lease.item_id = st.ColumnInt(1);
        state = st.ColumnInt(2);
        expires_us = st.ColumnInt(3);
      }
      if (lease.worker_id != worker_id) {
        out.rejected.emplace_back(id, absl::StrCat("held by worker ", lease.worker_id));
        continue;
      }
      if (state != static_cast<int>(LeaseState::kActive)) {
        out.rejected.emplace_back(id, absl::StrCat("lease is ", LeaseStateName(static_cast<LeaseState>(state))));
        continue;
      }
      if (expires_us <= Micros(now)) {
        DSM_RETURN_IF_ERROR(Reclaim(c, lease, LeaseState::kExpired, now, &reclaimed));
        out.rejected.emplace_back(id, "lease is expired");
        continue;
      }
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("UPDATE leases SET expires_us = ?1 WHERE lease_id = ?2"));
      st.BindInt(1, Micros(now + lease_duration)).BindText(2, id);
      DSM_RETURN_IF_ERROR(st.Run());
      out.renewed.push_back(id);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<CompletionOutcome> LeaseQueue::Complete(const std::string& lease_id, const std::string& result,
                                                       absl::Time now) {
  return Answer(lease_id, &result, nullptr, now);
}

absl::StatusOr<CompletionOutcome> LeaseQueue::Fail(const std::string& lease_id, const LeaseFailure& failure,
                                                   absl::Time now) {
  return Answer(lease_id, nullptr, &failure, now);
}

absl::StatusOr<CompletionOutcome> LeaseQueue::Answer(const std::string& lease_id, const std::string* result,
                                                     const LeaseFailure* failure, absl::Time now) {
  CompletionOutcome out;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    out = CompletionOutcome();
    std::string worker_id;
    LeaseState lease_state;
    WorkState item_state;
    int64_t attempts = 0, max_attempts = 0;
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT l.item_id, l.worker_id, l.state, w.state, w.attempts, w.max_attempts "
                                     "FROM leases l JOIN work_items w ON w.item_id = l.item_id "
                                     "WHERE l.lease_id = ?1"));
      st.BindText(1, lease_id);
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        out.status = v1::LEASE_RESULT_STATUS_UNKNOWN_LEASE;
        out.message = "no such lease";
        return absl::OkStatus();
      }
      out.item_id = st.ColumnInt(0);
      worker_id = st.ColumnText(1);
      lease_state = static_cast<LeaseState>(st.ColumnInt(2));
      item_state = static_cast<WorkState>(st.ColumnInt(3));
      attempts = st.ColumnInt(4);
      max_attempts = st.ColumnInt(5);
    }
    auto set_lease_state = [&](LeaseState s) -> absl::Status {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("UPDATE leases SET state = ?1, answered_us = ?2 WHERE lease_id = ?3"));
      st.BindInt(1, static_cast<int>(s)).BindInt(2, Micros(now)).BindText(3, lease_id);
      return st.Run();
    };
    if (lease_state == LeaseState::kCompleted || lease_state == LeaseState::kErrored) {
      out.status = v1::LEASE_RESULT_STATUS_DUPLICATE;
      out.message = "this lease was already answered";
      return absl::OkStatus();
    }
    if (lease_state == LeaseState::kDiscarded || item_state == WorkState::kDone || item_state == WorkState::kFailed ||
        item_state == WorkState::kCancelled) {
      out.status = v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED;
      out.message = absl::StrCat("work item ", out.item_id, " is already ", WorkStateName(item_state));
      if (lease_state != LeaseState::kDiscarded) return set_lease_state(LeaseState::kDiscarded);
      return absl::OkStatus();
    }
    // The item is unanswered (queued, or leased to this lease or a regrant).
    out.status = v1::LEASE_RESULT_STATUS_ACCEPTED;
    if (failure != nullptr) {
      DSM_RETURN_IF_ERROR(set_lease_state(LeaseState::kErrored));
      if (lease_state != LeaseState::kActive) {
        out.message = "error recorded; the work was already given back";
        return absl::OkStatus();
      }
      std::string error =
          absl::StrCat("worker ", worker_id, " attempt ", attempts, ": code ", failure->code, ": ", failure->message);
      if (failure->retryable && attempts < max_attempts) {
        DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                             c.Prepare("UPDATE work_items SET state = ?1, error = ?2 WHERE item_id = ?3"));
        st.BindInt(1, static_cast<int>(WorkState::kQueued)).BindText(2, error).BindInt(3, out.item_id);
        out.message = "error recorded; the work is queued again";
        return st.Run();
      }
      out.message = "error recorded; the work failed";
      return FailItem(c, out.item_id, error, now);
    }
    DSM_ASSIGN_OR_RETURN(int64_t seq, NextResultSeq(c));
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("UPDATE work_items SET state = ?1, result = ?2, accepted_lease_id = ?3, "
                                     "finished_us = ?4, result_seq = ?5, error = '' WHERE item_id = ?6"));
      st.BindInt(1, static_cast<int>(WorkState::kDone)).BindBlob(2, *result).BindText(3, lease_id);
      st.BindInt(4, Micros(now)).BindInt(5, seq).BindInt(6, out.item_id);
      DSM_RETURN_IF_ERROR(st.Run());
    }
    DSM_RETURN_IF_ERROR(set_lease_state(LeaseState::kCompleted));
    {
      // A late result: the regrant still running elsewhere is cancelled.
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT lease_id, worker_id FROM leases WHERE item_id = ?1 AND state = ?2"));
      st.BindInt(1, out.item_id).BindInt(2, static_cast<int>(LeaseState::kActive));
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        out.cancelled.push_back(LeaseRef{st.ColumnText(0), st.ColumnText(1), out.item_id});
      }
    }
    if (!out.cancelled.empty()) {
      DSM_ASSIGN_OR_RETURN(
          StateDb::Statement st,
          c.Prepare("UPDATE leases SET state = ?1, answered_us = ?2 WHERE item_id = ?3 AND state = ?4"));
      st.BindInt(1, static_cast<int>(LeaseState::kCancelled)).BindInt(2, Micros(now)).BindInt(3, out.item_id);
      st.BindInt(4, static_cast<int>(LeaseState::kActive));
      DSM_RETURN_IF_ERROR(st.Run());
      out.message = "accepted a late result; the regrant is cancelled";
    }
    return absl::OkStatus();
  }));
  switch (out.status) {
    case v1::LEASE_RESULT_STATUS_DUPLICATE:
      duplicate_.fetch_add(1, std::memory_order_relaxed);
      break;
    case v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED:
      expired_reissued_.fetch_add(1, std::memory_order_relaxed);
      break;
    case v1::LEASE_RESULT_STATUS_UNKNOWN_LEASE:
      unknown_.fetch_add(1, std::memory_order_relaxed);
      break;
    case v1::LEASE_RESULT_STATUS_ACCEPTED:
      if (failure != nullptr) errored_.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      break;
  }
  return out;
}

absl::StatusOr<ReclaimOutcome> LeaseQueue::ExpireLeases(absl::Time now) {
  ReclaimOutcome out;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    out = ReclaimOutcome();
    std::vector<LeaseRef> expired;
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT lease_id, worker_id, item_id FROM leases "
                                     "WHERE state = ?1 AND expires_us <= ?2 ORDER BY expires_us, lease_id"));
      st.BindInt(1, static_cast<int>(LeaseState::kActive)).BindInt(2, Micros(now));
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        expired.push_back(LeaseRef{st.ColumnText(0), st.ColumnText(1), st.ColumnInt(2)});
      }
    }
    for (const LeaseRef& lease : expired) DSM_RETURN_IF_ERROR(Reclaim(c, lease, LeaseState::kExpired, now, &out));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ReclaimOutcome> LeaseQueue::ReleaseWorker(const std::string& worker_id, absl::Time now,
                                                         absl::Span<const std::string> keep) {
  ReclaimOutcome out;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    out = ReclaimOutcome();
    std::vector<LeaseRef> held;
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT lease_id, item_id FROM leases WHERE worker_id = ?1 AND state = ?2 "
                                     "ORDER BY lease_id"));
      st.BindText(1, worker_id).BindInt(2, static_cast<int>(LeaseState::kActive));
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        std::string id = st.ColumnText(0);
        if (std::find(keep.begin(), keep.end(), id) != keep.end()) continue;
        held.push_back(LeaseRef{std::move(id), worker_id, st.ColumnInt(1)});
      }
    }
    for (const LeaseRef& lease : held) DSM_RETURN_IF_ERROR(Reclaim(c, lease, LeaseState::kReleased, now, &out));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ReclaimOutcome> LeaseQueue::CancelAll(absl::Time now, const std::string& reason) {
  ReclaimOutcome out;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    out = ReclaimOutcome();
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT lease_id, worker_id, item_id FROM leases WHERE state = ?1 "
                                     "ORDER BY lease_id"));
      st.BindInt(1, static_cast<int>(LeaseState::kActive));
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        out.leases.push_back(LeaseRef{st.ColumnText(0), st.ColumnText(1), st.ColumnInt(2)});
      }
    }
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("UPDATE leases SET state = ?1, answered_us = ?2 WHERE state = ?3"));
      st.BindInt(1, static_cast<int>(LeaseState::kCancelled)).BindInt(2, Micros(now));
      st.BindInt(3, static_cast<int>(LeaseState::kActive));
      DSM_RETURN_IF_ERROR(st.Run());
    }
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("UPDATE work_items SET state = ?1, error = ?2, finished_us = ?3 "
                                   "WHERE state IN (?4, ?5)"));
    st.BindInt(1, static_cast<int>(WorkState::kCancelled)).BindText(2, reason).BindInt(3, Micros(now));
    st.BindInt(4, static_cast<int>(WorkState::kQueued)).BindInt(5, static_cast<int>(WorkState::kLeased));
    return st.Run();
  }));
  return out;
}

absl::StatusOr<WorkItem> LeaseQueue::GetItem(int64_t item_id) {
  WorkItem item;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT " DSM_ITEM_COLUMNS " FROM work_items WHERE item_id = ?1"));
    st.BindInt(1, item_id);
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("work item ", item_id, ": no such item"));
    item = ReadItem(st);
    return absl::OkStatus();
  }));
  return item;
}

absl::StatusOr<std::vector<WorkItem>> LeaseQueue::ResultsAfter(int64_t after_seq, uint32_t limit) {
  std::vector<WorkItem> items;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    items.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT " DSM_ITEM_COLUMNS " FROM work_items WHERE result_seq > ?1 "
                                   "ORDER BY result_seq LIMIT ?2"));
    st.BindInt(1, after_seq).BindInt(2, limit);
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      items.push_back(ReadItem(st));
    }
    return absl::OkStatus();
  }));
  return items;
}

absl::StatusOr<std::vector<LeaseRef>> LeaseQueue::ActiveLeases(const std::string& worker_id) {
  std::vector<LeaseRef> leases;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    leases.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT lease_id, item_id FROM leases WHERE worker_id = ?1 AND state = ?2 "
                                   "ORDER BY lease_id"));
    st.BindText(1, worker_id).BindInt(2, static_cast<int>(LeaseState::kActive));
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      leases.push_back(LeaseRef{st.ColumnText(0), worker_id, st.ColumnInt(1)});
    }
    return absl::OkStatus();
  }));
  return leases;
}

absl::StatusOr<QueueCounters> LeaseQueue::Counters() {
  QueueCounters out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    out = QueueCounters();
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT state, COUNT(*) FROM work_items GROUP BY state"));
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        const auto n = static_cast<uint64_t>(st.ColumnInt(1));
        switch (static_cast<WorkState>(st.ColumnInt(0))) {
          case WorkState::kQueued:
            out.queued = n;
            break;
          case WorkState::kLeased:
            out.leased = n;
            break;
          case WorkState::kDone:
            out.done = n;
            break;
          case WorkState::kFailed:
            out.failed = n;
            break;
          case WorkState::kCancelled:
            out.cancelled = n;
            break;
        }
      }
    }
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT (SELECT COUNT(*) FROM leases WHERE state = ?1), "
                                                            "(SELECT COUNT(*) FROM leases WHERE reclaimed = ?2), "
                                                            "(SELECT COUNT(*) FROM leases WHERE reclaimed = ?3)"));
      st.BindInt(1, static_cast<int>(LeaseState::kActive)).BindInt(2, static_cast<int>(LeaseState::kExpired));
      st.BindInt(3, static_cast<int>(LeaseState::kReleased));
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      (void)row;
      out.leases_outstanding = static_cast<uint64_t>(st.ColumnInt(0));
      out.leases_expired = static_cast<uint64_t>(st.ColumnInt(1));
      out.leases_released = static_cast<uint64_t>(st.ColumnInt(2));
    }
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT worker_id, COUNT(*) FROM leases WHERE state = ?1 GROUP BY worker_id"));
    st.BindInt(1, static_cast<int>(LeaseState::kCompleted));
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out.completed_by_worker[st.ColumnText(0)] = static_cast<uint64_t>(st.ColumnInt(1));
    }
    return absl::OkStatus();
  }));
  out.results_duplicate = duplicate_.load(std::memory_order_relaxed);
  out.results_expired_reissued = expired_reissued_.load(std::memory_order_relaxed);
  out.results_unknown_lease = unknown_.load(std::memory_order_relaxed);
  out.results_errored = errored_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace dsm
