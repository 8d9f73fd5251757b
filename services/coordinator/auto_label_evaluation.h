// EvaluateAutoLabels: how right phase 5's labels are, measured against an
// exact Grader (never used as a reward). Over the proofs auto-labelled in
// `iteration` (labeller "auto"), it reports
//   autolabel_agreement      share of kept labels whose score equals the
//                            proof's true score
//   autolabel_kept_fraction  labels kept / proofs considered (`considered`:
//                            the well-formed new proofs the phase judged,
//                            AutoLabelProgress::proofs)
//   autolabel_labels         labels kept
// and where the kept labels that disagree go wrong (shares of the kept labels;
// with autolabel_agreement they sum to 1):
//   autolabel_missed_issue_rate    a faulty proof labelled 1: every analysis
//                                  missed its issue, or none was confirmed
//   autolabel_false_issue_rate     a correct proof labelled below 1: an issue
//                                  that is not there, confirmed
//   autolabel_wrong_severity_rate  a faulty proof labelled 0 for 0.5 or 0.5
//                                  for 0 (e.g. a reversed fact called absent)
// as a v1::Evaluation of PHASE_AUTO_LABEL, `iteration`, point AFTER, stored
// in the run. FAILED_PRECONDITION when no label was kept (nothing to grade).
#ifndef DSM_SERVICES_COORDINATOR_AUTO_LABEL_EVALUATION_H_
#define DSM_SERVICES_COORDINATOR_AUTO_LABEL_EVALUATION_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/grader.h"
#include "services/coordinator/run_store.h"

namespace dsm {

absl::StatusOr<v1::Evaluation> EvaluateAutoLabels(RunStore* store, const Grader& grader, uint32_t iteration,
                                                  uint32_t considered);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_AUTO_LABEL_EVALUATION_H_
