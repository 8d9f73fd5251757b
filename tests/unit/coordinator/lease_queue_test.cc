// LeaseQueue: leases, exactly-once results, expiry and re-issue, dead
// workers, restarts (a new RunStore on the same file) and threads.
#include "services/coordinator/lease_queue.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/coordinator/run_store.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
const absl::Duration kTtl = absl::Seconds(30);

RunStoreOptions FastOptions() {
  RunStoreOptions o;
  o.db.synchronous_full = false;  // tests: no fsync per commit
  return o;
}

WorkItemSpec Work(const std::string& payload, v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED,
                  int32_t priority = 0) {
  WorkItemSpec w;
  w.kind = WorkKind::kGenerate;
  w.payload = payload;
  w.role = role;
  w.priority = priority;
  return w;
}

class LeaseQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    auto s = RunStore::Open(dir_.File("state.db"), options_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  LeaseQueue& q() { return store_->queue(); }
  std::vector<LeaseGrantInfo> Lease(const std::string& worker, uint32_t n, absl::Time now) {
    auto g = q().Lease(worker, n, now, kTtl);
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? *g : std::vector<LeaseGrantInfo>{};
  }
  CompletionOutcome Complete(const std::string& lease_id, const std::string& result, absl::Time now) {
    auto c = q().Complete(lease_id, result, now);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : CompletionOutcome{};
  }
  QueueCounters Counters() { return q().Counters().value(); }

  TestDir dir_;
  RunStoreOptions options_ = FastOptions();
  std::unique_ptr<RunStore> store_;
};

TEST_F(LeaseQueueTest, LeasesOldestFirstWithIdsAndExpiry) {
  ASSERT_TRUE(q().Enqueue({Work("a"), Work("b"), Work("c")}, kT0).ok());
  auto grants = Lease("w1", 2, kT0);
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_EQ(grants[0].payload, "a");
  EXPECT_EQ(grants[1].payload, "b");
  EXPECT_EQ(grants[0].attempt, 1u);
  EXPECT_EQ(grants[0].expires_at, kT0 + kTtl);
  EXPECT_NE(grants[0].lease_id, grants[1].lease_id);
  EXPECT_TRUE(absl::EndsWith(grants[0].lease_id, "-1-1")) << grants[0].lease_id;
  auto rest = Lease("w2", 5, kT0);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].payload, "c");
  EXPECT_TRUE(Lease("w3", 5, kT0).empty());
  QueueCounters c = Counters();
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.leased, 3u);
  EXPECT_EQ(c.leases_outstanding, 3u);
}

TEST_F(LeaseQueueTest, PriorityThenAgeAndRoleFilter) {
  ASSERT_TRUE(q().Enqueue({Work("low", v1::ADAPTER_ROLE_GENERATOR, 0), Work("high", v1::ADAPTER_ROLE_VERIFIER, 5),
                           Work("any", v1::ADAPTER_ROLE_UNSPECIFIED, 0)},
                          kT0)
                  .ok());
  const v1::AdapterRole generator[] = {v1::ADAPTER_ROLE_GENERATOR};
  auto g = q().Lease("gen", 10, kT0, kTtl, generator).value();
  ASSERT_EQ(g.size(), 2u);  // the VERIFIER item is not for this worker
  EXPECT_EQ(g[0].payload, "low");
  EXPECT_EQ(g[1].payload, "any");
  auto v = Lease("anyone", 10, kT0);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].payload, "high");
}

TEST_F(LeaseQueueTest, EnqueueWithKeyIsIdempotent) {
  WorkItemSpec w = Work("p");
  w.key = "phase2/iter1/problem7";
  const int64_t first = q().Enqueue(w, kT0).value();
  const int64_t again = q().Enqueue(w, kT0).value();
  EXPECT_EQ(first, again);
  EXPECT_EQ(Counters().queued, 1u);
}

