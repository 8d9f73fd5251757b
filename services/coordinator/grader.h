// Grader: an exact judge used to *evaluate* a run (the built-in domain's
// checker, tasks/chain_grader.h). It grades proofs and verifier analyses
// against the truth, for the report and summary.json — it never produces a
// training reward (those come from the learned verifier, as in the paper).
// Implementations are thread-safe.
#ifndef DSM_SERVICES_COORDINATOR_GRADER_H_
#define DSM_SERVICES_COORDINATOR_GRADER_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace dsm {

struct GradedProof {
  double score = 0;    // the true score: 0, 0.5 or 1
  int faulty_line = 0;  // first faulty line, 0 = none
  std::string reason;   // one line, empty when correct
};

struct GradedAnalysis {
  // Names an issue that is not there (a step that is not faulty, or a score
  // below 1 for a correct proof).
  bool hallucinated = false;
  bool score_agrees = false;  // its score is the proof's true score
  double meta_score = 0;      // the meta-rubric's score of the analysis
};

// How a score someone gave a proof (a verifier's analysis, phase 5's label) differs from its
// true score: both in {0, 0.5, 1}.
enum class ScoreDisagreement {
  kNone,           // the true score
  kMissedIssue,    // 1 for a proof that has an issue
  kFalseIssue,     // below 1 for a correct proof
  kWrongSeverity,  // 0 for a proof worth 0.5, or 0.5 for one worth 0
};

inline ScoreDisagreement CompareScore(double truth, double given) {
  if (given == truth) return ScoreDisagreement::kNone;
  if (truth < 1.0 && given >= 1.0) return ScoreDisagreement::kMissedIssue;
  if (truth >= 1.0) return ScoreDisagreement::kFalseIssue;
  return ScoreDisagreement::kWrongSeverity;
}

// Scores given to proofs, counted by how they compare with the true ones (CompareScore).
struct ScoreTally {
  uint32_t agree = 0;
  uint32_t missed_issue = 0;
  uint32_t false_issue = 0;
  uint32_t wrong_severity = 0;

  void Add(double truth, double given) {
    switch (CompareScore(truth, given)) {
      case ScoreDisagreement::kNone: ++agree; break;
      case ScoreDisagreement::kMissedIssue: ++missed_issue; break;
      case ScoreDisagreement::kFalseIssue: ++false_issue; break;
      case ScoreDisagreement::kWrongSeverity: ++wrong_severity; break;
    }
  }

  // Each count as a share of `of` items (> 0): <prefix>_agreement, <prefix>_missed_issue_rate,
  // <prefix>_false_issue_rate, <prefix>_wrong_severity_rate.
  std::map<std::string, double> Rates(const std::string& prefix, uint32_t of) const {
    const double n = of;
    return {{prefix + "_agreement", agree / n},
            {prefix + "_missed_issue_rate", missed_issue / n},
            {prefix + "_false_issue_rate", false_issue / n},
            {prefix + "_wrong_severity_rate", wrong_severity / n}};
  }
};

class Grader {
 public:
  virtual ~Grader() = default;
  // INVALID_ARGUMENT when `statement` is not a problem of this grader's domain.
  virtual absl::StatusOr<GradedProof> GradeProof(const std::string& statement, const std::string& proof) const = 0;
  virtual absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string& statement, const std::string& proof,
                                                       const std::string& analysis) const = 0;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_GRADER_H_
