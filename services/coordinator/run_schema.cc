#include "services/coordinator/run_schema.h"

namespace dsm {
namespace {

// Schema version 1. Enum columns hold the proto enum numbers (RunState,
// Phase, AdapterRole, DatasetSplit, EvaluationPoint, FinishReason) or the
// WorkState/LeaseState/WorkKind codes of run_schema.h.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE runs (
  name           TEXT PRIMARY KEY,
  config_yaml    TEXT NOT NULL,
  state          INTEGER NOT NULL,
  phase          INTEGER NOT NULL DEFAULT 0,
  iteration      INTEGER NOT NULL DEFAULT 0,
  progress_done  INTEGER NOT NULL DEFAULT 0,
  progress_total INTEGER NOT NULL DEFAULT 0,
  progress_unit  TEXT NOT NULL DEFAULT '',
  error          TEXT NOT NULL DEFAULT '',
  report_path    TEXT NOT NULL DEFAULT '',
  created_us     INTEGER NOT NULL,
  started_us     INTEGER,
  updated_us     INTEGER NOT NULL,
  finished_us    INTEGER
) STRICT;

CREATE TABLE run_events (
  sequence INTEGER PRIMARY KEY,
  time_us  INTEGER NOT NULL,
  event    BLOB NOT NULL
) STRICT;

CREATE TABLE evaluations (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  phase      INTEGER NOT NULL,
  iteration  INTEGER NOT NULL,
  point      INTEGER NOT NULL,
  evaluation BLOB NOT NULL,
  UNIQUE (phase, iteration, point)
) STRICT;

CREATE TABLE cursors (
  name       TEXT PRIMARY KEY,
  position   INTEGER NOT NULL,
  updated_us INTEGER NOT NULL
) STRICT;

CREATE TABLE problems (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  problem_id   TEXT NOT NULL UNIQUE,
  statement    TEXT NOT NULL,
  split        INTEGER NOT NULL,
  source       TEXT NOT NULL DEFAULT '',
  content_hash TEXT NOT NULL
) STRICT;
CREATE INDEX problems_by_split ON problems (split, seq);
CREATE INDEX problems_by_hash ON problems (content_hash);

CREATE TABLE proofs (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  proof_id     TEXT NOT NULL UNIQUE,
  problem_id   TEXT NOT NULL REFERENCES problems (problem_id),
  proof        TEXT NOT NULL,
  score        REAL NOT NULL,
  issue        TEXT NOT NULL DEFAULT '',
  labeller     TEXT NOT NULL,
  iteration    INTEGER NOT NULL DEFAULT 0,
  content_hash TEXT NOT NULL
) STRICT;
CREATE INDEX proofs_by_problem ON proofs (problem_id);
CREATE INDEX proofs_by_hash ON proofs (content_hash);

CREATE TABLE analyses (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  analysis_id  TEXT NOT NULL UNIQUE,
  proof_id     TEXT NOT NULL REFERENCES proofs (proof_id),
  analysis     TEXT NOT NULL,
  meta_score   REAL NOT NULL,
  issue        TEXT NOT NULL DEFAULT '',
  labeller     TEXT NOT NULL,
  iteration    INTEGER NOT NULL DEFAULT 0,
  content_hash TEXT NOT NULL
) STRICT;
CREATE INDEX analyses_by_proof ON analyses (proof_id);

CREATE TABLE work_items (
  item_id           INTEGER PRIMARY KEY AUTOINCREMENT,
  work_key          TEXT UNIQUE,
  kind              INTEGER NOT NULL,
  role              INTEGER NOT NULL,
  priority          INTEGER NOT NULL DEFAULT 0,
  phase             INTEGER NOT NULL DEFAULT 0,
  iteration         INTEGER NOT NULL DEFAULT 0,
  payload           BLOB NOT NULL,
  state             INTEGER NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL,
  enqueued_us       INTEGER NOT NULL,
  finished_us       INTEGER,
  accepted_lease_id TEXT,
  result            BLOB,
  error             TEXT NOT NULL DEFAULT '',
  result_seq        INTEGER UNIQUE
) STRICT;
CREATE INDEX work_items_queue ON work_items (state, priority DESC, item_id);

CREATE TABLE leases (
  lease_id     TEXT PRIMARY KEY,
  item_id      INTEGER NOT NULL REFERENCES work_items (item_id),
  worker_id    TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  granted_us   INTEGER NOT NULL,
  expires_us   INTEGER NOT NULL,
  state        INTEGER NOT NULL,
  answered_us  INTEGER,
  reclaimed    INTEGER NOT NULL DEFAULT 0,
  UNIQUE (item_id, attempt)
) STRICT;
CREATE INDEX leases_by_state ON leases (state, expires_us);
CREATE INDEX leases_by_worker ON leases (worker_id, state);
CREATE INDEX leases_by_item ON leases (item_id, state);

CREATE TABLE training_groups (
  group_id        TEXT PRIMARY KEY,
  role            INTEGER NOT NULL,
  phase           INTEGER NOT NULL,
  iteration       INTEGER NOT NULL,
  problem_id      TEXT NOT NULL DEFAULT '',
  item_id         INTEGER REFERENCES work_items (item_id),
  status          INTEGER NOT NULL DEFAULT 0,
  accept_sequence INTEGER NOT NULL DEFAULT 0,
  objective       INTEGER NOT NULL DEFAULT 0,
  logprob_temperature REAL,
  source          TEXT NOT NULL DEFAULT '',
  created_us      INTEGER NOT NULL
) STRICT;
CREATE INDEX training_groups_by_status ON training_groups (status, created_us);

CREATE TABLE samples (
  sample_id            INTEGER PRIMARY KEY AUTOINCREMENT,
  group_id             TEXT NOT NULL REFERENCES training_groups (group_id),
  sample_index         INTEGER NOT NULL,
  role                 INTEGER NOT NULL,
  prompt_token_ids     BLOB NOT NULL,
  completion_token_ids BLOB NOT NULL,
  behaviour_logprobs   BLOB NOT NULL,
  loss_mask            BLOB NOT NULL,
  prompt_text          TEXT NOT NULL DEFAULT '',
  completion_text      TEXT NOT NULL DEFAULT '',
  reward               REAL NOT NULL,
  adapter_version      INTEGER NOT NULL,
  finish_reason        INTEGER NOT NULL DEFAULT 0,
  created_us           INTEGER NOT NULL,
  UNIQUE (group_id, sample_index)
) STRICT;

CREATE TABLE sample_rewards (
  sample_id INTEGER NOT NULL REFERENCES samples (sample_id),
  name      TEXT NOT NULL,
  value     REAL NOT NULL,
  PRIMARY KEY (sample_id, name)
) STRICT;

INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(4))));
)sql";

}  // namespace

const std::vector<StateDbMigration>& RunStateMigrations() {
  static const auto* migrations = new std::vector<StateDbMigration>{{1, kSchemaV1}};
  return *migrations;
}

const char* WorkStateName(WorkState state) {
  switch (state) {
    case WorkState::kQueued:
      return "queued";
    case WorkState::kLeased:
      return "leased";
    case WorkState::kDone:
      return "done";
    case WorkState::kFailed:
      return "failed";
    case WorkState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

const char* LeaseStateName(LeaseState state) {
  switch (state) {
    case LeaseState::kActive:
      return "active";
    case LeaseState::kCompleted:
      return "completed";
    case LeaseState::kExpired:
      return "expired";
    case LeaseState::kReleased:
      return "released";
    case LeaseState::kCancelled:
      return "cancelled";
    case LeaseState::kErrored:
      return "errored";
    case LeaseState::kDiscarded:
      return "discarded";
  }
  return "unknown";
}

}  // namespace dsm
