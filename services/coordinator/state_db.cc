#include "services/coordinator/state_db.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dsm {
namespace {

absl::Status SqliteError(int rc, sqlite3* db, absl::string_view what) {
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = absl::StrCat("sqlite: ", what, ": ", detail);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CANTOPEN:
      return absl::NotFoundError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

std::string StatementLabel(absl::string_view sql) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(sql, absl::ByAnyChar(" \t\r\n(,;"), absl::SkipEmpty())) {
    words.emplace_back(w);
    if (words.size() >= 64) break;
  }
  if (words.empty()) return "(empty statement)";
  auto upper = [](const std::string& s) { return absl::AsciiStrToUpper(s); };
  const std::string first = upper(words[0]);
  auto word_after = [&](absl::string_view keyword) -> std::string {
    for (size_t i = 0; i + 1 < words.size(); ++i) {
      if (upper(words[i]) == keyword) return words[i + 1];
    }
    return "";
  };
  if (first == "SELECT") {
    std::string table = word_after("FROM");
    return table.empty() ? "SELECT" : absl::StrCat("SELECT FROM ", table);
  }
  if (first == "INSERT" || first == "REPLACE") return absl::StrCat(first, " INTO ", word_after("INTO"));
  if (first == "DELETE") return absl::StrCat("DELETE FROM ", word_after("FROM"));
  if (first == "UPDATE") return words.size() > 1 ? absl::StrCat("UPDATE ", words[1]) : "UPDATE";
  if (first == "CREATE" || first == "DROP" || first == "ALTER") {
    return absl::StrJoin(words.begin(), words.begin() + std::min<size_t>(words.size(), 3), " ");
  }
  return absl::StrJoin(words.begin(), words.begin() + std::min<size_t>(words.size(), 2), " ");
}

// ---------------------------------------------------------------------------
// Statement

StateDb::Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, const std::string* label)
    : db_(db), stmt_(stmt), label_(label) {}

StateDb::Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), label_(other.label_), bind_error_(std::move(other.bind_error_)) {
  other.stmt_ = nullptr;
}

StateDb::Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void StateDb::Statement::NoteBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = SqliteError(rc, db_, absl::StrCat(*label_, ": binding ?", index));
  }
}

StateDb::Statement& StateDb::Statement::BindInt(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

StateDb::Statement& StateDb::Statement::BindDouble(int index, double value) {
  NoteBind(sqlite3_bind_double(stmt_, index, value), index);
  return *this;
}

StateDb::Statement& StateDb::Statement::BindText(int index, absl::string_view value) {
  NoteBind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8), index);
  return *this;
}

StateDb::Statement& StateDb::Statement::BindBlob(int index, absl::string_view bytes) {
  // An empty blob is still a blob (not NULL): bind a zero-length one.
  if (bytes.empty()) {
    NoteBind(sqlite3_bind_zeroblob(stmt_, index, 0), index);
  } else {
    NoteBind(sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT), index);
  }
  return *this;
}

StateDb::Statement& StateDb::Statement::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

absl::StatusOr<bool> StateDb::Statement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, db_, *label_);
}

absl::Status StateDb::Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t StateDb::Statement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

double StateDb::Statement::ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }

std::string StateDb::Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
}

std::string StateDb::Statement::ColumnBlob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  if (data == nullptr) return "";
  return std::string(static_cast<const char*>(data), sqlite3_column_bytes(stmt_, column));
}

bool StateDb::Statement::ColumnIsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

// ---------------------------------------------------------------------------
// Connection (only reachable inside Write/Read, which hold mu_)

absl::StatusOr<StateDb::Statement> StateDb::Connection::Prepare(absl::string_view sql) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  auto it = db_->statements_.find(sql);
  if (it == db_->statements_.end()) {
    Cached cached;
    cached.label = StatementLabel(sql);
    const int rc = sqlite3_prepare_v3(db_->db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                      &cached.stmt, nullptr);
    if (rc != SQLITE_OK) {
      absl::Status status = SqliteError(rc, db_->db_, absl::StrCat(cached.label, ": prepare"));
      sqlite3_finalize(cached.stmt);
      return status;
    }
    it = db_->statements_.emplace(std::string(sql), std::move(cached)).first;
  }
  return Statement(db_->db_, it->second.stmt, &it->second.label);
}