TEST_F(LeaseQueueTest, CompleteIsExactlyOnceAndResendIsDuplicate) {
  const int64_t id = q().Enqueue(Work("a"), kT0).value();
  auto g = Lease("w1", 1, kT0);
  ASSERT_EQ(g.size(), 1u);
  CompletionOutcome first = Complete(g[0].lease_id, "result-1", kT0 + absl::Seconds(1));
  EXPECT_EQ(first.status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  EXPECT_EQ(first.item_id, id);
  CompletionOutcome resend = Complete(g[0].lease_id, "result-1-again", kT0 + absl::Seconds(2));
  EXPECT_EQ(resend.status, v1::LEASE_RESULT_STATUS_DUPLICATE);
  EXPECT_EQ(resend.message, "this lease was already answered");
  WorkItem item = q().GetItem(id).value();
  EXPECT_EQ(item.state, WorkState::kDone);
  EXPECT_EQ(item.result, "result-1");  // no second record
  EXPECT_EQ(item.accepted_lease_id, g[0].lease_id);
  EXPECT_EQ(item.result_seq, 1);
  QueueCounters c = Counters();
  EXPECT_EQ(c.done, 1u);
  EXPECT_EQ(c.results_duplicate, 1u);
  EXPECT_EQ(c.leases_outstanding, 0u);
  EXPECT_EQ(c.completed_by_worker, (std::map<std::string, uint64_t>{{"w1", 1}}));
}

TEST_F(LeaseQueueTest, UnknownLease) {
  CompletionOutcome c = Complete("deadbeef-9-1", "r", kT0);
  EXPECT_EQ(c.status, v1::LEASE_RESULT_STATUS_UNKNOWN_LEASE);
  EXPECT_EQ(c.item_id, 0);
  EXPECT_EQ(Counters().results_unknown_lease, 1u);
}

TEST_F(LeaseQueueTest, ExpiredLeaseIsReissuedUnderNewId) {
  const int64_t id = q().Enqueue(Work("a"), kT0).value();
  auto g1 = Lease("w1", 1, kT0);
  ASSERT_EQ(g1.size(), 1u);
  // Not yet expired at exactly expiry - 1us.
  EXPECT_TRUE(q().ExpireLeases(kT0 + kTtl - absl::Microseconds(1)).value().leases.empty());
  ReclaimOutcome r = q().ExpireLeases(kT0 + kTtl).value();
  ASSERT_EQ(r.leases.size(), 1u);
  EXPECT_EQ(r.leases[0].lease_id, g1[0].lease_id);
  EXPECT_EQ(r.requeued, 1u);
  auto g2 = Lease("w2", 1, kT0 + kTtl);
  ASSERT_EQ(g2.size(), 1u);
  EXPECT_EQ(g2[0].item_id, id);
  EXPECT_EQ(g2[0].attempt, 2u);
  EXPECT_NE(g2[0].lease_id, g1[0].lease_id);
  // The regrant answers first: the late original is discarded.
  EXPECT_EQ(Complete(g2[0].lease_id, "from-w2", kT0 + kTtl).status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  CompletionOutcome late = Complete(g1[0].lease_id, "from-w1", kT0 + kTtl);
  EXPECT_EQ(late.status, v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED);
  EXPECT_EQ(late.message, absl::StrCat("work item ", id, " is already done"));
  // ... and a resend of the late one gets the same answer.
  EXPECT_EQ(Complete(g1[0].lease_id, "from-w1", kT0 + kTtl).status, v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED);
  EXPECT_EQ(q().GetItem(id).value().result, "from-w2");
  QueueCounters c = Counters();
  EXPECT_EQ(c.done, 1u);
  EXPECT_EQ(c.leases_expired, 1u);
  EXPECT_EQ(c.results_expired_reissued, 2u);
}

TEST_F(LeaseQueueTest, LateResultBeforeRegrantAnswersIsAcceptedAndRegrantCancelled) {
  const int64_t id = q().Enqueue(Work("a"), kT0).value();
  auto g1 = Lease("w1", 1, kT0);
  ASSERT_TRUE(q().ExpireLeases(kT0 + kTtl).ok());
  auto g2 = Lease("w2", 1, kT0 + kTtl);
  ASSERT_EQ(g2.size(), 1u);
  CompletionOutcome late = Complete(g1[0].lease_id, "from-w1", kT0 + kTtl + absl::Seconds(1));
  EXPECT_EQ(late.status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  ASSERT_EQ(late.cancelled.size(), 1u);
  EXPECT_EQ(late.cancelled[0].lease_id, g2[0].lease_id);
  EXPECT_EQ(late.cancelled[0].worker_id, "w2");
  EXPECT_EQ(Complete(g2[0].lease_id, "from-w2", kT0 + kTtl + absl::Seconds(2)).status,
            v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED);
  EXPECT_EQ(q().GetItem(id).value().result, "from-w1");
  EXPECT_EQ(Counters().done, 1u);
  EXPECT_EQ(Counters().leases_outstanding, 0u);
}

TEST_F(LeaseQueueTest, LateResultWhileRequeuedIsAccepted) {
  const int64_t id = q().Enqueue(Work("a"), kT0).value();
  auto g1 = Lease("w1", 1, kT0);
  ASSERT_TRUE(q().ExpireLeases(kT0 + kTtl).ok());
  EXPECT_EQ(Complete(g1[0].lease_id, "late", kT0 + kTtl).status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  EXPECT_EQ(q().GetItem(id).value().state, WorkState::kDone);
  EXPECT_TRUE(Lease("w2", 1, kT0 + kTtl).empty());  // never served again
}

TEST_F(LeaseQueueTest, ItemFailsAfterMaxAttempts) {
  options_.queue.max_attempts = 2;
  Reopen();
  const int64_t id = q().Enqueue(Work("poison"), kT0).value();
  absl::Time t = kT0;
  ASSERT_EQ(Lease("w1", 1, t).size(), 1u);
  t += kTtl;
  EXPECT_EQ(q().ExpireLeases(t).value().requeued, 1u);
  auto g2 = Lease("w2", 1, t);
  ASSERT_EQ(g2.size(), 1u);
  t += kTtl;
  ReclaimOutcome r = q().ExpireLeases(t).value();
  EXPECT_EQ(r.requeued, 0u);
  EXPECT_EQ(r.failed_items, std::vector<int64_t>{id});
  WorkItem item = q().GetItem(id).value();
  EXPECT_EQ(item.state, WorkState::kFailed);
  EXPECT_EQ(item.error, absl::StrCat("lease ", g2[0].lease_id, " (worker w2) expired on attempt 2 of 2"));
  EXPECT_EQ(item.result_seq, 1);
  EXPECT_TRUE(Lease("w3", 1, t).empty());
  EXPECT_EQ(Counters().failed, 1u);
  // A very late result for a failed item is discarded.
  EXPECT_EQ(Complete(g2[0].lease_id, "r", t).status, v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED);
}

TEST_F(LeaseQueueTest, ReleaseWorkerRequeuesAtOnceKeepingListed) {
  ASSERT_TRUE(q().Enqueue({Work("a"), Work("b"), Work("c")}, kT0).ok());
  auto g = Lease("dead", 3, kT0);
  ASSERT_EQ(g.size(), 3u);
  const std::string keep[] = {g[1].lease_id};
  ReclaimOutcome r = q().ReleaseWorker("dead", kT0 + absl::Seconds(1), keep).value();
  EXPECT_EQ(r.requeued, 2u);
  ASSERT_EQ(r.leases.size(), 2u);
  auto again = Lease("alive", 5, kT0 + absl::Seconds(1));
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].payload, "a");
  EXPECT_EQ(again[1].payload, "c");
  EXPECT_EQ(again[0].attempt, 2u);
  QueueCounters c = Counters();
  EXPECT_EQ(c.leases_released, 2u);
  EXPECT_EQ(c.leases_outstanding, 3u);
  EXPECT_EQ(q().ActiveLeases("dead").value().size(), 1u);
}

TEST_F(LeaseQueueTest, HeartbeatRenewsOwnActiveLeasesOnly) {
  ASSERT_TRUE(q().Enqueue({Work("a"), Work("b")}, kT0).ok());
  auto mine = Lease("w1", 1, kT0);
  auto theirs = Lease("w2", 1, kT0);
  const absl::Time t = kT0 + absl::Seconds(20);
  const std::string ids[] = {mine[0].lease_id, theirs[0].lease_id, "nope"};
  RenewOutcome r = q().Heartbeat("w1", ids, t, kTtl).value();
  EXPECT_EQ(r.renewed, std::vector<std::string>{mine[0].lease_id});
  ASSERT_EQ(r.rejected.size(), 2u);
  EXPECT_EQ(r.rejected[0].second, "held by worker w2");
  EXPECT_EQ(r.rejected[1].second, "unknown lease");
  // w1's lease now lives until t + ttl; w2's expires at kT0 + ttl.
  ReclaimOutcome e = q().ExpireLeases(kT0 + kTtl).value();
  ASSERT_EQ(e.leases.size(), 1u);
  EXPECT_EQ(e.leases[0].lease_id, theirs[0].lease_id);
  // A renewal that comes too late is refused, and the lease reclaimed.
  const std::string late[] = {mine[0].lease_id};
  RenewOutcome too_late = q().Heartbeat("w1", late, t + kTtl, kTtl).value();
  EXPECT_TRUE(too_late.renewed.empty());
  ASSERT_EQ(too_late.rejected.size(), 1u);
  EXPECT_EQ(too_late.rejected[0].second, "lease is expired");
  EXPECT_EQ(Counters().queued, 2u);
}

TEST_F(LeaseQueueTest, FailRetryableRequeuesNonRetryableFails) {
  const int64_t a = q().Enqueue(Work("a"), kT0).value();
  const int64_t b = q().Enqueue(Work("b"), kT0).value();
  auto g = Lease("w1", 2, kT0);
  CompletionOutcome ra = q().Fail(g[0].lease_id, LeaseFailure{14, "sampler restarted", true}, kT0).value();
  EXPECT_EQ(ra.status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  EXPECT_EQ(ra.message, "error recorded; the work is queued again");
  EXPECT_EQ(q().GetItem(a).value().state, WorkState::kQueued);
  CompletionOutcome rb = q().Fail(g[1].lease_id, LeaseFailure{3, "prompt too long", false}, kT0).value();
  EXPECT_EQ(rb.message, "error recorded; the work failed");
  WorkItem item_b = q().GetItem(b).value();
  EXPECT_EQ(item_b.state, WorkState::kFailed);
  EXPECT_EQ(item_b.error, "worker w1 attempt 1: code 3: prompt too long");
  EXPECT_EQ(q().Fail(g[1].lease_id, LeaseFailure{3, "again", false}, kT0).value().status,
            v1::LEASE_RESULT_STATUS_DUPLICATE);
}

TEST_F(LeaseQueueTest, ResultsAfterGivesFinishedItemsInOrder) {
  ASSERT_TRUE(q().Enqueue({Work("a"), Work("b"), Work("c")}, kT0).ok());
  auto g = Lease("w", 3, kT0);
  ASSERT_EQ(Complete(g[2].lease_id, "rc", kT0).status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  ASSERT_EQ(Complete(g[0].lease_id, "ra", kT0).status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  auto all = q().ResultsAfter(0, 10).value();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].result, "rc");
  EXPECT_EQ(all[1].result, "ra");
  auto next = q().ResultsAfter(all[0].result_seq, 10).value();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].result, "ra");
}

TEST_F(LeaseQueueTest, CancelAllCancelsQueuedAndActive) {
  ASSERT_TRUE(q().Enqueue({Work("a"), Work("b")}, kT0).ok());
  auto g = Lease("w", 1, kT0);
  ReclaimOutcome r = q().CancelAll(kT0, "cancelled by user").value();
  ASSERT_EQ(r.leases.size(), 1u);
  EXPECT_EQ(r.leases[0].lease_id, g[0].lease_id);
  QueueCounters c = Counters();
  EXPECT_EQ(c.cancelled, 2u);
  EXPECT_EQ(c.leases_outstanding, 0u);
  EXPECT_EQ(Complete(g[0].lease_id, "r", kT0).status, v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED);
}

TEST_F(LeaseQueueTest, BadArgumentsNameTheField) {
  EXPECT_EQ(std::string(q().Lease("", 1, kT0, kTtl).status().message()),
            "worker_id: 0 bytes not in [1, max_id_bytes 128]");
  EXPECT_EQ(std::string(q().Lease("w", 0, kT0, kTtl).status().message()),
            "max_items: 0 not in [1, max_leases_per_call 256]");
  EXPECT_EQ(std::string(q().Lease("w", 1, kT0, absl::ZeroDuration()).status().message()),
            "lease_duration: 0 is not positive");
  WorkItemSpec w = Work("x");
  w.key = std::string(129, 'k');
  EXPECT_EQ(std::string(q().Enqueue(w, kT0).status().message()), "work[0].key: 129 bytes > max_id_bytes 128");
}

// A new RunStore on the same file (a restarted coordinator) keeps every
// accepted result, never serves a finished item or a lease id again, and
// lets a reconnecting worker renew the leases it still holds.
TEST_F(LeaseQueueTest, RestartKeepsResultsAndNeverReservesOrReusesLeases) {
  ASSERT_TRUE(q().Enqueue({Work("a"), Work("b"), Work("c"), Work("d")}, kT0).ok());
  auto g = Lease("w1", 3, kT0);
  ASSERT_EQ(g.size(), 3u);
  ASSERT_EQ(Complete(g[0].lease_id, "ra", kT0).status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  Reopen();  // the coordinator restarts
  // The result is still there, its resend is still a duplicate.
  EXPECT_EQ(q().GetItem(g[0].item_id).value().result, "ra");
  EXPECT_EQ(Complete(g[0].lease_id, "ra", kT0).status, v1::LEASE_RESULT_STATUS_DUPLICATE);
  // w1 reconnects holding g[1] only (Hello.active_lease_ids): renew it, release the rest.
  const std::string held[] = {g[1].lease_id};
  EXPECT_EQ(q().Heartbeat("w1", held, kT0 + absl::Seconds(5), kTtl).value().renewed.size(), 1u);
  EXPECT_EQ(q().ReleaseWorker("w1", kT0 + absl::Seconds(5), held).value().requeued, 1u);
  std::set<std::string> ids = {g[0].lease_id, g[1].lease_id, g[2].lease_id};
  auto g2 = Lease("w2", 10, kT0 + absl::Seconds(5));
  ASSERT_EQ(g2.size(), 2u);  // c (requeued, older) then d; never a or b
  EXPECT_EQ(g2[0].payload, "c");
  EXPECT_EQ(g2[1].payload, "d");
  for (const auto& x : g2) EXPECT_TRUE(ids.insert(x.lease_id).second) << "lease id reused: " << x.lease_id;
  EXPECT_EQ(Complete(g[1].lease_id, "rb", kT0 + absl::Seconds(6)).status, v1::LEASE_RESULT_STATUS_ACCEPTED);
  EXPECT_EQ(Counters().done, 2u);
}

TEST_F(LeaseQueueTest, LeaseIdsFromAnotherStateDbAreUnknown) {
  ASSERT_TRUE(q().Enqueue(Work("a"), kT0).ok());
  auto g = Lease("w1", 1, kT0);
  TestDir other_dir;
  auto other = RunStore::Open(other_dir.File("state.db"), options_).value();
  ASSERT_TRUE(other->queue().Enqueue(Work("z"), kT0).ok());
  auto og = other->queue().Lease("w1", 1, kT0, kTtl).value();
  ASSERT_EQ(og.size(), 1u);
  EXPECT_NE(og[0].lease_id, g[0].lease_id);  // same item id and attempt, different db_id
  EXPECT_EQ(other->queue().Complete(g[0].lease_id, "r", kT0).value().status, v1::LEASE_RESULT_STATUS_UNKNOWN_LEASE);
}

// Several threads share one RunStore (one connection, serialised by
// StateDb's mutex): every item is accepted exactly once.
TEST_F(LeaseQueueTest, ThreadsLeaseAndCompleteEachItemOnce) {
  constexpr int kItems = 400;
  constexpr int kThreads = 8;
  std::vector<WorkItemSpec> work;
  for (int i = 0; i < kItems; ++i) work.push_back(Work(absl::StrCat("p", i)));
  ASSERT_TRUE(q().Enqueue(work, kT0).ok());
  std::atomic<int> accepted{0}, duplicate{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string worker = absl::StrCat("w", t);
      while (true) {
        auto g = q().Lease(worker, 7, kT0, kTtl);
        if (!g.ok()) {
          ++errors;
          return;
        }
        if (g->empty()) return;
        for (const LeaseGrantInfo& x : *g) {
          for (int k = 0; k < 2; ++k) {  // every result sent twice
            auto c = q().Complete(x.lease_id, "r" + x.payload, kT0);
            if (!c.ok()) {
              ++errors;
            } else if (c->status == v1::LEASE_RESULT_STATUS_ACCEPTED) {
              ++accepted;
            } else if (c->status == v1::LEASE_RESULT_STATUS_DUPLICATE) {
              ++duplicate;
            }
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(accepted.load(), kItems);
  EXPECT_EQ(duplicate.load(), kItems);
  QueueCounters c = Counters();
  EXPECT_EQ(c.done, static_cast<uint64_t>(kItems));
  uint64_t per_worker = 0;
  for (const auto& [w, n] : c.completed_by_worker) per_worker += n;
  EXPECT_EQ(per_worker, static_cast<uint64_t>(kItems));
  auto results = q().ResultsAfter(0, kItems + 1).value();
  ASSERT_EQ(results.size(), static_cast<size_t>(kItems));
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].result_seq, static_cast<int64_t>(i + 1));
    EXPECT_EQ(results[i].result, "r" + results[i].payload);
  }
}

}  // namespace
}  // namespace dsm
