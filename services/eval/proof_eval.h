// EvaluateProofs: `dsm eval`'s measurement — test-time scaling
// (proof_search.h) over a set of problems, graded against an exact Grader
// when the domain has one (the built-in chain domain does; a user's own
// problems may not, and then only the model's own scores are reported).
//
// For refinement, score_at[t] is the mean true score of the proof each
// problem holds after t + 1 attempts (a problem that stopped early keeps its
// last proof), so score_at[0] is plain one-sample proving and the curve shows
// what the extra attempts bought. For best-of-n, the selected proof's mean
// true score is set against the mean over all n proofs (what one sample
// scores on average), the first proof, and the best of the n (the oracle: what
// a perfect verifier would pick).
#ifndef DSM_SERVICES_EVAL_PROOF_EVAL_H_
#define DSM_SERVICES_EVAL_PROOF_EVAL_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "services/coordinator/grader.h"
#include "services/eval/proof_search.h"

namespace dsm {

struct EvalProblem {
  std::string problem_id;
  std::string statement;
};

struct ProofEvalOptions {
  std::optional<RefineOptions> refine;    // nullopt: not run
  std::optional<BestOfNOptions> best_of_n;  // nullopt: not run
  uint32_t max_concurrent_problems = 16;  // problems in flight at once (their samples share batches)
};

struct ProblemResult {
  EvalProblem problem;
  std::vector<ProofAttempt> refinement;
  std::vector<double> refinement_truth;  // per attempt; empty without a grader
  std::optional<BestOfN> best_of_n;
  std::vector<double> candidate_truth;   // per candidate; empty without a grader
};

struct RefineSummary {
  std::vector<double> score_at;       // [t]: mean true score after t + 1 attempts (grader only)
  std::vector<double> self_score_at;  // [t]: mean self-score after t + 1 attempts (malformed = 0)
  double mean_attempts = 0;
  double self_confirmed_rate = 0;     // share of problems whose last proof gave itself 1
};

struct BestOfNSummary {
  double selected_verification = 0;  // mean verifier score of the selected proofs
  // Grader only:
  double sample_score = 0;    // mean true score over every candidate
  double first_score = 0;     // the first candidate's
  double selected_score = 0;  // the selected candidate's
  double oracle_score = 0;    // the best candidate's
};

struct ProofEvalReport {
  bool graded = false;
  std::vector<ProblemResult> problems;
  std::optional<RefineSummary> refine;
  std::optional<BestOfNSummary> best_of_n;
};

// `grader` may be null. `on_problem` (may be empty) runs after each problem,
// from any thread, with the number finished so far. The first failed call
// fails the whole evaluation.
absl::StatusOr<ProofEvalReport> EvaluateProofs(ProofBackend& backend, const PromptTemplate& generator,
                                               const PromptTemplate* refiner, const std::vector<EvalProblem>& problems,
                                               const Grader* grader, const ProofEvalOptions& options,
                                               const std::function<void(size_t)>& on_problem = {});

// The report as JSON: the summaries and, per problem, every proof with its
// self-score, verification and true scores.
nlohmann::json ProofEvalReportJson(const ProofEvalReport& report);

}  // namespace dsm

#endif  // DSM_SERVICES_EVAL_PROOF_EVAL_H_
