#include "tasks/chain_grader.h"

#include "absl/strings/str_cat.h"

namespace dsm {

absl::StatusOr<GradedProof> ChainGrader::GradeProof(const std::string& statement, const std::string& proof) const {
  absl::StatusOr<ChainVerdict> verdict = CheckChainProof(statement, proof);
  if (!verdict.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("statement: ", verdict.status().message()));
  }
  GradedProof out;
  out.score = verdict->score;
  out.faulty_line = verdict->first_faulty_line();
  if (const ChainFault* f = verdict->first_fault()) out.reason = f->reason;
  return out;
}

absl::StatusOr<GradedAnalysis> ChainGrader::GradeAnalysis(const std::string& statement, const std::string& proof,
                                                          const std::string& analysis) const {
  absl::StatusOr<ChainVerdict> verdict = CheckChainProof(statement, proof);
  if (!verdict.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("statement: ", verdict.status().message()));
  }
  const ChainAnalysisAssessment a = AssessChainAnalysis(*verdict, analysis, markers_);
  GradedAnalysis out;
  out.hallucinated = a.hallucinated;
  out.score_agrees = a.score_agrees;
  out.meta_score = a.meta_score;
  return out;
}

}  // namespace dsm
