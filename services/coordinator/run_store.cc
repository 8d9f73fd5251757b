#include "services/coordinator/run_store.h"

#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/run_states.h"

namespace dsm {
namespace {

using Connection = StateDb::Connection;

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

void SetTimestamp(int64_t micros, google::protobuf::Timestamp* out) {
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest * 1000));
}


// Packed little-endian arrays (the hosts dsm runs on are little-endian).
template <typename T>
std::string PackArray(const T* data, size_t n) {
  return std::string(reinterpret_cast<const char*>(data), n * sizeof(T));
}
template <typename T, typename Container>
void UnpackArray(const std::string& bytes, Container* out) {
  const size_t n = bytes.size() / sizeof(T);
  out->Resize(static_cast<int>(n), T());
  if (n > 0) std::memcpy(out->mutable_data(), bytes.data(), n * sizeof(T));
}

absl::StatusOr<uint64_t> AppendEventIn(Connection& c, v1::RunEvent event, absl::Time now) {
  uint64_t sequence = 0;
  {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT COALESCE(MAX(sequence), 0) + 1 FROM run_events"));
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    (void)row;
    sequence = static_cast<uint64_t>(st.ColumnInt(0));
  }
  event.set_sequence(sequence);
  SetTimestamp(Micros(now), event.mutable_time());
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                       c.Prepare("INSERT INTO run_events (sequence, time_us, event) VALUES (?1, ?2, ?3)"));
  st.BindInt(1, static_cast<int64_t>(sequence)).BindInt(2, Micros(now)).BindBlob(3, event.SerializeAsString());
  DSM_RETURN_IF_ERROR(st.Run());
  return sequence;
}

absl::Status SetCursorIn(Connection& c, const CursorUpdate& cursor, absl::Time now) {
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                       c.Prepare("INSERT INTO cursors (name, position, updated_us) VALUES (?1, ?2, ?3) "
                                 "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
                                 "updated_us = excluded.updated_us"));
  st.BindText(1, cursor.name).BindInt(2, cursor.position).BindInt(3, Micros(now));
  return st.Run();
}

