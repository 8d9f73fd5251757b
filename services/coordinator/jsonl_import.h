// Reading JSONL files of problems, labelled proofs and labelled analyses into
// ImportRecordsRequest messages (the formats: docs/jsonl-formats.md).
//
// One JSON object per line; keys are the proto field names (problem_id) or
// their proto3 JSON names (problemId); null = unset; blank lines are skipped.
// A bad line never stops the others: it becomes an ImportError with its line
// number, formatted by FormatImportError as one line,
//   "proofs.jsonl:12: proof.score: 0.7 is not one of 0, 0.5, 1".
// What the caller then does (skip bad lines, or import nothing when any line
// is bad) is ImportRecordsRequest.atomic's choice; the records come back
// with line and source_file set for the store's own errors.
//
// Checked here: JSON syntax, an object per line, unknown and repeated keys,
// value types, enum names, line size; then every check of
// ValidateImportRecord (required fields, sizes, scores in {0, 0.5, 1}).
// Checked only by the store (it needs the database): that a proof's problem
// and an analysis's proof exist, and id conflicts.
//
// Thread safety: free functions, no shared state.
#ifndef DSM_SERVICES_COORDINATOR_JSONL_IMPORT_H_
#define DSM_SERVICES_COORDINATOR_JSONL_IMPORT_H_

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/dataset_import.h"

namespace dsm {

// What the lines of a file are.
enum class JsonlRecordKind {
  kAuto,      // per line: "analysis_id" -> analysis, else "proof_id" -> proof, else problem
  kProblem,   // ProblemRecord
  kProof,     // LabelledProof
  kAnalysis,  // LabelledAnalysis
};

struct JsonlOptions {
  JsonlRecordKind kind = JsonlRecordKind::kAuto;
  ImportLimits limits;  // field sizes; limits.max_import_errors caps `errors`
  // Longest line accepted; 0 = 4 * limits.max_text_bytes + 64 KiB (room for
  // JSON escapes of one text field at the limit).
  uint64_t max_line_bytes = 0;
};

struct JsonlParseResult {
  std::vector<v1::ImportRecordsRequest> records;  // good lines, in order
  std::vector<v1::ImportError> errors;            // the first limits.max_import_errors
  uint64_t error_count = 0;                       // every bad line
  uint64_t lines = 0;                             // lines read (blank ones included)
};

// Parses one line (no newline) into `out` (its record set; line and
// source_file left alone). Returns the first problem found.
std::optional<RecordIssue> ParseJsonlLine(absl::string_view line, const JsonlOptions& options,
                                          v1::ImportRecordsRequest* out);

// Parses a stream; `source_name` goes into each record's source_file and
// each error.
JsonlParseResult ParseJsonl(std::istream& in, const std::string& source_name, const JsonlOptions& options);

// Parses a file. NOT_FOUND / PERMISSION_DENIED-like failures to open it are
// the only errors; bad lines are in the result. source_file = `path`.
absl::StatusOr<JsonlParseResult> ParseJsonlFile(const std::string& path, const JsonlOptions& options);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_JSONL_IMPORT_H_
