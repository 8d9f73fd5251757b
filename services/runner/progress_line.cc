#include "services/runner/progress_line.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dsm {

std::string PhaseLabel(v1::Phase phase) {
  switch (phase) {
    case v1::PHASE_WARMUP_SFT: return "phase 0 warm-up SFT";
    case v1::PHASE_VERIFIER_RL: return "phase 1 verifier RL";
    case v1::PHASE_META_VERIFIER_RL: return "phase 2 meta-verifier RL";
    case v1::PHASE_ENHANCED_VERIFIER_RL: return "phase 3 enhanced verifier RL";
    case v1::PHASE_GENERATOR_RL: return "phase 4 generator RL";
    case v1::PHASE_AUTO_LABEL: return "phase 5 auto-labelling";
    case v1::PHASE_EVALUATE: return "evaluation";
    case v1::PHASE_DONE: return "done";
    default: return "starting";
  }
}

std::string ProgressLine(const std::string& label, uint64_t done, uint64_t total, const std::string& unit,
                         absl::Duration elapsed, int bar_width) {
  const int64_t seconds = std::max<int64_t>(0, absl::ToInt64Seconds(elapsed));
  const std::string clock = absl::StrFormat("%d:%02d", seconds / 60, seconds % 60);
  std::string line = absl::StrFormat("%-34s", label);
  if (total > 0) {
    const uint64_t shown = std::min(done, total);
    const int filled = static_cast<int>(shown * static_cast<uint64_t>(bar_width) / total);
    absl::StrAppend(&line, "[", std::string(filled, '#'), std::string(bar_width - filled, '.'), "] ",
                    absl::StrFormat("%5d/%-5d", done, total));
  } else {
    absl::StrAppend(&line, absl::StrFormat("%-*s %5d", bar_width + 2, "", done));
  }
  absl::StrAppend(&line, " ", absl::StrFormat("%-16s", unit), " ", clock);
  return line;
}

}  // namespace dsm