absl::StatusOr<std::vector<v1::Evaluation>> EvaluationsIn(Connection& c) {
  std::vector<v1::Evaluation> out;
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT evaluation FROM evaluations ORDER BY seq"));
  while (true) {
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    v1::Evaluation e;
    if (!e.ParseFromString(st.ColumnBlob(0))) return absl::DataLossError("evaluations: unparsable Evaluation");
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<v1::RunStatus> ReadRunIn(Connection& c) {
  v1::RunStatus status;
  {
    DSM_ASSIGN_OR_RETURN(
        StateDb::Statement st,
        c.Prepare("SELECT name, config_yaml, state, phase, iteration, progress_done, progress_total, progress_unit, "
                  "error, report_path, created_us, started_us, updated_us, finished_us FROM runs LIMIT 1"));
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return absl::NotFoundError("run: none created in this state.db");
    status.set_name(st.ColumnText(0));
    status.set_config_yaml(st.ColumnText(1));
    status.set_state(static_cast<v1::RunState>(st.ColumnInt(2)));
    status.set_phase(static_cast<v1::Phase>(st.ColumnInt(3)));
    status.set_iteration(static_cast<uint32_t>(st.ColumnInt(4)));
    v1::PhaseProgress* p = status.mutable_progress();
    p->set_phase(status.phase());
    p->set_iteration(status.iteration());
    p->set_done(static_cast<uint64_t>(st.ColumnInt(5)));
    p->set_total(static_cast<uint64_t>(st.ColumnInt(6)));
    p->set_unit(st.ColumnText(7));
    status.set_error(st.ColumnText(8));
    status.set_report_path(st.ColumnText(9));
    SetTimestamp(st.ColumnInt(10), status.mutable_created_at());
    if (!st.ColumnIsNull(11)) SetTimestamp(st.ColumnInt(11), status.mutable_started_at());
    SetTimestamp(st.ColumnInt(12), status.mutable_updated_at());
    if (!st.ColumnIsNull(13)) SetTimestamp(st.ColumnInt(13), status.mutable_finished_at());
  }
  {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT COALESCE(MAX(sequence), 0) FROM run_events"));
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    (void)row;
    status.set_last_event_sequence(static_cast<uint64_t>(st.ColumnInt(0)));
  }
  DSM_ASSIGN_OR_RETURN(std::vector<v1::Evaluation> evaluations, EvaluationsIn(c));
  for (v1::Evaluation& e : evaluations) *status.add_evaluations() = std::move(e);
  return status;
}

// Runs an UPDATE of the run row; NOT_FOUND if there is no run.
absl::Status UpdateRun(Connection& c, StateDb::Statement& st) {
  DSM_RETURN_IF_ERROR(st.Run());
  if (c.Changes() == 0) return absl::NotFoundError("run: none created in this state.db");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SampleRecord>> SamplesIn(Connection& c, const std::string& group_id,
                                                    std::vector<int32_t>* prompt) {
  std::vector<SampleRecord> out;
  std::vector<int64_t> ids;
  {
    DSM_ASSIGN_OR_RETURN(
        StateDb::Statement st,
        c.Prepare("SELECT sample_id, prompt_token_ids, completion_token_ids, behaviour_logprobs, prompt_text, "
                  "completion_text, reward, adapter_version, finish_reason, loss_mask FROM samples WHERE group_id = ?1 "
                  "ORDER BY sample_index"));
    st.BindText(1, group_id);
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      ids.push_back(st.ColumnInt(0));
      SampleRecord s;
      if (prompt->empty()) {
        google::protobuf::RepeatedField<int32_t> p;
        UnpackArray<int32_t>(st.ColumnBlob(1), &p);
        prompt->assign(p.begin(), p.end());
      }
      UnpackArray<int32_t>(st.ColumnBlob(2), s.sample.mutable_completion_token_ids());
      UnpackArray<float>(st.ColumnBlob(3), s.sample.mutable_behaviour_logprobs());
      s.prompt_text = st.ColumnText(4);
      s.completion_text = st.ColumnText(5);
      s.sample.set_reward(st.ColumnDouble(6));
      s.sample.set_adapter_version(static_cast<uint64_t>(st.ColumnInt(7)));
      s.sample.set_finish_reason(static_cast<v1::FinishReason>(st.ColumnInt(8)));
      for (char m : st.ColumnBlob(9)) s.sample.add_loss_mask(m != 0);
      out.push_back(std::move(s));
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT name, value FROM sample_rewards WHERE sample_id = ?1"));
    st.BindInt(1, ids[i]);
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out[i].reward_parts[st.ColumnText(0)] = st.ColumnDouble(1);
    }
  }
  return out;
}

#define DSM_GROUP_COLUMNS                                                                                    \
  "group_id, role, phase, iteration, problem_id, COALESCE(item_id, 0), status, accept_sequence, objective, " \
  "logprob_temperature, source"

GroupRecord ReadGroupRow(const StateDb::Statement& st) {
  GroupRecord g;
  g.group_id = st.ColumnText(0);
  g.role = static_cast<v1::AdapterRole>(st.ColumnInt(1));
  g.phase = static_cast<v1::Phase>(st.ColumnInt(2));
  g.iteration = static_cast<uint32_t>(st.ColumnInt(3));
  g.problem_id = st.ColumnText(4);
  g.item_id = st.ColumnInt(5);
  g.status = static_cast<int>(st.ColumnInt(6));
  g.accept_sequence = static_cast<uint64_t>(st.ColumnInt(7));
  g.objective = static_cast<v1::Objective>(st.ColumnInt(8));
  if (!st.ColumnIsNull(9)) g.logprob_temperature = static_cast<float>(st.ColumnDouble(9));
  g.source = st.ColumnText(10);
  return g;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(const std::string& path, const RunStoreOptions& options) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && options.db.create) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return absl::InternalError(absl::StrCat("creating ", parent.string(), ": ", ec.message()));
  }
  DSM_ASSIGN_OR_RETURN(std::unique_ptr<StateDb> db, StateDb::Open(path, options.db, RunStateMigrations()));
  DSM_ASSIGN_OR_RETURN(std::unique_ptr<LeaseQueue> queue, LeaseQueue::Create(db.get(), options.queue));
  return std::unique_ptr<RunStore>(new RunStore(std::move(db), std::move(queue), options));
}

