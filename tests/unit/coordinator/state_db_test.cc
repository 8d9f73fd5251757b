// StateDb: opening, migrations, transactions, errors that name the statement.
#include "services/coordinator/state_db.h"

#include <sqlite3.h>

#include "gtest/gtest.h"
#include "services/coordinator/run_schema.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

const std::vector<StateDbMigration> kV1 = {
    {1, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT;"}};
const std::vector<StateDbMigration> kV2 = {kV1[0],
                                           {2, "ALTER TABLE items ADD COLUMN weight REAL NOT NULL DEFAULT 1.5;"}};

absl::Status Insert(StateDb& db, const std::string& name) {
  return db.Write([&](StateDb::Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("INSERT INTO items (name) VALUES (?1)"));
    st.BindText(1, name);
    return st.Run();
  });
}

int64_t Count(StateDb& db) {
  int64_t n = -1;
  EXPECT_TRUE(db.Read([&](StateDb::Connection& c) -> absl::Status {
                  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT COUNT(*) FROM items"));
                  DSM_ASSIGN_OR_RETURN(bool row, st.Step());
                  EXPECT_TRUE(row);
                  n = st.ColumnInt(0);
                  return absl::OkStatus();
                }).ok());
  return n;
}

std::string Pragma(StateDb& db, const std::string& name) {
  std::string value;
  EXPECT_TRUE(db.Read([&](StateDb::Connection& c) -> absl::Status {
                  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("PRAGMA " + name));
                  DSM_ASSIGN_OR_RETURN(bool row, st.Step());
                  EXPECT_TRUE(row);
                  value = st.ColumnText(0);
                  return absl::OkStatus();
                }).ok());
  return value;
}

TEST(StateDb, CreatesWithWalAndSchemaVersion) {
  TestDir dir;
  auto db = StateDb::Open(dir.File("a.db"), {}, kV1);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ((*db)->schema_version(), 1);
  EXPECT_EQ(Pragma(**db, "journal_mode"), "wal");
  EXPECT_EQ(Pragma(**db, "synchronous"), "2");  // FULL
  EXPECT_EQ(Pragma(**db, "foreign_keys"), "1");
  EXPECT_EQ(Pragma(**db, "user_version"), "1");
}

TEST(StateDb, SynchronousNormalWhenAsked) {
  TestDir dir;
  StateDb::Options options;
  options.synchronous_full = false;
  auto db = StateDb::Open(dir.File("a.db"), options, kV1);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(Pragma(**db, "synchronous"), "1");  // NORMAL
}

TEST(StateDb, ReopenKeepsDataAndMigratesForward) {
  TestDir dir;
  {
    auto db = StateDb::Open(dir.File("a.db"), {}, kV1).value();
    ASSERT_TRUE(Insert(*db, "x").ok());
  }
  auto db = StateDb::Open(dir.File("a.db"), {}, kV2);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ((*db)->schema_version(), 2);
  EXPECT_EQ(Count(**db), 1);
  double weight = 0;
  ASSERT_TRUE((*db)
                  ->Read([&](StateDb::Connection& c) -> absl::Status {
                    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT weight FROM items WHERE name = 'x'"));
                    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
                    EXPECT_TRUE(row);
                    weight = st.ColumnDouble(0);
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(weight, 1.5);
  // Opening again runs nothing twice (ALTER TABLE would fail on a second run).
  db->reset();
  auto again = StateDb::Open(dir.File("a.db"), {}, kV2);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Count(**again), 1);
}

TEST(StateDb, RefusesNewerSchema) {
  TestDir dir;
  { ASSERT_TRUE(StateDb::Open(dir.File("a.db"), {}, kV2).ok()); }
  auto db = StateDb::Open(dir.File("a.db"), {}, kV1);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(db.status().message()),
            dir.File("a.db") + ": schema version 2 is newer than this dsm knows (1)");
}

TEST(StateDb, FailedMigrationLeavesVersionUnchanged) {
  TestDir dir;
  { ASSERT_TRUE(StateDb::Open(dir.File("a.db"), {}, kV1).ok()); }
  const std::vector<StateDbMigration> bad = {kV1[0], {2, "ALTER TABLE nope ADD COLUMN z INTEGER;"}};
  auto db = StateDb::Open(dir.File("a.db"), {}, bad);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(std::string(db.status().message()),
            "migration to schema version 2: sqlite: ALTER TABLE nope: no such table: nope");
  auto v1 = StateDb::Open(dir.File("a.db"), {}, kV1);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ((*v1)->schema_version(), 1);
}

TEST(StateDb, MissingFileWithoutCreateIsNotFound) {
  TestDir dir;
  StateDb::Options options;
  options.create = false;
  auto db = StateDb::Open(dir.File("none.db"), options, kV1);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kNotFound);
}

TEST(StateDb, BodyErrorRollsBackEverything) {
  TestDir dir;
  auto db = StateDb::Open(dir.File("a.db"), {}, kV1).value();
  absl::Status s = db->Write([&](StateDb::Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("INSERT INTO items (name) VALUES (?1)"));
    st.BindText(1, "a");
    DSM_RETURN_IF_ERROR(st.Run());
    return absl::InvalidArgumentError("stop");
  });
  EXPECT_EQ(s, absl::InvalidArgumentError("stop"));
  EXPECT_EQ(Count(*db), 0);
  // The connection is usable afterwards.
  EXPECT_TRUE(Insert(*db, "b").ok());
  EXPECT_EQ(Count(*db), 1);
}

