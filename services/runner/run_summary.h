// The numbers a run is judged by (summary.json), read from its evaluations
// against the exact checker, and the paper's claims checked on them.
//
// Fields (null when the run did not measure them):
//   verifier_agreement_before / _after   phase 1, iteration 1, before / after
//   hallucinated_issue_rate_phase1       after phase 1
//   hallucinated_issue_rate_phase3       after phase 3 (last iteration)
//   generator_score_before / _after      before phase 4 of iteration 1 / after
//                                        phase 4 of the last iteration
//   self_score_agreement_before / _after likewise
//   autolabel_agreement, autolabel_kept_fraction   phase 5, last iteration
//   autolabel_missed_issue_rate, _false_issue_rate, _wrong_severity_rate
//                                        where its disagreeing labels go wrong
//   wall_seconds                         the whole run
// plus whatever `extra` holds (e.g. the phase-0 warm-up's held-out numbers).
//
// Claims: verifier agreement rises in phase 1; the hallucinated-issue rate
// does not rise from phase 1 to phase 3; the generator's score and its
// self-score agreement rise in phase 4; auto-labels agree with the checker
// at least 0.9 of the time. A claim whose numbers are missing does not hold.
#ifndef DSM_SERVICES_RUNNER_RUN_SUMMARY_H_
#define DSM_SERVICES_RUNNER_RUN_SUMMARY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dsm/v1/coordinator.pb.h"

namespace dsm {

struct SummaryClaim {
  std::string name;         // snake_case, e.g. "verifier_agreement_rises"
  std::string description;  // one sentence
  std::optional<double> before;
  std::optional<double> after;
  bool held = false;
};

struct RunSummary {
  std::map<std::string, std::optional<double>> fields;  // every field above, null = not measured
  std::vector<SummaryClaim> claims;
};

RunSummary SummarizeRun(const std::vector<v1::Evaluation>& evaluations, double wall_seconds,
                        const std::map<std::string, double>& extra = {});

// summary.json's text: {"run": ..., "state": ..., fields..., "claims": [...]}, 2-space indented.
std::string RunSummaryJson(const RunSummary& summary, const std::string& run_name, const std::string& state);

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_RUN_SUMMARY_H_
