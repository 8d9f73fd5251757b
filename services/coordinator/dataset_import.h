// Validating and storing imported records (problems, labelled proofs,
// labelled analyses): the domain side of Coordinator.ImportRecords, also used
// by the JSONL reader (jsonl_import.h) for its per-line checks.
//
// Rules (coordinator.proto, ImportRecordsRequest/Response):
//  - Each record is validated alone (ValidateImportRecord): required fields,
//    sizes, scores in {0, 0.5, 1}. Then, in order, against the database and
//    the records before it: a proof's problem_id and an analysis's proof_id
//    must exist (imported before, or earlier in the same batch); a record
//    whose id exists with identical content is a duplicate (skipped,
//    counted); with different content it is invalid.
//  - atomic = false: valid records are committed, invalid ones reported.
//    atomic = true: nothing is committed if any record is invalid.
//  - errors holds the first max_import_errors errors; error_count all.
//  - Defaults applied on storing: split UNSPECIFIED -> TRAIN, labeller "" ->
//    "human".
//
// Thread safety: free functions; ImportRecords runs inside the caller's
// StateDb transaction.
#ifndef DSM_SERVICES_COORDINATOR_DATASET_IMPORT_H_
#define DSM_SERVICES_COORDINATOR_DATASET_IMPORT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/state_db.h"

namespace dsm {

struct ImportLimits {
  uint32_t max_id_bytes = 128;        // ids, labeller, source
  uint64_t max_text_bytes = 1 << 20;  // statement, proof, analysis, issue
  uint32_t max_import_errors = 100;   // ImportRecordsResponse.errors kept
};

// One problem with a record: the field path ("proof.score") and what is wrong.
struct RecordIssue {
  std::string field;
  std::string message;
};

std::optional<RecordIssue> ValidateProblem(const v1::ProblemRecord& r, const ImportLimits& limits);
std::optional<RecordIssue> ValidateProof(const v1::LabelledProof& r, const ImportLimits& limits);
std::optional<RecordIssue> ValidateAnalysis(const v1::LabelledAnalysis& r, const ImportLimits& limits);
// The record set in `request` ("record: none set" if none).
std::optional<RecordIssue> ValidateImportRecord(const v1::ImportRecordsRequest& request, const ImportLimits& limits);

// A stable content hash (FNV-1a 64 over the length-prefixed fields that make
// the record's content), as 16 hex digits.
std::string ContentHash(const v1::ProblemRecord& r);
std::string ContentHash(const v1::LabelledProof& r);
std::string ContentHash(const v1::LabelledAnalysis& r);

// Validates and inserts `records` inside the caller's write transaction.
// `iteration` is stored with proofs and analyses (0 = imported data).
// Returns the response; when `atomic` and any record is invalid, the
// response has committed = false and the caller must roll back (RunStore
// does). A database error is returned as a status.
absl::StatusOr<v1::ImportRecordsResponse> ImportRecordsInto(StateDb::Connection& c,
                                                            absl::Span<const v1::ImportRecordsRequest> records,
                                                            bool atomic, const ImportLimits& limits,
                                                            uint32_t iteration = 0);

// "FILE:LINE: field: message" (FILE and LINE left out when unknown).
std::string FormatImportError(const v1::ImportError& error);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_DATASET_IMPORT_H_