std::string RunStore::StatePath(const std::string& runs_dir, const std::string& run_name) {
  return (std::filesystem::path(runs_dir) / run_name / "state.db").string();
}

absl::Status RunStore::ValidateRunName(absl::string_view name) {
  if (name.empty() || name.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat("name: ", name.size(), " bytes not in [1, 64]"));
  }
  for (char ch : name) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
      return absl::InvalidArgumentError(absl::StrCat("name: \"", name, "\" has a character outside [a-z0-9_-]"));
    }
  }
  return absl::OkStatus();
}

std::string RunStore::CursorName(v1::Phase phase, uint32_t iteration, absl::string_view dataset) {
  return absl::StrCat("phase=", static_cast<int>(phase), "/iteration=", iteration, "/", dataset);
}

// --- The run ---------------------------------------------------------------

absl::StatusOr<v1::RunStatus> RunStore::CreateRun(const std::string& name, const std::string& config_yaml,
                                                  v1::RunState state, absl::Time now) {
  DSM_RETURN_IF_ERROR(ValidateRunName(name));
  if (state != v1::RUN_STATE_PENDING && state != v1::RUN_STATE_RUNNING) {
    return absl::InvalidArgumentError(
        absl::StrCat("state: ", v1::RunState_Name(state), " is not RUN_STATE_PENDING or RUN_STATE_RUNNING"));
  }
  v1::RunStatus status;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT name FROM runs LIMIT 1"));
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) return absl::AlreadyExistsError(absl::StrCat("run: \"", st.ColumnText(0), "\" already exists"));
    }
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("INSERT INTO runs (name, config_yaml, state, created_us, started_us, updated_us) "
                                     "VALUES (?1, ?2, ?3, ?4, ?5, ?4)"));
      st.BindText(1, name).BindText(2, config_yaml).BindInt(3, state).BindInt(4, Micros(now));
      if (state == v1::RUN_STATE_RUNNING) {
        st.BindInt(5, Micros(now));
      } else {
        st.BindNull(5);
      }
      DSM_RETURN_IF_ERROR(st.Run());
    }
    v1::RunEvent event;
    event.mutable_state_changed()->set_state(state);
    event.mutable_state_changed()->set_message("created");
    DSM_RETURN_IF_ERROR(AppendEventIn(c, std::move(event), now).status());
    DSM_ASSIGN_OR_RETURN(status, ReadRunIn(c));
    return absl::OkStatus();
  }));
  return status;
}

absl::StatusOr<v1::RunStatus> RunStore::GetRun() {
  v1::RunStatus status;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(status, ReadRunIn(c));
    return absl::OkStatus();
  }));
  return status;
}

absl::StatusOr<v1::RunStatus> RunStore::SetRunState(v1::RunState state, const std::string& message, absl::Time now) {
  if (state == v1::RUN_STATE_UNSPECIFIED || !v1::RunState_IsValid(state)) {
    return absl::InvalidArgumentError(absl::StrCat("state: ", static_cast<int>(state), " is not a RunState"));
  }
  v1::RunStatus status;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("UPDATE runs SET state = ?1, updated_us = ?2, "
                                   "started_us = CASE WHEN ?1 = 2 THEN ?2 ELSE started_us END, "
                                   "finished_us = CASE WHEN ?3 THEN ?2 ELSE NULL END, error = ?4"));
    st.BindInt(1, state).BindInt(2, Micros(now)).BindInt(3, IsTerminalRunState(state) ? 1 : 0);
    st.BindText(4, state == v1::RUN_STATE_FAILED ? message : "");
    DSM_RETURN_IF_ERROR(UpdateRun(c, st));
    v1::RunEvent event;
    event.mutable_state_changed()->set_state(state);
    event.mutable_state_changed()->set_message(message);
    DSM_RETURN_IF_ERROR(AppendEventIn(c, std::move(event), now).status());
    DSM_ASSIGN_OR_RETURN(status, ReadRunIn(c));
    return absl::OkStatus();
  }));
  return status;
}

