#include "services/coordinator/warmup_targets.h"

#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

std::string ScoreText(double score) { return score >= 1.0 ? "1" : score > 0.0 ? "0.5" : "0"; }

std::string Assessment(const OutputMarkers& markers, const std::string& why, double score) {
  return absl::StrCat(markers.evaluation, "\n", why, "\n\n", markers.score, "\n\\boxed{", ScoreText(score), "}");
}

}  // namespace

std::string MetaVerifierTarget(const v1::LabelledAnalysis& analysis, const OutputMarkers& markers) {
  const double ms = analysis.meta_score();
  std::string why = analysis.issue();
  if (why.empty()) {
    why = ms >= 1.0  ? "Every issue it names is real, and its score fits them."
          : ms > 0.0 ? "Some of what it names is real, but not all of it, or its score does not fit."
                     : "The issues it names are not in the solution.";
  }
  return Assessment(markers, why, ms);
}

std::string GeneratorTarget(const v1::LabelledProof& proof, const OutputMarkers& markers) {
  std::string why = proof.issue();
  if (why.empty()) {
    why = proof.score() >= 1.0 ? "Every step is correct and fully justified." : "The proof has an issue.";
  }
  return absl::StrCat(kSolutionHeader, "\n\n", proof.proof(), "\n\n", kSelfEvaluationHeader, "\n\n",
                      Assessment(markers, why, proof.score()));
}

}  // namespace dsm
