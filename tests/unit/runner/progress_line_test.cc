// Progress lines and the per-phase display `dsm run` builds from a run's events and status polls.
#include "services/runner/progress_line.h"

#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"

namespace dsm {
namespace {

using ::google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

v1::RunEvent Started(v1::Phase phase, uint32_t iteration, absl::Time at) {
  v1::RunEvent e;
  *e.mutable_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(at));
  e.mutable_phase_started()->set_phase(phase);
  e.mutable_phase_started()->set_iteration(iteration);
  return e;
}

v1::RunEvent Finished(v1::Phase phase, uint32_t iteration, absl::Duration elapsed, uint64_t done, uint64_t total,
                      const char* unit) {
  v1::RunEvent e;
  v1::PhaseFinished* f = e.mutable_phase_finished();
  f->set_phase(phase);
  f->set_iteration(iteration);
  *f->mutable_elapsed() = TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(elapsed));
  f->mutable_progress()->set_done(done);
  f->mutable_progress()->set_total(total);
  f->mutable_progress()->set_unit(unit);
  return e;
}

v1::RunStatus Status(v1::Phase phase, uint32_t iteration, uint64_t done, uint64_t total) {
  v1::RunStatus s;
  s.set_phase(phase);
  s.set_iteration(iteration);
  s.mutable_progress()->set_done(done);
  s.mutable_progress()->set_total(total);
  s.mutable_progress()->set_unit("proofs");
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(ProgressLine, BarCountUnitAndClock) {
  const std::string line = ProgressLine("phase 1 verifier RL (it 1)", 6, 24, "proofs", absl::Seconds(75), 8);
  EXPECT_THAT(line, StartsWith("phase 1 verifier RL (it 1)"));
  EXPECT_THAT(line, HasSubstr("[##......]"));
  EXPECT_THAT(line, HasSubstr("6/24"));
  EXPECT_THAT(line, HasSubstr("proofs"));
  EXPECT_THAT(line, HasSubstr("1:15"));
  EXPECT_THAT(ProgressLine("x", 3, 0, "steps", absl::ZeroDuration(), 8), testing::Not(HasSubstr("[")));
  // The longest label still has a space before its bar.
  EXPECT_THAT(ProgressLine("phase 3 enhanced verifier RL (it 12)", 1, 2, "proofs+analyses", absl::ZeroDuration()),
              HasSubstr("(it 12) ["));
}

TEST(PhaseProgressDisplay, APhaseThatEndsBetweenTwoPollsStillGetsItsLines) {
  std::ostringstream out;
  PhaseProgressDisplay display(&out, /*tty=*/false, absl::Seconds(10));
  display.OnEvent(Started(v1::PHASE_VERIFIER_RL, 1, kT0));
  display.OnEvent(Finished(v1::PHASE_VERIFIER_RL, 1, absl::Seconds(2), 6, 6, "proofs"));
  display.OnEvent(Started(v1::PHASE_META_VERIFIER_RL, 1, kT0 + absl::Seconds(2)));
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_THAT(lines[0], StartsWith("phase 1 verifier RL (it 1)"));
  EXPECT_THAT(lines[1], StartsWith("phase 1 verifier RL (it 1)"));
  EXPECT_THAT(lines[1], HasSubstr("6/6"));
  EXPECT_THAT(lines[1], HasSubstr("0:02"));
  EXPECT_THAT(lines[2], StartsWith("phase 2 meta-verifier RL (it 1)"));
}

TEST(PhaseProgressDisplay, PollsRefreshOnlyTheOpenPhaseAndAtMostEveryRefresh) {
  std::ostringstream out;
  PhaseProgressDisplay display(&out, /*tty=*/false, absl::Seconds(10));
  display.OnEvent(Started(v1::PHASE_GENERATOR_RL, 1, kT0));
  display.OnStatus(Status(v1::PHASE_GENERATOR_RL, 1, 1, 8), kT0 + absl::Seconds(3));    // too soon
  display.OnStatus(Status(v1::PHASE_AUTO_LABEL, 1, 5, 8), kT0 + absl::Seconds(30));     // another phase
  display.OnStatus(Status(v1::PHASE_GENERATOR_RL, 1, 4, 8), kT0 + absl::Seconds(12));   // shown
  display.OnStatus(Status(v1::PHASE_GENERATOR_RL, 2, 4, 8), kT0 + absl::Seconds(40));   // another iteration
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 2u) << out.str();
  EXPECT_THAT(lines[1], HasSubstr("4/8"));
  EXPECT_THAT(lines[1], HasSubstr("0:12"));
  // Once finished, polls about it draw nothing more.
  display.OnEvent(Finished(v1::PHASE_GENERATOR_RL, 1, absl::Seconds(20), 8, 8, "problems"));
  display.OnStatus(Status(v1::PHASE_GENERATOR_RL, 1, 8, 8), kT0 + absl::Seconds(60));
  EXPECT_EQ(Lines(out.str()).size(), 3u) << out.str();
}

TEST(PhaseProgressDisplay, OnATerminalTheLineIsRedrawnInPlaceAndEndsWhenThePhaseDoes) {
  std::ostringstream out;
  PhaseProgressDisplay display(&out, /*tty=*/true);
  display.OnEvent(Started(v1::PHASE_VERIFIER_RL, 1, kT0));
  display.OnStatus(Status(v1::PHASE_VERIFIER_RL, 1, 3, 6), kT0 + absl::Seconds(1));
  EXPECT_EQ(out.str().find('\n'), std::string::npos);
  display.OnEvent(Finished(v1::PHASE_VERIFIER_RL, 1, absl::Seconds(2), 6, 6, "proofs"));
  const std::vector<std::string> lines = Lines(out.str());
  ASSERT_EQ(lines.size(), 1u);
  const std::vector<std::string> draws = absl::StrSplit(lines[0], '\r', absl::SkipEmpty());
  ASSERT_EQ(draws.size(), 3u) << out.str();
  EXPECT_THAT(draws[1], HasSubstr("3/6"));
  EXPECT_THAT(draws[2], HasSubstr("6/6"));
  // Something else printed while a line is open starts on a line of its own.
  display.OnEvent(Started(v1::PHASE_META_VERIFIER_RL, 1, kT0 + absl::Seconds(2)));
  display.EndLine();
  out << "dsm run: worker restarted\n";
  EXPECT_THAT(Lines(out.str()), ElementsAre(testing::_, StartsWith("\rphase 2 meta-verifier RL"),
                                            "dsm run: worker restarted"));
}

}  // namespace
}  // namespace dsm
