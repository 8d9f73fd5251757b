#include "services/coordinator/dataset_import.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dsm {
namespace {

using Connection = StateDb::Connection;

constexpr char kDefaultLabeller[] = "human";

std::optional<RecordIssue> CheckId(const std::string& value, const std::string& field, bool required,
                                   const ImportLimits& limits) {
  if (value.empty()) {
    if (required) return RecordIssue{field, "required"};
    return std::nullopt;
  }
  if (value.size() > limits.max_id_bytes) {
    return RecordIssue{field, absl::StrCat(value.size(), " bytes > max_id_bytes ", limits.max_id_bytes)};
  }
  return std::nullopt;
}

std::optional<RecordIssue> CheckText(const std::string& value, const std::string& field, bool required,
                                     const ImportLimits& limits) {
  if (value.empty()) {
    if (required) return RecordIssue{field, "required"};
    return std::nullopt;
  }
  if (value.size() > limits.max_text_bytes) {
    return RecordIssue{field, absl::StrCat(value.size(), " bytes > max_text_bytes ", limits.max_text_bytes)};
  }
  return std::nullopt;
}

std::optional<RecordIssue> CheckScore(bool has, double value, const std::string& field) {
  if (!has) return RecordIssue{field, "required"};
  if (value != 0 && value != 0.5 && value != 1) {
    return RecordIssue{field, absl::StrCat(value, " is not one of 0, 0.5, 1")};
  }
  return std::nullopt;
}

#define DSM_CHECK_ISSUE(expr)                   \
  do {                                          \
    std::optional<RecordIssue> issue_ = (expr); \
    if (issue_) return issue_;                  \
  } while (0)

// FNV-1a 64 over length-prefixed parts.
class Fnv64 {
 public:
  Fnv64& Add(absl::string_view part) {
    const uint64_t size = part.size();
    for (int i = 0; i < 8; ++i) Byte(static_cast<unsigned char>(size >> (8 * i)));
    for (char ch : part) Byte(static_cast<unsigned char>(ch));
    return *this;
  }
  std::string Hex() const { return absl::StrFormat("%016x", hash_); }

