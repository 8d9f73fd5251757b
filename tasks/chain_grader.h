// ChainGrader: the built-in chain domain's exact checker as a Grader
// (services/coordinator/grader.h), for evaluations and the report.
#ifndef DSM_TASKS_CHAIN_GRADER_H_
#define DSM_TASKS_CHAIN_GRADER_H_

#include "services/coordinator/grader.h"
#include "tasks/chain_checker.h"

namespace dsm {

class ChainGrader final : public Grader {
 public:
  explicit ChainGrader(ChainAnalysisMarkers markers = {}) : markers_(std::move(markers)) {}
  absl::StatusOr<GradedProof> GradeProof(const std::string& statement, const std::string& proof) const override;
  absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string& statement, const std::string& proof,
                                               const std::string& analysis) const override;

 private:
  const ChainAnalysisMarkers markers_;
};

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_GRADER_H_
