#include "services/coordinator/auto_label_evaluation.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace dsm {

absl::StatusOr<v1::Evaluation> EvaluateAutoLabels(RunStore* store, const Grader& grader, uint32_t iteration,
                                                  uint32_t considered) {
  // Disagreements by kind: a faulty proof labelled 1 (its issue missed), a correct proof labelled
  // below 1 (an issue that is not there), a faulty proof given the wrong one of 0 and 0.5.
  uint32_t labels = 0;
  ScoreTally tally;
  for (int64_t after = 0;;) {
    absl::StatusOr<std::vector<StoredProof>> batch = store->Proofs(after, 256);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const StoredProof& p : *batch) {
      after = p.seq;
      if (p.iteration != iteration || p.record.labeller() != "auto") continue;
      absl::StatusOr<std::optional<v1::ProblemRecord>> problem = store->GetProblem(p.record.problem_id());
      if (!problem.ok()) return problem.status();
      if (!problem->has_value()) {
        return absl::FailedPreconditionError(
            absl::StrCat("proof ", p.record.proof_id(), ": problem ", p.record.problem_id(), " is not in the run"));
      }
      absl::StatusOr<GradedProof> truth = grader.GradeProof((*problem)->statement(), p.record.proof());
      if (!truth.ok()) return truth.status();
      ++labels;
      const double label = p.record.has_score() ? p.record.score() : -1;
      tally.Add(truth->score, label);
    }
  }
  if (labels == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("evaluation: no proof was auto-labelled in iteration ", iteration, " (", considered,
                     " considered)"));
  }
  v1::Evaluation e;
  e.set_phase(v1::PHASE_AUTO_LABEL);
  e.set_iteration(iteration);
  e.set_point(v1::EVALUATION_POINT_AFTER);
  e.set_items(labels);
  for (const auto& [name, rate] : tally.Rates("autolabel", labels)) (*e.mutable_metrics())[name] = rate;
  (*e.mutable_metrics())["autolabel_kept_fraction"] =
      static_cast<double>(labels) / std::max(considered, labels);
  (*e.mutable_metrics())["autolabel_labels"] = labels;
  *e.mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  if (absl::Status s = store->RecordEvaluation(e, absl::Now()); !s.ok()) return s;
  return e;
}

}  // namespace dsm