absl::Status RunStore::SetConfig(const std::string& config_yaml, absl::Time now) {
  return db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("UPDATE runs SET config_yaml = ?1, updated_us = ?2"));
    st.BindText(1, config_yaml).BindInt(2, Micros(now));
    return UpdateRun(c, st);
  });
}

absl::Status RunStore::StartPhase(v1::Phase phase, uint32_t iteration, absl::Time now) {
  return db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("UPDATE runs SET phase = ?1, iteration = ?2, progress_done = 0, "
                                   "progress_total = 0, progress_unit = '', updated_us = ?3"));
    st.BindInt(1, phase).BindInt(2, iteration).BindInt(3, Micros(now));
    DSM_RETURN_IF_ERROR(UpdateRun(c, st));
    v1::RunEvent event;
    event.mutable_phase_started()->set_phase(phase);
    event.mutable_phase_started()->set_iteration(iteration);
    return AppendEventIn(c, std::move(event), now).status();
  });
}

absl::Status RunStore::SetProgress(const v1::PhaseProgress& progress, absl::Time now) {
  return db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("UPDATE runs SET progress_done = ?1, progress_total = ?2, progress_unit = ?3, "
                                   "updated_us = ?4"));
    st.BindInt(1, static_cast<int64_t>(progress.done())).BindInt(2, static_cast<int64_t>(progress.total()));
    st.BindText(3, progress.unit()).BindInt(4, Micros(now));
    return UpdateRun(c, st);
  });
}

absl::Status RunStore::SetReportPath(const std::string& path, absl::Time now) {
  return db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("UPDATE runs SET report_path = ?1, updated_us = ?2"));
    st.BindText(1, path).BindInt(2, Micros(now));
    return UpdateRun(c, st);
  });
}

// --- Events ----------------------------------------------------------------

absl::StatusOr<uint64_t> RunStore::AppendEvent(v1::RunEvent event, absl::Time now) {
  uint64_t sequence = 0;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(sequence, AppendEventIn(c, event, now));
    return absl::OkStatus();
  }));
  return sequence;
}

absl::StatusOr<std::vector<v1::RunEvent>> RunStore::EventsFrom(uint64_t from_sequence, uint32_t limit) {
  std::vector<v1::RunEvent> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    out.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT event FROM run_events WHERE sequence >= ?1 ORDER BY sequence LIMIT ?2"));
    st.BindInt(1, static_cast<int64_t>(std::max<uint64_t>(from_sequence, 1))).BindInt(2, limit);
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      v1::RunEvent e;
      if (!e.ParseFromString(st.ColumnBlob(0))) return absl::DataLossError("run_events: unparsable RunEvent");
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  }));
  return out;
}

// --- Evaluations -----------------------------------------------------------

absl::Status RunStore::RecordEvaluation(const v1::Evaluation& evaluation, absl::Time now) {
  return db_->Write([&](Connection& c) -> absl::Status {
    {
      // A redo of the same evaluation replaces it (and moves it to the end).
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("DELETE FROM evaluations WHERE phase = ?1 AND iteration = ?2 AND point = ?3"));
      st.BindInt(1, evaluation.phase()).BindInt(2, evaluation.iteration()).BindInt(3, evaluation.point());
      DSM_RETURN_IF_ERROR(st.Run());
    }
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("INSERT INTO evaluations (phase, iteration, point, evaluation) "
                                     "VALUES (?1, ?2, ?3, ?4)"));
      st.BindInt(1, evaluation.phase()).BindInt(2, evaluation.iteration()).BindInt(3, evaluation.point());
      st.BindBlob(4, evaluation.SerializeAsString());
      DSM_RETURN_IF_ERROR(st.Run());
    }
    v1::RunEvent event;
    *event.mutable_evaluation() = evaluation;
    return AppendEventIn(c, std::move(event), now).status();
  });
}

absl::StatusOr<std::vector<v1::Evaluation>> RunStore::Evaluations() {
  std::vector<v1::Evaluation> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(out, EvaluationsIn(c));
    return absl::OkStatus();
  }));
  return out;
}

// --- Cursors ---------------------------------------------------------------