 private:
  void Byte(unsigned char b) {
    hash_ ^= b;
    hash_ *= 0x100000001b3ULL;
  }
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

v1::DatasetSplit EffectiveSplit(v1::DatasetSplit s) {
  return s == v1::DATASET_SPLIT_UNSPECIFIED ? v1::DATASET_SPLIT_TRAIN : s;
}

std::string EffectiveLabeller(const std::string& labeller) { return labeller.empty() ? kDefaultLabeller : labeller; }

// The stored content hash of `id` in `table`, or nullopt if there is none.
absl::StatusOr<std::optional<std::string>> StoredHash(Connection& c, absl::string_view sql, const std::string& id) {
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare(sql));
  st.BindText(1, id);
  DSM_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

absl::StatusOr<bool> Exists(Connection& c, absl::string_view sql, const std::string& id) {
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st, c.Prepare(sql));
  st.BindText(1, id);
  return st.Step();
}

enum class Outcome { kImported, kDuplicate, kInvalid };

// Stores one validated record; sets *issue for a record that conflicts or
// refers to a missing parent.
absl::StatusOr<Outcome> Store(Connection& c, const v1::ImportRecordsRequest& request, uint32_t iteration,
                              RecordIssue* issue) {
  if (request.has_problem()) {
    const v1::ProblemRecord& r = request.problem();
    const std::string hash = ContentHash(r);
    DSM_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                         StoredHash(c, "SELECT content_hash FROM problems WHERE problem_id = ?1", r.problem_id()));
    if (stored) {
      if (*stored == hash) return Outcome::kDuplicate;
      *issue =
          RecordIssue{"problem.problem_id", absl::StrCat("\"", r.problem_id(), "\" exists with different content")};
      return Outcome::kInvalid;
    }
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("INSERT INTO problems (problem_id, statement, split, source, content_hash) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5)"));
    st.BindText(1, r.problem_id()).BindText(2, r.statement()).BindInt(3, EffectiveSplit(r.split()));
    st.BindText(4, r.source()).BindText(5, hash);
    DSM_RETURN_IF_ERROR(st.Run());
    return Outcome::kImported;
  }
  if (request.has_proof()) {
    const v1::LabelledProof& r = request.proof();
    const std::string hash = ContentHash(r);
    DSM_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                         StoredHash(c, "SELECT content_hash FROM proofs WHERE proof_id = ?1", r.proof_id()));
    if (stored) {
      if (*stored == hash) return Outcome::kDuplicate;
      *issue = RecordIssue{"proof.proof_id", absl::StrCat("\"", r.proof_id(), "\" exists with different content")};
      return Outcome::kInvalid;
    }
    DSM_ASSIGN_OR_RETURN(bool parent, Exists(c, "SELECT 1 FROM problems WHERE problem_id = ?1", r.problem_id()));
    if (!parent) {
      *issue = RecordIssue{"proof.problem_id", absl::StrCat("\"", r.problem_id(), "\" is not an imported problem")};
      return Outcome::kInvalid;
    }
    DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                         c.Prepare("INSERT INTO proofs (proof_id, problem_id, proof, score, issue, labeller, "
                                   "iteration, content_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    st.BindText(1, r.proof_id()).BindText(2, r.problem_id()).BindText(3, r.proof()).BindDouble(4, r.score());
    st.BindText(5, r.issue()).BindText(6, EffectiveLabeller(r.labeller())).BindInt(7, iteration).BindText(8, hash);
    DSM_RETURN_IF_ERROR(st.Run());
    return Outcome::kImported;
  }
  const v1::LabelledAnalysis& r = request.analysis();
  const std::string hash = ContentHash(r);
  DSM_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                       StoredHash(c, "SELECT content_hash FROM analyses WHERE analysis_id = ?1", r.analysis_id()));
  if (stored) {
    if (*stored == hash) return Outcome::kDuplicate;
    *issue =
        RecordIssue{"analysis.analysis_id", absl::StrCat("\"", r.analysis_id(), "\" exists with different content")};
    return Outcome::kInvalid;
  }
  DSM_ASSIGN_OR_RETURN(bool parent, Exists(c, "SELECT 1 FROM proofs WHERE proof_id = ?1", r.proof_id()));
  if (!parent) {
    *issue = RecordIssue{"analysis.proof_id", absl::StrCat("\"", r.proof_id(), "\" is not an imported proof")};
    return Outcome::kInvalid;
  }
  DSM_ASSIGN_OR_RETURN(StateDb::Statement st,
                       c.Prepare("INSERT INTO analyses (analysis_id, proof_id, analysis, meta_score, issue, "
                                 "labeller, iteration, content_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  st.BindText(1, r.analysis_id()).BindText(2, r.proof_id()).BindText(3, r.analysis()).BindDouble(4, r.meta_score());
  st.BindText(5, r.issue()).BindText(6, EffectiveLabeller(r.labeller())).BindInt(7, iteration).BindText(8, hash);
  DSM_RETURN_IF_ERROR(st.Run());
  return Outcome::kImported;
}

}  // namespace

std::optional<RecordIssue> ValidateProblem(const v1::ProblemRecord& r, const ImportLimits& limits) {
  DSM_CHECK_ISSUE(CheckId(r.problem_id(), "problem.problem_id", true, limits));
  DSM_CHECK_ISSUE(CheckText(r.statement(), "problem.statement", true, limits));
  if (!v1::DatasetSplit_IsValid(r.split())) {
    return RecordIssue{"problem.split", absl::StrCat(static_cast<int>(r.split()), " is not a DatasetSplit")};
  }
  DSM_CHECK_ISSUE(CheckId(r.source(), "problem.source", false, limits));
  return std::nullopt;
}

std::optional<RecordIssue> ValidateProof(const v1::LabelledProof& r, const ImportLimits& limits) {
  DSM_CHECK_ISSUE(CheckId(r.proof_id(), "proof.proof_id", true, limits));
  DSM_CHECK_ISSUE(CheckId(r.problem_id(), "proof.problem_id", true, limits));
  DSM_CHECK_ISSUE(CheckText(r.proof(), "proof.proof", true, limits));
  DSM_CHECK_ISSUE(CheckScore(r.has_score(), r.score(), "proof.score"));
  DSM_CHECK_ISSUE(CheckText(r.issue(), "proof.issue", false, limits));
  DSM_CHECK_ISSUE(CheckId(r.labeller(), "proof.labeller", false, limits));
  return std::nullopt;
}

