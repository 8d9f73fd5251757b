// RunStore: one run's persistent state, runs/<name>/state.db (schema in
// run_schema.h). It owns the StateDb and the run's LeaseQueue, and keeps
//  - the run row (name, config YAML, RunState, Phase, iteration, progress,
//    error, times) and its numbered events (RunEvent, for WatchRun);
//  - evaluations (one per phase, iteration and point; a redo replaces);
//  - cursors: named positions, e.g. how far a phase has gone through a
//    dataset (CursorName) or through the queue's results (result_seq);
//  - datasets: problems, labelled proofs, labelled analyses (ImportRecords,
//    see dataset_import.h), auto-labels from phase 5 (AddAutoLabels: proofs
//    with labeller "auto" and their iteration);
//  - training groups and their samples (token ids, texts, reward and its
//    named parts, adapter version) with the learner's verdict.
//
// Carrying on after a restart: every step that consumes input and produces
// output is one transaction that also moves the cursor (RecordGroup and
// AddAutoLabels take an optional CursorUpdate), so a restarted coordinator
// resumes at the cursor and neither repeats nor skips a step. Groups not yet
// durable at the learner are found with GroupsWithStatus(PENDING/ACCEPTED)
// and re-sent (the learner de-duplicates by group_id).
//
// Thread-safe (all calls go through StateDb's serialised connection).
#ifndef DSM_SERVICES_COORDINATOR_RUN_STORE_H_
#define DSM_SERVICES_COORDINATOR_RUN_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "dsm/v1/coordinator.pb.h"
#include "dsm/v1/learner.pb.h"
#include "services/coordinator/dataset_import.h"
#include "services/coordinator/lease_queue.h"
#include "services/coordinator/state_db.h"

namespace dsm {

struct RunStoreOptions {
  StateDb::Options db;
  LeaseQueueOptions queue;
  ImportLimits limits;
};

// Move a named cursor in the same transaction as the write it goes with.
struct CursorUpdate {
  std::string name;
  int64_t position = 0;
};

struct StoredProblem {
  int64_t seq = 0;  // import order, from 1
  v1::ProblemRecord record;
};
struct StoredProof {
  int64_t seq = 0;
  uint32_t iteration = 0;  // 0 = imported; >= 1 = auto-labelled in that iteration
  v1::LabelledProof record;
};
struct StoredAnalysis {
  int64_t seq = 0;
  uint32_t iteration = 0;
  v1::LabelledAnalysis record;
};

struct DatasetCounts {
  uint64_t problems_train = 0;
  uint64_t problems_eval = 0;
  uint64_t proofs = 0;
  uint64_t auto_labelled_proofs = 0;
  uint64_t analyses = 0;
};

// Learner verdict of a stored training group (training_groups.status).
// PENDING = not yet acknowledged by the learner; the other values are
// v1::GroupStatus numbers.
constexpr int kGroupPending = 0;

// One sample of a group, with what the coordinator knows beyond ScoredSample.
struct SampleRecord {
  v1::ScoredSample sample;                     // tokens, log-probs, loss mask, version, reward, finish reason
  std::string prompt_text;                     // optional, for reports
  std::string completion_text;                 // optional
  std::map<std::string, double> reward_parts;  // e.g. "r_format", "r_score", "r_meta"
};

// A training group as stored.
struct GroupRecord {
  std::string group_id;  // ScoredGroup.group_id, unique in the run
  v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  uint32_t iteration = 0;
  std::string problem_id;
  int64_t item_id = 0;  // work item whose result it came from; 0 = none
  std::vector<int32_t> prompt_token_ids;
  std::vector<SampleRecord> samples;
  v1::Objective objective = v1::OBJECTIVE_UNSPECIFIED;  // ScoredGroup.objective
  std::optional<float> logprob_temperature;             // ScoredGroup.logprob_temperature
  std::string source;                                   // ScoredGroup.source
  int status = kGroupPending;                           // kGroupPending or a v1::GroupStatus
  uint64_t accept_sequence = 0;
};

// Problems by whether they have a proof labelled by someone other than phase 5.
enum class ProblemLabels { kAny = 0, kUnlabelled = 1, kLabelled = 2 };

class RunStore {
 public:
  // Opens (creating) the state database at `path` and migrates it.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const std::string& path, const RunStoreOptions& options);
  // runs_dir/<name>/state.db (the folder is created by Open if missing).
  static std::string StatePath(const std::string& runs_dir, const std::string& run_name);
  // 1 to 64 bytes of [a-z0-9_-], else INVALID_ARGUMENT naming "name".
  static absl::Status ValidateRunName(absl::string_view name);
  // e.g. "phase=2/iteration=1/problems".
  static std::string CursorName(v1::Phase phase, uint32_t iteration, absl::string_view dataset);

  StateDb& db() { return *db_; }
  LeaseQueue& queue() { return *queue_; }
  const RunStoreOptions& options() const { return options_; }