absl::StatusOr<int64_t> RunStore::GetCursor(const std::string& name) {
  int64_t position = 0;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT position FROM cursors WHERE name = ?1"));
    st.BindText(1, name);
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    position = row ? st.ColumnInt(0) : 0;
    return absl::OkStatus();
  }));
  return position;
}

absl::Status RunStore::SetCursor(const std::string& name, int64_t position, absl::Time now) {
  return db_->Write([&](Connection& c) { return SetCursorIn(c, CursorUpdate{name, position}, now); });
}

// --- Datasets --------------------------------------------------------------

absl::StatusOr<v1::ImportRecordsResponse> RunStore::ImportRecords(absl::Span<const v1::ImportRecordsRequest> records,
                                                                  bool atomic) {
  v1::ImportRecordsResponse response;
  absl::Status status = db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(response, ImportRecordsInto(c, records, atomic, options_.limits));
    // An atomic import with errors rolls back: Write() rolls back on any error.
    if (!response.committed()) return absl::AbortedError("atomic import has invalid records");
    return absl::OkStatus();
  });
  if (!status.ok() &&
      !(status.code() == absl::StatusCode::kAborted && !response.committed() && response.error_count() > 0)) {
    return status;
  }
  return response;
}

absl::Status RunStore::AddAutoLabels(absl::Span<const v1::LabelledProof> labels, uint32_t iteration,
                                     const std::optional<CursorUpdate>& cursor, absl::Time now) {
  std::vector<v1::ImportRecordsRequest> requests(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    *requests[i].mutable_proof() = labels[i];
    if (labels[i].labeller().empty()) requests[i].mutable_proof()->set_labeller("auto");
  }
  return db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(v1::ImportRecordsResponse response,
                         ImportRecordsInto(c, requests, /*atomic=*/true, options_.limits, iteration));
    if (response.error_count() > 0) {
      const v1::ImportError& e = response.errors(0);
      return absl::InvalidArgumentError(absl::StrCat(e.field(), ": ", e.message()));
    }
    if (cursor) DSM_RETURN_IF_ERROR(SetCursorIn(c, *cursor, now));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<StoredProblem>> RunStore::Problems(v1::DatasetSplit split, int64_t after_seq,
                                                              uint32_t limit, ProblemLabels labels) {
  std::vector<StoredProblem> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    out.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT seq, problem_id, statement, split, source FROM problems "
                                   "WHERE seq > ?1 AND (?2 = 0 OR split = ?2) AND (?4 = 0 OR (?4 = 2) = EXISTS "
                                   "(SELECT 1 FROM proofs WHERE proofs.problem_id = problems.problem_id "
                                   "AND proofs.labeller != 'auto')) ORDER BY seq LIMIT ?3"));
    st.BindInt(1, after_seq).BindInt(2, split).BindInt(3, limit).BindInt(4, static_cast<int>(labels));
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      StoredProblem p;
      p.seq = st.ColumnInt(0);
      p.record.set_problem_id(st.ColumnText(1));
      p.record.set_statement(st.ColumnText(2));
      p.record.set_split(static_cast<v1::DatasetSplit>(st.ColumnInt(3)));
      p.record.set_source(st.ColumnText(4));
      out.push_back(std::move(p));
    }
    return absl::OkStatus();
  }));
  return out;
}

namespace {
#define DSM_PROOF_COLUMNS "seq, proof_id, problem_id, proof, score, issue, labeller, iteration"
StoredProof ReadProofRow(const StateDb::Statement& st) {
  StoredProof p;
  p.seq = st.ColumnInt(0);
  p.record.set_proof_id(st.ColumnText(1));
  p.record.set_problem_id(st.ColumnText(2));
  p.record.set_proof(st.ColumnText(3));
  p.record.set_score(st.ColumnDouble(4));
  p.record.set_issue(st.ColumnText(5));
  p.record.set_labeller(st.ColumnText(6));
  p.iteration = static_cast<uint32_t>(st.ColumnInt(7));
  return p;
}

#define DSM_ANALYSIS_COLUMNS "seq, analysis_id, proof_id, analysis, meta_score, issue, labeller, iteration"
StoredAnalysis ReadAnalysisRow(const StateDb::Statement& st) {
  StoredAnalysis a;
  a.seq = st.ColumnInt(0);
  a.record.set_analysis_id(st.ColumnText(1));
  a.record.set_proof_id(st.ColumnText(2));
  a.record.set_analysis(st.ColumnText(3));
  a.record.set_meta_score(st.ColumnDouble(4));
  a.record.set_issue(st.ColumnText(5));
  a.record.set_labeller(st.ColumnText(6));
  a.iteration = static_cast<uint32_t>(st.ColumnInt(7));
  return a;
}

// Every seq `sql` selects, in its order.
absl::StatusOr<std::vector<int64_t>> ReadSeqs(StateDb* db, const char* sql) {
  std::vector<int64_t> out;
  DSM_RETURN_IF_ERROR(db->Read([&](Connection& c) -> absl::Status {
    out.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare(sql));
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out.push_back(st.ColumnInt(0));
    }
    return absl::OkStatus();
  }));
  return out;
}

