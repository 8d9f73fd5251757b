// StateDb: a thin RAII wrapper over one SQLite connection, for the
// coordinator's run state (runs/<name>/state.db).
//
//   auto db = StateDb::Open(path, {}, migrations).value();
//   absl::Status s = db->Write([&](StateDb::Connection& c) -> absl::Status {
//     auto st = c.Prepare("INSERT INTO cursors(name, position) VALUES (?1, ?2)");
//     if (!st.ok()) return st.status();
//     st->BindText(1, "phase2/problems").BindInt(2, 17);
//     return st->Run();
//   });  // committed if the body returned OK, rolled back otherwise
//
// Crash safety. The database runs in WAL mode with synchronous=FULL:
//  - WAL: a transaction is committed atomically by appending to the -wal file;
//    a process killed (kill -9) in the middle of a transaction leaves frames
//    without a commit record, which the next open ignores, so the database is
//    always exactly the state after the last COMMIT. Readers never block the
//    writer either (a CLI can read state.db while the coordinator runs).
//  - synchronous=FULL fsyncs the WAL at every COMMIT. kill -9 alone would be
//    survived by NORMAL too (the OS keeps the written pages), but a power cut
//    or kernel crash would then lose the last commits, and the coordinator
//    tells a worker ACCEPTED ("you may forget it") only after COMMIT returns:
//    the result must be on disk by then. Options::synchronous_full = false
//    trades that for speed (tests, benchmarks).
//
// Errors come back as absl::Status; the message names the statement (its
// first words, e.g. "INSERT INTO leases"), e.g.
// "sqlite: INSERT INTO leases: UNIQUE constraint failed: leases.lease_id".
// SQLITE_BUSY/LOCKED (another process holds the write lock past the busy
// timeout) is UNAVAILABLE, a constraint violation FAILED_PRECONDITION, a full
// disk RESOURCE_EXHAUSTED, a corrupt file DATA_LOSS, anything else INTERNAL.
//
// Schema versioning: Open() applies, in order, each migration whose version
// is above PRAGMA user_version, each in its own transaction that also sets
// user_version; a file whose user_version is above the newest migration (a
// newer dsm wrote it) is refused with FAILED_PRECONDITION.
//
// Thread safety: StateDb is thread-safe. It holds ONE connection, used under
// one mutex: Write() and Read() run their bodies one at a time (SQLite
// serialises writers anyway; reads here are short). Connection and Statement
// objects must not escape the body they were handed to. Several processes
// may open the same file; the busy timeout arbitrates the write lock.
#ifndef DSM_SERVICES_COORDINATOR_STATE_DB_H_
#define DSM_SERVICES_COORDINATOR_STATE_DB_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct sqlite3;
struct sqlite3_stmt;

namespace dsm {

// One schema step: SQL run once when user_version < version.
struct StateDbMigration {
  int version = 0;  // 1, 2, 3, ... without gaps
  std::string sql;  // one or more statements
};

class StateDb {
 public:
  struct Options {
    absl::Duration busy_timeout = absl::Seconds(10);  // wait for another process's write lock
    bool synchronous_full = true;                     // see the header comment
    bool create = true;                               // false: a missing file is NOT_FOUND
  };

  // A prepared statement borrowed from the connection's cache. Bindings are
  // 1-based (?1, ?2, ...). On destruction the statement is reset and its
  // bindings cleared, ready for the next Prepare of the same SQL. A binding
  // error is kept and returned by the next Step()/Run(). Do not hold two
  // Statements of the same SQL text at once (they share one sqlite3_stmt).
  class Statement {
   public:
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    ~Statement();

    Statement& BindInt(int index, int64_t value);
    Statement& BindDouble(int index, double value);
    Statement& BindText(int index, absl::string_view value);
    Statement& BindBlob(int index, absl::string_view bytes);
    Statement& BindNull(int index);

    // Advances: true = a row is available, false = done.
    absl::StatusOr<bool> Step();
    // Steps to the end, ignoring rows (INSERT, UPDATE, DELETE).
    absl::Status Run();

    // Column accessors (0-based) for the current row.
    int64_t ColumnInt(int column) const;
    double ColumnDouble(int column) const;
    std::string ColumnText(int column) const;
    std::string ColumnBlob(int column) const;
    bool ColumnIsNull(int column) const;

    const std::string& label() const { return *label_; }

   private:
    friend class StateDb;
    Statement(sqlite3* db, sqlite3_stmt* stmt, const std::string* label);
    void NoteBind(int rc, int index);

    sqlite3* db_;
    sqlite3_stmt* stmt_;
    const std::string* label_;
    absl::Status bind_error_;
  };

  // The connection as seen inside Write()/Read().
  class Connection {
   public:
    // A cached prepared statement for `sql` (prepared on first use).
    absl::StatusOr<Statement> Prepare(absl::string_view sql);
    // Runs SQL without parameters (may hold several statements).
    absl::Status Exec(absl::string_view sql);
    int64_t LastInsertRowId() const;
    // Rows changed by the last INSERT/UPDATE/DELETE.
    int64_t Changes() const;

   private:
    friend class StateDb;
    explicit Connection(StateDb* db) : db_(db) {}
    StateDb* db_;
  };

  // Opens (creating unless options.create is false) and migrates.
  static absl::StatusOr<std::unique_ptr<StateDb>> Open(const std::string& path, const Options& options,
                                                       absl::Span<const StateDbMigration> migrations);
  ~StateDb();
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  // Runs `body` in BEGIN IMMEDIATE ... COMMIT. If body returns an error, or
  // COMMIT fails, the transaction is rolled back and the error returned.
  absl::Status Write(absl::FunctionRef<absl::Status(Connection&)> body) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `body` in a read transaction (one consistent snapshot).
  absl::Status Read(absl::FunctionRef<absl::Status(Connection&)> body) ABSL_LOCKS_EXCLUDED(mu_);

  // PRAGMA user_version after the migrations.
  int schema_version() const { return schema_version_; }
  const std::string& path() const { return path_; }

 private:
  StateDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Transaction(const char* begin, absl::FunctionRef<absl::Status(Connection&)> body);
  absl::Status Migrate(absl::Span<const StateDbMigration> migrations);
  absl::Status ExecLocked(absl::string_view sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  sqlite3* const db_;
  const std::string path_;
  int schema_version_ = 0;
  // SQL text -> prepared statement, and its label for error messages. Node
  // addresses are stable (std::map), so Statement may point at the label.
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    std::string label;
  };
  std::map<std::string, Cached, std::less<>> statements_ ABSL_GUARDED_BY(mu_);
};

// The first words of a statement, for error messages: "INSERT INTO leases".
std::string StatementLabel(absl::string_view sql);

}  // namespace dsm

// Early returns for the coordinator's store code (bodies of Write/Read).
#define DSM_RETURN_IF_ERROR(expr)              \
  do {                                         \
    absl::Status dsm_status_ = (expr);         \
    if (!dsm_status_.ok()) return dsm_status_; \
  } while (0)
#define DSM_CONCAT_INNER_(a, b) a##b
#define DSM_CONCAT_(a, b) DSM_CONCAT_INNER_(a, b)
#define DSM_ASSIGN_OR_RETURN(lhs, expr) DSM_ASSIGN_OR_RETURN_IMPL_(DSM_CONCAT_(dsm_statusor_, __LINE__), lhs, expr)
#define DSM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

#endif  // DSM_SERVICES_COORDINATOR_STATE_DB_H_