absl::Status StateDb::Connection::Exec(absl::string_view sql) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  return db_->ExecLocked(sql);
}

int64_t StateDb::Connection::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_->db_); }

int64_t StateDb::Connection::Changes() const { return sqlite3_changes64(db_->db_); }

// ---------------------------------------------------------------------------
// StateDb

absl::StatusOr<std::unique_ptr<StateDb>> StateDb::Open(const std::string& path, const Options& options,
                                                       absl::Span<const StateDbMigration> migrations) {
  sqlite3* handle = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (options.create) flags |= SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &handle, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close_v2(handle);
    absl::Status status = SqliteError(rc, nullptr, absl::StrCat("open ", path));
    return absl::Status(status.code(), absl::StrCat("sqlite: open ", path, ": ", detail));
  }
  sqlite3_extended_result_codes(handle, 1);
  std::unique_ptr<StateDb> db(new StateDb(handle, path));
  sqlite3_busy_timeout(handle, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  {
    absl::MutexLock lock(&db->mu_);
    // journal_mode must be set outside a transaction; it is persistent in the file.
    absl::Status s = db->ExecLocked("PRAGMA journal_mode=WAL");
    if (s.ok()) s = db->ExecLocked(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    if (s.ok()) s = db->ExecLocked("PRAGMA foreign_keys=ON");
    if (!s.ok()) return s;
  }
  absl::Status migrated = db->Migrate(migrations);
  if (!migrated.ok()) return migrated;
  return db;
}

StateDb::~StateDb() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, cached] : statements_) sqlite3_finalize(cached.stmt);
  statements_.clear();
  sqlite3_close_v2(db_);
}

absl::Status StateDb::ExecLocked(absl::string_view sql) {
  char* error = nullptr;
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string detail = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  absl::Status status = SqliteError(rc, nullptr, StatementLabel(sql));
  return absl::Status(status.code(), absl::StrCat("sqlite: ", StatementLabel(sql), ": ", detail));
}

absl::Status StateDb::Transaction(const char* begin, absl::FunctionRef<absl::Status(Connection&)> body) {
  absl::MutexLock lock(&mu_);
  absl::Status status = ExecLocked(begin);
  if (!status.ok()) return status;
  Connection connection(this);
  status = body(connection);
  if (status.ok()) {
    status = ExecLocked("COMMIT");
    if (status.ok()) return status;
  }
  // ROLLBACK fails harmlessly if SQLite already rolled back (e.g. on a full disk).
  if (sqlite3_get_autocommit(db_) == 0) ExecLocked("ROLLBACK").IgnoreError();
  return status;
}

absl::Status StateDb::Write(absl::FunctionRef<absl::Status(Connection&)> body) {
  return Transaction("BEGIN IMMEDIATE", body);
}

absl::Status StateDb::Read(absl::FunctionRef<absl::Status(Connection&)> body) {
  return Transaction("BEGIN DEFERRED", body);
}

absl::Status StateDb::Migrate(absl::Span<const StateDbMigration> migrations) {
  int newest = 0;
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return absl::InvalidArgumentError(absl::StrCat("migrations[", i, "].version: ", migrations[i].version,
                                                     " should be ", i + 1, " (versions go 1, 2, 3, ...)"));
    }
    newest = migrations[i].version;
  }
  int current = 0;
  absl::Status status = Read([&](Connection& c) -> absl::Status {
    absl::StatusOr<Statement> st = c.Prepare("PRAGMA user_version");
    if (!st.ok()) return st.status();
    absl::StatusOr<bool> row = st->Step();
    if (!row.ok()) return row.status();
    current = *row ? static_cast<int>(st->ColumnInt(0)) : 0;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (current > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": schema version ", current, " is newer than this dsm knows (", newest, ")"));
  }
  for (const StateDbMigration& m : migrations) {
    if (m.version <= current) continue;
    status = Write([&](Connection& c) -> absl::Status {
      absl::Status s = c.Exec(m.sql);
      if (!s.ok()) {
        return absl::Status(s.code(), absl::StrCat("migration to schema version ", m.version, ": ", s.message()));
      }
      return c.Exec(absl::StrCat("PRAGMA user_version=", m.version));
    });
    if (!status.ok()) return status;
    current = m.version;
  }
  schema_version_ = current;
  return absl::OkStatus();
}

}  // namespace dsm