// The rows `sql` (one seq parameter) gives for each of `seqs`, in that order; a seq with no row is left out.
template <typename Row, typename ReadRow>
absl::StatusOr<std::vector<Row>> ReadRowsAt(StateDb* db, const char* sql, absl::Span<const int64_t> seqs,
                                            ReadRow read_row) {
  std::vector<Row> out;
  DSM_RETURN_IF_ERROR(db->Read([&](Connection& c) -> absl::Status {
    out.clear();
    for (const int64_t seq : seqs) {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare(sql));
      st.BindInt(1, seq);
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) out.push_back(read_row(st));
    }
    return absl::OkStatus();
  }));
  return out;
}
}  // namespace

absl::StatusOr<std::vector<StoredProof>> RunStore::Proofs(int64_t after_seq, uint32_t limit) {
  std::vector<StoredProof> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    out.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT " DSM_PROOF_COLUMNS " FROM proofs WHERE seq > ?1 ORDER BY seq LIMIT ?2"));
    st.BindInt(1, after_seq).BindInt(2, limit);
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out.push_back(ReadProofRow(st));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<StoredAnalysis>> RunStore::Analyses(int64_t after_seq, uint32_t limit) {
  std::vector<StoredAnalysis> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    out.clear();
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT " DSM_ANALYSIS_COLUMNS " FROM analyses WHERE seq > ?1 ORDER BY seq LIMIT ?2"));
    st.BindInt(1, after_seq).BindInt(2, limit);
    while (true) {
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      out.push_back(ReadAnalysisRow(st));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<int64_t>> RunStore::ProofSeqs() {
  return ReadSeqs(db_.get(), "SELECT seq FROM proofs ORDER BY seq");
}

absl::StatusOr<std::vector<int64_t>> RunStore::AnalysisSeqs() {
  return ReadSeqs(db_.get(), "SELECT seq FROM analyses ORDER BY seq");
}

absl::StatusOr<std::vector<StoredProof>> RunStore::ProofsAt(absl::Span<const int64_t> seqs) {
  return ReadRowsAt<StoredProof>(db_.get(), "SELECT " DSM_PROOF_COLUMNS " FROM proofs WHERE seq = ?1", seqs,
                                 ReadProofRow);
}

absl::StatusOr<std::vector<StoredAnalysis>> RunStore::AnalysesAt(absl::Span<const int64_t> seqs) {
  return ReadRowsAt<StoredAnalysis>(db_.get(), "SELECT " DSM_ANALYSIS_COLUMNS " FROM analyses WHERE seq = ?1",
                                    seqs, ReadAnalysisRow);
}

absl::StatusOr<std::optional<v1::ProblemRecord>> RunStore::GetProblem(const std::string& problem_id) {
  std::optional<v1::ProblemRecord> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT statement, split, source FROM problems WHERE problem_id = ?1"));
    st.BindText(1, problem_id);
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      out.emplace();
      out->set_problem_id(problem_id);
      out->set_statement(st.ColumnText(0));
      out->set_split(static_cast<v1::DatasetSplit>(st.ColumnInt(1)));
      out->set_source(st.ColumnText(2));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<v1::LabelledProof>> RunStore::GetProof(const std::string& proof_id) {
  std::optional<v1::LabelledProof> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT " DSM_PROOF_COLUMNS " FROM proofs WHERE proof_id = ?1"));
    st.BindText(1, proof_id);
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) out = ReadProofRow(st).record;
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<bool> RunStore::HasProofText(const std::string& problem_id, const std::string& proof) {
  bool found = false;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("SELECT 1 FROM proofs WHERE problem_id = ?1 AND proof = ?2 LIMIT 1"));
    st.BindText(1, problem_id).BindText(2, proof);
    DSM_ASSIGN_OR_RETURN(found, st.Step());
    return absl::OkStatus();
  }));
  return found;
}

