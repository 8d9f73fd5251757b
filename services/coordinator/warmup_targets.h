// Phase 0's SFT targets for data a user imports (coordinator.warmup_epochs): the meta-verifier's
// assessment of a labelled analysis and the generator's output for a labelled proof, written in
// the output formats the prompt templates declare (their markers), so a model that has never
// seen those formats learns to write what the scorers parse before phase 1's rewards need it.
// The built-in domain does not use these: it renders richer targets from its checker
// (tasks/chain_warmup.h).
//
// Pure functions.
#ifndef DSM_SERVICES_COORDINATOR_WARMUP_TARGETS_H_
#define DSM_SERVICES_COORDINATOR_WARMUP_TARGETS_H_

#include <string>

#include "dsm/v1/coordinator.pb.h"
#include "services/scoring/score_parser.h"

namespace dsm {

// "<evaluation marker>\n<why>\n\n<score marker>\n\\boxed{<meta_score>}": why = the label's issue
// when it gives one, else what the meta-score means (METHOD.md's meta-rubric).
std::string MetaVerifierTarget(const v1::LabelledAnalysis& analysis, const OutputMarkers& markers);

// "## Solution\n\n<proof>\n\n## Self Evaluation\n\n" and a self-evaluation in the verifier's format
// (`markers`) that gives the proof its label: the label's issue, or for a proof scored 1 that
// every step holds.
std::string GeneratorTarget(const v1::LabelledProof& proof, const OutputMarkers& markers);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_WARMUP_TARGETS_H_
