// EvaluateVerifier: how well the current verifier grades held-out proofs,
// measured against an exact Grader (never used as a reward). For the
// labelled proofs of evaluation problems (split EVAL), up to max_proofs, it
// asks the verifier service for one analysis each (the caller's sampling
// parameters, e.g. greedy) and reports
//   verifier_agreement       share of proofs whose parsed score equals the
//                            true score (format failures count as misses)
//   hallucinated_issue_rate  share of well-formed analyses that name an issue
//                            that is not there (Grader::GradeAnalysis)
//   format_ok_rate           share of analyses with a valid format
//   verifier_missed_issue_rate, verifier_false_issue_rate, verifier_wrong_severity_rate
//                            shares of proofs whose parsed score was 1 for a faulty proof,
//                            below 1 for a correct one, 0 for one worth 0.5 or 0.5 for one
//                            worth 0 (CompareScore; with the agreement and the format
//                            failures they add up to 1)
//   adapter_version          the oldest verifier adapter version the analyses
//                            came from (absent when none had a valid format)
// as a v1::Evaluation of `phase`, `iteration` and `point`, stored in the run
// (RunStore::RecordEvaluation, which also appends the event).
#ifndef DSM_SERVICES_COORDINATOR_VERIFIER_EVALUATION_H_
#define DSM_SERVICES_COORDINATOR_VERIFIER_EVALUATION_H_

#include "absl/status/statusor.h"
#include "services/coordinator/grader.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"

namespace dsm {

struct VerifierEvaluationOptions {
  v1::Phase phase = v1::PHASE_VERIFIER_RL;
  uint32_t iteration = 1;
  v1::EvaluationPoint point = v1::EVALUATION_POINT_AFTER;
  uint32_t max_proofs = 64;
  v1::SamplingParams params;  // e.g. temperature 0 for greedy
  uint64_t min_adapter_version = 0;  // the verifier version to evaluate (at least)
};

absl::StatusOr<v1::Evaluation> EvaluateVerifier(RunStore* store, ScoringClient* scoring, const Grader& grader,
                                                const VerifierEvaluationOptions& options);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_VERIFIER_EVALUATION_H_
