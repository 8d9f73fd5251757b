// Crash safety: a child process works the lease queue and is killed
// (SIGKILL) mid-run or inside an open transaction; the parent reopens the
// same state.db and checks that every result the child reported as accepted
// is there, that the queue is consistent, and that finishing the work counts
// every item exactly once.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/coordinator/run_store.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

constexpr int kItems = 60;
const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
const absl::Duration kTtl = absl::Seconds(30);

RunStoreOptions Options() {
  RunStoreOptions o;
  o.db.synchronous_full = true;  // the production setting
  return o;
}

void EnqueueAll(const std::string& path) {
  auto store = RunStore::Open(path, Options()).value();
  std::vector<WorkItemSpec> work;
  for (int i = 0; i < kItems; ++i) {
    WorkItemSpec w;
    w.payload = absl::StrCat("p", i);
    work.push_back(w);
  }
  ASSERT_TRUE(store->queue().Enqueue(work, kT0).ok());
}

// The child: lease 2 at a time, complete each, report each accepted lease id
// on `fd` after Complete() returned. With `die_in_transaction`, after
// `stop_after` results it opens a transaction that marks everything done and
// kills itself before COMMIT.
[[noreturn]] void Child(const std::string& path, int fd, int stop_after, bool die_in_transaction) {
  auto opened = RunStore::Open(path, Options());
  if (!opened.ok()) _exit(3);
  RunStore& store = **opened;
  int done = 0;
  while (true) {
    auto grants = store.queue().Lease("child", 2, kT0, kTtl);
    if (!grants.ok()) _exit(4);
    if (grants->empty()) _exit(0);
    for (const LeaseGrantInfo& g : *grants) {
      if (die_in_transaction && done == stop_after) {
        (void)store.db().Write([&](StateDb::Connection& c) -> absl::Status {
          (void)c.Exec("UPDATE work_items SET state = 2, result = x'00'");
          (void)c.Exec("INSERT INTO cursors (name, position, updated_us) VALUES ('torn', 1, 0)");
          raise(SIGKILL);
          return absl::OkStatus();
        });
        _exit(5);  // not reached
      }
      auto c = store.queue().Complete(g.lease_id, "r" + g.payload, kT0);
      if (!c.ok() || c->status != v1::LEASE_RESULT_STATUS_ACCEPTED) _exit(6);
      const std::string line = g.lease_id + "\n";
      if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(7);
      ++done;
    }
  }
}

// Reads lease ids from the pipe; with kill_after > 0, SIGKILLs the child
// after that many.
std::set<std::string> Collect(pid_t pid, int fd, int kill_after, int* wait_status) {
  std::set<std::string> ids;
  FILE* in = fdopen(fd, "r");
  char buf[256];
  while (fgets(buf, sizeof(buf), in) != nullptr) {
    std::string id(buf);
    if (!id.empty() && id.back() == '\n') id.pop_back();
    ids.insert(id);
    if (kill_after > 0 && static_cast<int>(ids.size()) == kill_after) kill(pid, SIGKILL);
  }
  fclose(in);
  waitpid(pid, wait_status, 0);
  return ids;
}

int64_t QueryInt(RunStore& store, const std::string& sql) {
  int64_t v = -1;
  EXPECT_TRUE(store.db()
                  .Read([&](StateDb::Connection& c) -> absl::Status {
                    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare(sql));
                    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
                    EXPECT_TRUE(row) << sql;
                    v = st.ColumnInt(0);
                    return absl::OkStatus();
                  })
                  .ok())
      << sql;
  return v;
}