std::optional<RecordIssue> ValidateAnalysis(const v1::LabelledAnalysis& r, const ImportLimits& limits) {
  DSM_CHECK_ISSUE(CheckId(r.analysis_id(), "analysis.analysis_id", true, limits));
  DSM_CHECK_ISSUE(CheckId(r.proof_id(), "analysis.proof_id", true, limits));
  DSM_CHECK_ISSUE(CheckText(r.analysis(), "analysis.analysis", true, limits));
  DSM_CHECK_ISSUE(CheckScore(r.has_meta_score(), r.meta_score(), "analysis.meta_score"));
  DSM_CHECK_ISSUE(CheckText(r.issue(), "analysis.issue", false, limits));
  DSM_CHECK_ISSUE(CheckId(r.labeller(), "analysis.labeller", false, limits));
  return std::nullopt;
}

std::optional<RecordIssue> ValidateImportRecord(const v1::ImportRecordsRequest& request, const ImportLimits& limits) {
  switch (request.record_case()) {
    case v1::ImportRecordsRequest::kProblem:
      return ValidateProblem(request.problem(), limits);
    case v1::ImportRecordsRequest::kProof:
      return ValidateProof(request.proof(), limits);
    case v1::ImportRecordsRequest::kAnalysis:
      return ValidateAnalysis(request.analysis(), limits);
    case v1::ImportRecordsRequest::RECORD_NOT_SET:
      break;
  }
  return RecordIssue{"record", "none set (problem, proof or analysis)"};
}

std::string ContentHash(const v1::ProblemRecord& r) {
  return Fnv64().Add("problem").Add(r.statement()).Add(absl::StrCat(EffectiveSplit(r.split()))).Add(r.source()).Hex();
}

std::string ContentHash(const v1::LabelledProof& r) {
  return Fnv64()
      .Add("proof")
      .Add(r.problem_id())
      .Add(r.proof())
      .Add(absl::StrCat(r.score()))
      .Add(r.issue())
      .Add(EffectiveLabeller(r.labeller()))
      .Hex();
}

std::string ContentHash(const v1::LabelledAnalysis& r) {
  return Fnv64()
      .Add("analysis")
      .Add(r.proof_id())
      .Add(r.analysis())
      .Add(absl::StrCat(r.meta_score()))
      .Add(r.issue())
      .Add(EffectiveLabeller(r.labeller()))
      .Hex();
}

absl::StatusOr<v1::ImportRecordsResponse> ImportRecordsInto(StateDb::Connection& c,
                                                            absl::Span<const v1::ImportRecordsRequest> records,
                                                            bool atomic, const ImportLimits& limits,
                                                            uint32_t iteration) {
  v1::ImportRecordsResponse response;
  auto report = [&](const v1::ImportRecordsRequest& request, const RecordIssue& issue) {
    response.set_error_count(response.error_count() + 1);
    if (static_cast<uint32_t>(response.errors_size()) >= limits.max_import_errors) return;
    v1::ImportError* e = response.add_errors();
    e->set_line(request.line());
    e->set_source_file(request.source_file());
    e->set_field(issue.field);
    e->set_message(issue.message);
  };
  for (const v1::ImportRecordsRequest& request : records) {
    response.set_received(response.received() + 1);
    if (std::optional<RecordIssue> issue = ValidateImportRecord(request, limits)) {
      report(request, *issue);
      continue;
    }
    RecordIssue issue;
    DSM_ASSIGN_OR_RETURN(Outcome outcome, Store(c, request, iteration, &issue));
    switch (outcome) {
      case Outcome::kImported:
        response.set_imported(response.imported() + 1);
        break;
      case Outcome::kDuplicate:
        response.set_duplicates(response.duplicates() + 1);
        break;
      case Outcome::kInvalid:
        report(request, issue);
        break;
    }
  }
  const bool commit = !(atomic && response.error_count() > 0);
  response.set_committed(commit);
  if (!commit) response.set_imported(0);
  return response;
}

std::string FormatImportError(const v1::ImportError& error) {
  std::string out;
  if (!error.source_file().empty()) absl::StrAppend(&out, error.source_file(), ":");
  if (error.line() > 0) absl::StrAppend(&out, error.line(), ":");
  if (!out.empty()) out += " ";
  absl::StrAppend(&out, error.field(), ": ", error.message());
  return out;
}

}  // namespace dsm
