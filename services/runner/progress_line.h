// One line of a run's progress, as `dsm run` prints it: the phase, a bar,
// done/total with its unit, and the time in the phase, e.g.
//   phase 1 verifier RL (it 1)   [##########..........]  128/256 proofs   0:42
// Without a total (0) the bar is left out (a pure function); and
// PhaseProgressDisplay, which turns a run's events and status polls into
// those lines: one line per phase, begun when the phase starts and closed
// with its final count when it finishes, however short the phase was.
#ifndef DSM_SERVICES_RUNNER_PROGRESS_LINE_H_
#define DSM_SERVICES_RUNNER_PROGRESS_LINE_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "dsm/v1/coordinator.pb.h"

namespace dsm {

// "phase 0 warm-up SFT", "phase 1 verifier RL", ..., "evaluation", "done".
std::string PhaseLabel(v1::Phase phase);

std::string ProgressLine(const std::string& label, uint64_t done, uint64_t total, const std::string& unit,
                         absl::Duration elapsed, int bar_width = 24);

// Thread-compatible.
class PhaseProgressDisplay {
 public:
  // `out` is not owned. On a terminal (`tty`) the open phase's line is
  // redrawn in place on every status; otherwise a line is printed when a
  // phase starts, at most every `refresh` while it runs, and when it ends.
  PhaseProgressDisplay(std::ostream* out, bool tty, absl::Duration refresh = absl::Seconds(10));

  // phase_started opens a phase's line; phase_finished closes it with the
  // phase's final progress and time. Other events are ignored.
  void OnEvent(const v1::RunEvent& event);
  // Refreshes the open phase's line from a status poll (ignored when the
  // status is about another phase).
  void OnStatus(const v1::RunStatus& status, absl::Time now);
  // Ends a line left open (before printing anything else).
  void EndLine();

 private:
  void Draw(const std::string& line, bool final_line);

  std::ostream* const out_;
  const bool tty_;
  const absl::Duration refresh_;
  bool open_ = false;  // a phase has started and not finished
  v1::Phase phase_ = v1::PHASE_UNSPECIFIED;
  uint32_t iteration_ = 0;
  absl::Time phase_started_ = absl::InfinitePast();
  absl::Time last_drawn_ = absl::InfinitePast();
  bool line_pending_ = false;  // tty: a line drawn without its newline
};

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_PROGRESS_LINE_H_