// Consistency of a reopened store, then finishing the work after the crash.
void CheckAndFinish(const std::string& path, const std::set<std::string>& reported) {
  auto store = RunStore::Open(path, Options()).value();
  std::string integrity;
  ASSERT_TRUE(store->db()
                  .Read([&](StateDb::Connection& c) -> absl::Status {
                    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("PRAGMA integrity_check"));
                    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
                    (void)row;
                    integrity = st.ColumnText(0);
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(integrity, "ok");
  EXPECT_EQ(QueryInt(*store, "SELECT COUNT(*) FROM cursors WHERE name = 'torn'"), 0);
  // Every result reported as accepted survived, with its own payload.
  for (const std::string& id : reported) {
    EXPECT_EQ(QueryInt(*store,
                       "SELECT COUNT(*) FROM work_items w JOIN leases l ON l.item_id = w.item_id "
                       "WHERE l.lease_id = '" +
                           id +
                           "' AND l.state = 1 AND w.state = 2 AND "
                           "w.accepted_lease_id = l.lease_id AND w.result = CAST('r' || w.payload AS BLOB)"),
              1)
        << id;
  }
  // Invariants: a done item has exactly one completed lease; a leased item
  // exactly one active lease; result_seq has no gaps.
  EXPECT_EQ(QueryInt(*store,
                     "SELECT COUNT(*) FROM work_items w WHERE w.state = 2 AND "
                     "(SELECT COUNT(*) FROM leases l WHERE l.item_id = w.item_id AND l.state = 1) != 1"),
            0);
  EXPECT_EQ(QueryInt(*store,
                     "SELECT COUNT(*) FROM work_items w WHERE w.state = 1 AND "
                     "(SELECT COUNT(*) FROM leases l WHERE l.item_id = w.item_id AND l.state = 0) != 1"),
            0);
  const int64_t done = QueryInt(*store, "SELECT COUNT(*) FROM work_items WHERE state = 2");
  EXPECT_GE(done, static_cast<int64_t>(reported.size()));
  EXPECT_EQ(QueryInt(*store, "SELECT COALESCE(MAX(result_seq), 0) FROM work_items"), done);

  // The restarted coordinator: the dead child's leases expire, another worker finishes.
  ASSERT_TRUE(store->queue().ExpireLeases(kT0 + kTtl).ok());
  std::set<int64_t> served;
  while (true) {
    auto grants = store->queue().Lease("after", 8, kT0 + kTtl, kTtl).value();
    if (grants.empty()) break;
    for (const LeaseGrantInfo& g : grants) {
      EXPECT_TRUE(served.insert(g.item_id).second) << "item served twice after restart: " << g.item_id;
      EXPECT_EQ(store->queue().Complete(g.lease_id, "r" + g.payload, kT0 + kTtl).value().status,
                v1::LEASE_RESULT_STATUS_ACCEPTED);
    }
  }
  EXPECT_EQ(static_cast<int64_t>(served.size()), kItems - done);
  QueueCounters c = store->queue().Counters().value();
  EXPECT_EQ(c.done, static_cast<uint64_t>(kItems));
  EXPECT_EQ(c.completed_by_worker["child"] + c.completed_by_worker["after"], static_cast<uint64_t>(kItems));
  EXPECT_EQ(QueryInt(*store, "SELECT COUNT(*) FROM leases WHERE state = 1"), kItems);
}

TEST(CoordinatorCrash, KilledWhileWorkingLosesNoAcceptedResult) {
  TestDir dir;
  const std::string path = dir.File("state.db");
  EnqueueAll(path);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    Child(path, fds[1], 0, false);
  }
  close(fds[1]);
  int status = 0;
  const std::set<std::string> reported = Collect(pid, fds[0], 15, &status);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status) << " before the kill";
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_GE(reported.size(), 15u);
  CheckAndFinish(path, reported);
}

TEST(CoordinatorCrash, KilledInsideATransactionLeavesTheLastCommit) {
  TestDir dir;
  const std::string path = dir.File("state.db");
  EnqueueAll(path);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    Child(path, fds[1], 21, true);
  }
  close(fds[1]);
  int status = 0;
  const std::set<std::string> reported = Collect(pid, fds[0], 0, &status);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(reported.size(), 21u);
  CheckAndFinish(path, reported);
}

}  // namespace
}  // namespace dsm
