// JSONL export of the chain domain: problems, labelled proofs and labelled analyses as the
// records of docs/jsonl-formats.md, so the built-in default goes through the same import path
// (Coordinator.ImportRecords, services/coordinator/jsonl_import.h) as a user's data. Labels
// come from the exact checker (labeller "checker").
//
// Pure functions (the writers touch only the streams/files they are given); thread-safe.
#ifndef DSM_TASKS_JSONL_EXPORT_H_
#define DSM_TASKS_JSONL_EXPORT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tasks/chain_analysis.h"
#include "tasks/chain_domain.h"

namespace dsm {

// One JSON object each, no trailing newline. Keys are the proto field names.
// {"problem_id", "statement", "split": "DATASET_SPLIT_TRAIN"|"DATASET_SPLIT_EVAL", "source":
// "chain"}
std::string ChainProblemJsonl(const ChainProblem& problem);
// {"proof_id", "problem_id", "proof", "score", "issue" (only when score < 1), "labeller":
// "checker"}
std::string ChainProofJsonl(const std::string& proof_id, const std::string& problem_id,
                            const LabelledChainProof& proof);
// {"analysis_id", "proof_id", "analysis", "meta_score", "issue" (only when meta_score < 1),
//  "labeller": "checker"}
std::string ChainAnalysisJsonl(const std::string& analysis_id, const std::string& proof_id,
                               const LabelledChainAnalysis& analysis);

struct ChainDatasetOptions {
  ChainDomainOptions domain;
  // Distinct problems per split: 0..1000000.
  int train_problems = 512;
  int eval_problems = 64;
  // More distinct training problems with no labelled proof (0..1000000): the new problems
  // METHOD.md's generator trains on and phase 5 labels. Written before the labelled ones, so
  // the phases that take training problems in order (4 and 5) draw them first.
  int unlabelled_problems = 0;
  // Labelled proofs per problem (both splits), flaws drawn by SampleChainFlaw: 0..64.
  int proofs_per_problem = 4;
  // Share of those proofs that are correct: 0..1.
  double correct_fraction = 0.4;
  // Labelled analyses per proof, kinds drawn uniformly among those that exist for it: 0..64.
  int analyses_per_proof = 1;
  uint64_t seed = 1234;

  // One-line error naming the field and the limit (domain errors included).
  absl::Status Validate() const;
};

struct ChainDatasetCounts {
  int problems = 0;
  int proofs = 0;
  int analyses = 0;
};

// The distinct problems of `split` the dataset labels (train_problems or eval_problems of them),
// in the order WriteChainDataset writes their proofs.
absl::StatusOr<std::vector<ChainProblem>> ChainDatasetProblems(const ChainDatasetOptions& options, ChainSplit split);

// A proof record for any proof text of `problem` (a model's own proof, say), labelled by the
// checker: its score and, below 1, its first fault as the issue.
std::string ChainCheckedProofJsonl(const std::string& proof_id, const ChainProblem& problem,
                                   const std::string& proof);

// The training problems with no labelled proof (unlabelled_problems of them, none shared with
// ChainDatasetProblems' training problems), in the order WriteChainDataset writes them.
absl::StatusOr<std::vector<ChainProblem>> ChainDatasetUnlabelledProblems(const ChainDatasetOptions& options);

// Writes one line per record (problem ids "chain-train-<seed>" / "chain-eval-<seed>", proof
// ids "<problem_id>-p<j>", analysis ids "<proof_id>-a<m>"). Deterministic in `options`.
absl::StatusOr<ChainDatasetCounts> WriteChainDataset(const ChainDatasetOptions& options,
                                                     std::ostream* problems, std::ostream* proofs,
                                                     std::ostream* analyses);
// The same into `dir`/problems.jsonl, proofs.jsonl, analyses.jsonl (dir created if missing).
absl::StatusOr<ChainDatasetCounts> WriteChainDatasetFiles(const ChainDatasetOptions& options,
                                                          const std::string& dir);

}  // namespace dsm

#endif  // DSM_TASKS_JSONL_EXPORT_H_