  // --- The run ------------------------------------------------------------
  // Creates the run row (state PENDING or RUNNING). ALREADY_EXISTS if there is one.
  absl::StatusOr<v1::RunStatus> CreateRun(const std::string& name, const std::string& config_yaml, v1::RunState state,
                                          absl::Time now);
  // The run with its evaluations and last event sequence (workers_connected
  // is the service's to fill). NOT_FOUND if no run was created.
  absl::StatusOr<v1::RunStatus> GetRun();
  // Changes the state, sets started_at (RUNNING), finished_at (terminal),
  // error (FAILED; cleared otherwise), and appends a RunStateChanged event.
  absl::StatusOr<v1::RunStatus> SetRunState(v1::RunState state, const std::string& message, absl::Time now);
  // Replaces the stored config (resume with a new config).
  absl::Status SetConfig(const std::string& config_yaml, absl::Time now);
  // Enters a phase (progress reset) and appends a PhaseStarted event.
  absl::Status StartPhase(v1::Phase phase, uint32_t iteration, absl::Time now);
  // Stores the phase progress (no event: append PhaseProgress events at the rate you want).
  absl::Status SetProgress(const v1::PhaseProgress& progress, absl::Time now);
  absl::Status SetReportPath(const std::string& path, absl::Time now);

  // --- Events -------------------------------------------------------------
  // Stores `event` with the next sequence number and `now` as its time (both
  // overwritten); returns the sequence.
  absl::StatusOr<uint64_t> AppendEvent(v1::RunEvent event, absl::Time now);
  // Events with sequence >= from_sequence (0 counts as 1), oldest first, at most limit.
  absl::StatusOr<std::vector<v1::RunEvent>> EventsFrom(uint64_t from_sequence, uint32_t limit);

  // --- Evaluations --------------------------------------------------------
  // Stores (replacing one of the same phase, iteration and point) and appends an Evaluation event.
  absl::Status RecordEvaluation(const v1::Evaluation& evaluation, absl::Time now);
  absl::StatusOr<std::vector<v1::Evaluation>> Evaluations();

  // --- Cursors ------------------------------------------------------------
  // The position, or 0 if the cursor was never set.
  absl::StatusOr<int64_t> GetCursor(const std::string& name);
  absl::Status SetCursor(const std::string& name, int64_t position, absl::Time now);

  // --- Datasets -----------------------------------------------------------
  // Imports in one transaction (see dataset_import.h for the rules).
  absl::StatusOr<v1::ImportRecordsResponse> ImportRecords(absl::Span<const v1::ImportRecordsRequest> records,
                                                          bool atomic);
  // Phase-5 labels: stored as proofs with labeller "auto" (unless set) and
  // `iteration`, all or nothing, with the optional cursor move.
  absl::Status AddAutoLabels(absl::Span<const v1::LabelledProof> labels, uint32_t iteration,
                             const std::optional<CursorUpdate>& cursor, absl::Time now);
  // Problems of `split` (UNSPECIFIED = both) with seq > after_seq, in import order; with
  // `labels`, only those with (kLabelled) or without (kUnlabelled) a labelled proof — a proof
  // labelled by anyone but phase 5 (labeller "auto").
  absl::StatusOr<std::vector<StoredProblem>> Problems(v1::DatasetSplit split, int64_t after_seq, uint32_t limit,
                                                      ProblemLabels labels = ProblemLabels::kAny);
  absl::StatusOr<std::vector<StoredProof>> Proofs(int64_t after_seq, uint32_t limit);
  absl::StatusOr<std::vector<StoredAnalysis>> Analyses(int64_t after_seq, uint32_t limit);
  // Every proof's / analysis's seq, in import order (a pass's PassOrder is drawn over them).
  absl::StatusOr<std::vector<int64_t>> ProofSeqs();
  absl::StatusOr<std::vector<int64_t>> AnalysisSeqs();
  // The records with these seqs, in the order given; a seq not stored is left out.
  absl::StatusOr<std::vector<StoredProof>> ProofsAt(absl::Span<const int64_t> seqs);
  absl::StatusOr<std::vector<StoredAnalysis>> AnalysesAt(absl::Span<const int64_t> seqs);
  absl::StatusOr<std::optional<v1::ProblemRecord>> GetProblem(const std::string& problem_id);
  absl::StatusOr<std::optional<v1::LabelledProof>> GetProof(const std::string& proof_id);
  // True if a stored proof has exactly this text for this problem (content de-duplication).
  absl::StatusOr<bool> HasProofText(const std::string& problem_id, const std::string& proof);
  absl::StatusOr<DatasetCounts> CountRecords();

  // --- Training groups and samples ----------------------------------------
  // Stores a group and its samples (and moves the cursor) in one
  // transaction. Idempotent: a group_id already stored is left as it is
  // (returns false); true if stored now.
  absl::StatusOr<bool> RecordGroup(const GroupRecord& group, const std::optional<CursorUpdate>& cursor, absl::Time now);
  // Records the learner's verdict.
  absl::Status SetGroupStatus(const std::string& group_id, int status, uint64_t accept_sequence);
  absl::StatusOr<std::optional<GroupRecord>> GetGroup(const std::string& group_id);
  // Groups with this status (and an accept_sequence above the given one),
  // oldest first (samples included), at most limit.
  absl::StatusOr<std::vector<GroupRecord>> GroupsWithStatus(int status, uint32_t limit,
                                                            uint64_t after_accept_sequence = 0);
  // The group as the learner wants it.
  static v1::ScoredGroup ToScoredGroup(const GroupRecord& group);

 private:
  RunStore(std::unique_ptr<StateDb> db, std::unique_ptr<LeaseQueue> queue, const RunStoreOptions& options)
      : db_(std::move(db)), queue_(std::move(queue)), options_(options) {}

  std::unique_ptr<StateDb> db_;
  std::unique_ptr<LeaseQueue> queue_;
  const RunStoreOptions options_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_RUN_STORE_H_