absl::StatusOr<DatasetCounts> RunStore::CountRecords() {
  DatasetCounts out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(
        StateDb::Statement st,
        c.Prepare("SELECT (SELECT COUNT(*) FROM problems WHERE split = ?1), "
                  "(SELECT COUNT(*) FROM problems WHERE split = ?2), (SELECT COUNT(*) FROM proofs), "
                  "(SELECT COUNT(*) FROM proofs WHERE iteration > 0), (SELECT COUNT(*) FROM analyses)"));
    st.BindInt(1, v1::DATASET_SPLIT_TRAIN).BindInt(2, v1::DATASET_SPLIT_EVAL);
    DSM_ASSIGN_OR_RETURN(bool row, st.Step());
    (void)row;
    out.problems_train = static_cast<uint64_t>(st.ColumnInt(0));
    out.problems_eval = static_cast<uint64_t>(st.ColumnInt(1));
    out.proofs = static_cast<uint64_t>(st.ColumnInt(2));
    out.auto_labelled_proofs = static_cast<uint64_t>(st.ColumnInt(3));
    out.analyses = static_cast<uint64_t>(st.ColumnInt(4));
    return absl::OkStatus();
  }));
  return out;
}

// --- Training groups and samples -------------------------------------------

absl::StatusOr<bool> RunStore::RecordGroup(const GroupRecord& group, const std::optional<CursorUpdate>& cursor,
                                           absl::Time now) {
  if (group.group_id.empty() || group.group_id.size() > options_.limits.max_id_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("group.group_id: ", group.group_id.size(),
                                                   " bytes not in [1, max_id_bytes ", options_.limits.max_id_bytes,
                                                   "]"));
  }
  bool stored = false;
  DSM_RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    stored = false;
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare("SELECT 1 FROM training_groups WHERE group_id = ?1"));
      st.BindText(1, group.group_id);
      DSM_ASSIGN_OR_RETURN(bool exists, st.Step());
      if (exists) return cursor ? SetCursorIn(c, *cursor, now) : absl::OkStatus();
    }
    {
      DSM_ASSIGN_OR_RETURN(
          StateDb::Statement st,
          c.Prepare("INSERT INTO training_groups (group_id, role, phase, iteration, problem_id, "
                    "item_id, status, accept_sequence, objective, logprob_temperature, source, created_us) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
      st.BindText(1, group.group_id).BindInt(2, group.role).BindInt(3, group.phase).BindInt(4, group.iteration);
      st.BindText(5, group.problem_id);
      if (group.item_id > 0) {
        st.BindInt(6, group.item_id);
      } else {
        st.BindNull(6);
      }
      st.BindInt(7, group.status).BindInt(8, static_cast<int64_t>(group.accept_sequence)).BindInt(9, group.objective);
      if (group.logprob_temperature) {
        st.BindDouble(10, *group.logprob_temperature);
      } else {
        st.BindNull(10);
      }
      st.BindText(11, group.source).BindInt(12, Micros(now));
      DSM_RETURN_IF_ERROR(st.Run());
    }
    const std::string prompt = PackArray(group.prompt_token_ids.data(), group.prompt_token_ids.size());
    for (size_t i = 0; i < group.samples.size(); ++i) {
      const SampleRecord& s = group.samples[i];
      {
        DSM_ASSIGN_OR_RETURN(
            StateDb::Statement st,
            c.Prepare("INSERT INTO samples (group_id, sample_index, role, prompt_token_ids, completion_token_ids, "
                      "behaviour_logprobs, prompt_text, completion_text, reward, adapter_version, finish_reason, "
                      "created_us, loss_mask) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
        st.BindText(1, group.group_id).BindInt(2, static_cast<int64_t>(i)).BindInt(3, group.role);
        st.BindBlob(4, prompt);
        st.BindBlob(5, PackArray(s.sample.completion_token_ids().data(), s.sample.completion_token_ids_size()));
        st.BindBlob(6, PackArray(s.sample.behaviour_logprobs().data(), s.sample.behaviour_logprobs_size()));
        st.BindText(7, s.prompt_text).BindText(8, s.completion_text).BindDouble(9, s.sample.reward());
        st.BindInt(10, static_cast<int64_t>(s.sample.adapter_version())).BindInt(11, s.sample.finish_reason());
        std::string mask;
        for (bool m : s.sample.loss_mask()) mask.push_back(m ? 1 : 0);
        st.BindInt(12, Micros(now)).BindBlob(13, mask);
        DSM_RETURN_IF_ERROR(st.Run());
      }
      const int64_t sample_id = c.LastInsertRowId();
      for (const auto& [name, value] : s.reward_parts) {
        DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                             c.Prepare("INSERT INTO sample_rewards (sample_id, name, value) VALUES (?1, ?2, ?3)"));
        st.BindInt(1, sample_id).BindText(2, name).BindDouble(3, value);
        DSM_RETURN_IF_ERROR(st.Run());
      }
    }
    if (cursor) DSM_RETURN_IF_ERROR(SetCursorIn(c, *cursor, now));
    stored = true;
    return absl::OkStatus();
  }));
  return stored;
}

