// One line of a run's progress, as `dsm run` prints it: the phase, a bar,
// done/total with its unit, and the time in the phase, e.g.
//   phase 1 verifier RL (it 1)   [##########..........]  128/256 proofs   0:42
// Without a total (0) the bar is left out. Pure function.
#ifndef DSM_SERVICES_RUNNER_PROGRESS_LINE_H_
#define DSM_SERVICES_RUNNER_PROGRESS_LINE_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "dsm/v1/coordinator.pb.h"

namespace dsm {

// "phase 0 warm-up SFT", "phase 1 verifier RL", ..., "evaluation", "done".
std::string PhaseLabel(v1::Phase phase);

std::string ProgressLine(const std::string& label, uint64_t done, uint64_t total, const std::string& unit,
                         absl::Duration elapsed, int bar_width = 24);

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_PROGRESS_LINE_H_