TEST(StateDb, ConstraintErrorNamesStatementAndRollsBack) {
  TestDir dir;
  auto db = StateDb::Open(dir.File("a.db"), {}, kV1).value();
  ASSERT_TRUE(Insert(*db, "a").ok());
  absl::Status s = db->Write([&](StateDb::Connection& c) -> absl::Status {
    for (const char* name : {"b", "a"}) {  // "b" is fine, "a" violates UNIQUE: both roll back
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("INSERT INTO items (name) VALUES (?1)"));
      st.BindText(1, name);
      DSM_RETURN_IF_ERROR(st.Run());
    }
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(s.message()), "sqlite: INSERT INTO items: UNIQUE constraint failed: items.name");
  EXPECT_EQ(Count(*db), 1);
}

TEST(StateDb, PrepareErrorNamesStatement) {
  TestDir dir;
  auto db = StateDb::Open(dir.File("a.db"), {}, kV1).value();
  absl::Status s = db->Read(
      [&](StateDb::Connection& c) -> absl::Status { return c.Prepare("SELECT x FROM missing_table").status(); });
  EXPECT_EQ(std::string(s.message()), "sqlite: SELECT FROM missing_table: prepare: no such table: missing_table");
}

TEST(StateDb, BindErrorIsReportedByStep) {
  TestDir dir;
  auto db = StateDb::Open(dir.File("a.db"), {}, kV1).value();
  absl::Status s = db->Write([&](StateDb::Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("INSERT INTO items (name) VALUES (?1)"));
    st.BindText(1, "a").BindInt(7, 1);
    return st.Run();
  });
  EXPECT_EQ(std::string(s.message()), "sqlite: INSERT INTO items: binding ?7: column index out of range");
  EXPECT_EQ(Count(*db), 0);
}

TEST(StateDb, SecondWriterWaitsThenGetsUnavailable) {
  TestDir dir;
  StateDb::Options quick;
  quick.busy_timeout = absl::Milliseconds(50);
  auto a = StateDb::Open(dir.File("a.db"), quick, kV1).value();
  auto b = StateDb::Open(dir.File("a.db"), quick, kV1).value();
  absl::Status inner;
  ASSERT_TRUE(a->Write([&](StateDb::Connection&) -> absl::Status {
                 inner = Insert(*b, "x");  // a holds the write lock
                 return absl::OkStatus();
               }).ok());
  EXPECT_EQ(inner.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(inner.message()), "sqlite: BEGIN IMMEDIATE: database is locked");
  EXPECT_TRUE(Insert(*b, "x").ok());
}

TEST(StateDb, BlobsAndNullsRoundTrip) {
  TestDir dir;
  const std::vector<StateDbMigration> m = {{1, "CREATE TABLE t (b BLOB, n INTEGER) STRICT;"}};
  auto db = StateDb::Open(dir.File("a.db"), {}, m).value();
  const std::string bytes("a\0b\xff", 4);
  ASSERT_TRUE(db->Write([&](StateDb::Connection& c) -> absl::Status {
                  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("INSERT INTO t (b, n) VALUES (?1, ?2)"));
                  st.BindBlob(1, bytes).BindNull(2);
                  DSM_RETURN_IF_ERROR(st.Run());
                  DSM_ASSIGN_OR_RETURN(StateDb::Statement empty, c.Prepare("INSERT INTO t (b, n) VALUES (?1, 3)"));
                  empty.BindBlob(1, "");
                  return empty.Run();
                }).ok());
  ASSERT_TRUE(db->Read([&](StateDb::Connection& c) -> absl::Status {
                  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT b, n FROM t ORDER BY rowid"));
                  DSM_ASSIGN_OR_RETURN(bool row, st.Step());
                  EXPECT_TRUE(row);
                  EXPECT_EQ(st.ColumnBlob(0), bytes);
                  EXPECT_TRUE(st.ColumnIsNull(1));
                  DSM_ASSIGN_OR_RETURN(row, st.Step());
                  EXPECT_TRUE(row);
                  EXPECT_FALSE(st.ColumnIsNull(0));  // an empty blob, not NULL
                  EXPECT_EQ(st.ColumnBlob(0), "");
                  return absl::OkStatus();
                }).ok());
}

TEST(StateDb, StatementLabels) {
  EXPECT_EQ(StatementLabel("SELECT a, b FROM leases l JOIN x"), "SELECT FROM leases");
  EXPECT_EQ(StatementLabel("  INSERT OR IGNORE INTO cursors(name) VALUES (1)"), "INSERT INTO cursors");
  EXPECT_EQ(StatementLabel("UPDATE work_items SET state = 1"), "UPDATE work_items");
  EXPECT_EQ(StatementLabel("DELETE FROM evaluations WHERE x"), "DELETE FROM evaluations");
  EXPECT_EQ(StatementLabel("CREATE TABLE foo (a)"), "CREATE TABLE foo");
  EXPECT_EQ(StatementLabel("PRAGMA user_version=3"), "PRAGMA user_version=3");
}

TEST(StateDb, RunSchemaCreates) {
  TestDir dir;
  auto db = StateDb::Open(dir.File("state.db"), {}, RunStateMigrations());
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ((*db)->schema_version(), static_cast<int>(RunStateMigrations().size()));
}

}  // namespace
}  // namespace dsm