absl::Status RunStore::SetGroupStatus(const std::string& group_id, int status, uint64_t accept_sequence) {
  return db_->Write([&](Connection& c) -> absl::Status {
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("UPDATE training_groups SET status = ?1, accept_sequence = ?2 WHERE group_id = ?3"));
    st.BindInt(1, status).BindInt(2, static_cast<int64_t>(accept_sequence)).BindText(3, group_id);
    DSM_RETURN_IF_ERROR(st.Run());
    if (c.Changes() == 0) return absl::NotFoundError(absl::StrCat("group_id: \"", group_id, "\" is not stored"));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<GroupRecord>> RunStore::GetGroup(const std::string& group_id) {
  std::optional<GroupRecord> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT " DSM_GROUP_COLUMNS " FROM training_groups WHERE group_id = ?1"));
      st.BindText(1, group_id);
      DSM_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) return absl::OkStatus();
      out = ReadGroupRow(st);
    }
    DSM_ASSIGN_OR_RETURN(out->samples, SamplesIn(c, group_id, &out->prompt_token_ids));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<GroupRecord>> RunStore::GroupsWithStatus(int status, uint32_t limit,
                                                                     uint64_t after_accept_sequence) {
  std::vector<GroupRecord> out;
  DSM_RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    out.clear();
    {
      DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                           c.Prepare("SELECT " DSM_GROUP_COLUMNS " FROM training_groups WHERE status = ?1 "
                                     "AND (?3 = 0 OR accept_sequence > ?3) ORDER BY created_us, rowid LIMIT ?2"));
      st.BindInt(1, status).BindInt(2, limit).BindInt(3, static_cast<int64_t>(after_accept_sequence));
      while (true) {
        DSM_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        out.push_back(ReadGroupRow(st));
      }
    }
    for (GroupRecord& g : out) {
      DSM_ASSIGN_OR_RETURN(g.samples, SamplesIn(c, g.group_id, &g.prompt_token_ids));
    }
    return absl::OkStatus();
  }));
  return out;
}

v1::ScoredGroup RunStore::ToScoredGroup(const GroupRecord& group) {
  v1::ScoredGroup out;
  out.set_group_id(group.group_id);
  out.set_role(group.role);
  out.mutable_prompt_token_ids()->Add(group.prompt_token_ids.begin(), group.prompt_token_ids.end());
  for (const SampleRecord& s : group.samples) *out.add_samples() = s.sample;
  out.set_objective(group.objective);
  if (group.logprob_temperature) out.set_logprob_temperature(*group.logprob_temperature);
  out.set_source(group.source);
  return out;
}

}  // namespace dsm
