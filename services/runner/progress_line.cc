#include "services/runner/progress_line.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"

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
  std::string line = absl::StrFormat("%-36s ", label);
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

namespace {

std::string Label(v1::Phase phase, uint32_t iteration) {
  return absl::StrCat(PhaseLabel(phase), " (it ", iteration, ")");
}

absl::Time EventTime(const v1::RunEvent& event) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(event.time()));
}

}  // namespace

PhaseProgressDisplay::PhaseProgressDisplay(std::ostream* out, bool tty, absl::Duration refresh)
    : out_(out), tty_(tty), refresh_(refresh) {}

void PhaseProgressDisplay::OnEvent(const v1::RunEvent& event) {
  if (event.has_phase_started()) {
    EndLine();
    open_ = true;
    phase_ = event.phase_started().phase();
    iteration_ = event.phase_started().iteration();
    phase_started_ = EventTime(event);
    Draw(ProgressLine(Label(phase_, iteration_), 0, 0, "", absl::ZeroDuration()), false);
    last_drawn_ = phase_started_;
  } else if (event.has_phase_finished()) {
    const v1::PhaseFinished& f = event.phase_finished();
    const absl::Duration elapsed =
        absl::Nanoseconds(google::protobuf::util::TimeUtil::DurationToNanoseconds(f.elapsed()));
    Draw(ProgressLine(Label(f.phase(), f.iteration()), f.progress().done(), f.progress().total(), f.progress().unit(),
                      elapsed),
         true);
    if (f.phase() == phase_ && f.iteration() == iteration_) open_ = false;
  }
}

void PhaseProgressDisplay::OnStatus(const v1::RunStatus& status, absl::Time now) {
  if (!open_ || status.phase() != phase_ || status.iteration() != iteration_) return;
  if (!tty_ && now - last_drawn_ < refresh_) return;
  const v1::PhaseProgress& p = status.progress();
  Draw(ProgressLine(Label(phase_, iteration_), p.done(), p.total(), p.unit(), now - phase_started_), false);
  last_drawn_ = now;
}

void PhaseProgressDisplay::EndLine() {
  if (line_pending_) *out_ << "\n" << std::flush;
  line_pending_ = false;
}

void PhaseProgressDisplay::Draw(const std::string& line, bool final_line) {
  if (tty_) {
    *out_ << "\r" << line;
    line_pending_ = true;
    if (final_line) EndLine();
    *out_ << std::flush;
  } else {
    *out_ << line << "\n" << std::flush;
  }
}

}  // namespace dsm
