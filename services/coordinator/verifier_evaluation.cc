#include "services/coordinator/verifier_evaluation.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace dsm {

absl::StatusOr<v1::Evaluation> EvaluateVerifier(RunStore* store, ScoringClient* scoring, const Grader& grader,
                                                const VerifierEvaluationOptions& options) {
  uint32_t proofs = 0, well_formed = 0, hallucinated = 0;
  ScoreTally tally;  // of the well-formed analyses' scores
  uint64_t lowest_version = std::numeric_limits<uint64_t>::max();
  for (int64_t after = 0; proofs < options.max_proofs;) {
    absl::StatusOr<std::vector<StoredProof>> batch = store->Proofs(after, 256);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const StoredProof& p : *batch) {
      after = p.seq;
      if (proofs >= options.max_proofs) break;
      absl::StatusOr<std::optional<v1::ProblemRecord>> problem = store->GetProblem(p.record.problem_id());
      if (!problem.ok()) return problem.status();
      if (!problem->has_value() || (*problem)->split() != v1::DATASET_SPLIT_EVAL) continue;
      absl::StatusOr<GradedProof> truth = grader.GradeProof((*problem)->statement(), p.record.proof());
      if (!truth.ok()) return truth.status();
      v1::VerifyRequest request;
      request.set_problem((*problem)->statement());
      request.set_proof(p.record.proof());
      request.set_n(1);
      *request.mutable_params() = options.params;
      request.set_min_adapter_version(options.min_adapter_version);
      request.set_request_id(absl::StrCat("eval-p", static_cast<int>(options.phase), "-i", options.iteration, "-",
                                          p.record.proof_id()));
      absl::StatusOr<v1::VerifyResponse> verified = scoring->Verify(request);
      if (!verified.ok()) return verified.status();
      ++proofs;
      if (verified->analyses_size() == 0) continue;
      const v1::Analysis& a = verified->analyses(0);
      if (a.score().format() != v1::FORMAT_STATUS_OK) continue;
      lowest_version = std::min(lowest_version, a.completion().adapter_version());
      ++well_formed;
      tally.Add(truth->score, a.score().value());
      absl::StatusOr<GradedAnalysis> graded =
          grader.GradeAnalysis((*problem)->statement(), p.record.proof(), a.completion().text());
      if (!graded.ok()) return graded.status();
      hallucinated += graded->hallucinated;
    }
  }
  if (proofs == 0) {
    return absl::FailedPreconditionError("evaluation: the run has no labelled proofs of evaluation problems");
  }
  v1::Evaluation e;
  e.set_phase(options.phase);
  e.set_iteration(options.iteration);
  e.set_point(options.point);
  e.set_items(proofs);
  // Shares of all proofs: with the format failures they add up to 1.
  for (const auto& [name, rate] : tally.Rates("verifier", proofs)) (*e.mutable_metrics())[name] = rate;
  (*e.mutable_metrics())["format_ok_rate"] = static_cast<double>(well_formed) / proofs;
  (*e.mutable_metrics())["hallucinated_issue_rate"] =
      well_formed == 0 ? 0.0 : static_cast<double>(hallucinated) / well_formed;
  // The oldest verifier adapter version among the analyses: which adapter was graded.
  if (lowest_version != std::numeric_limits<uint64_t>::max()) {
    (*e.mutable_metrics())["adapter_version"] = static_cast<double>(lowest_version);
  }
  *e.mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  if (absl::Status s = store->RecordEvaluation(e, absl::Now()); !s.ok()) return s;
  return e;
}

}  // namespace dsm
