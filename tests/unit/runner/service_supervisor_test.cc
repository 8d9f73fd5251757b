// ServiceSupervisor: children start, a child that dies is restarted after its backoff (its log
// appended), one that keeps dying fails the supervision with its name, and StopAll ends them all,
// stage by stage, each stage's children together.
#include "services/runner/service_supervisor.h"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

SupervisorOptions ShOptions(const std::string& dir) {
  SupervisorOptions o;
  o.binary = "/bin/sh";
  o.log_dir = dir;
  o.restart_backoff = absl::Milliseconds(50);
  o.max_backoff = absl::Milliseconds(200);
  o.stop_grace = absl::Seconds(2);
  return o;
}

// Polls until `done` or 10 s; returns the last Poll status.
template <typename F>
absl::Status PollUntil(ServiceSupervisor& s, std::vector<std::string>* events, F done) {
  const absl::Time until = absl::Now() + absl::Seconds(10);
  absl::Status status;
  while (absl::Now() < until) {
    status = s.Poll(events);
    if (!status.ok() || done()) return status;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return status;
}

TEST(ServiceSupervisor, RestartsAChildThatDiesAndKeepsTheOthersRunning) {
  TestDir dir;
  ServiceSupervisor s(ShOptions(dir.path()));
  ASSERT_TRUE(s.Start({{"steady", {"-c", "echo up; exec sleep 60"}}, {"flaky", {"-c", "echo run; exit 3"}}}).ok());
  const int steady = s.pid("steady");
  EXPECT_GT(steady, 0);
  std::vector<std::string> events;
  absl::Status st = PollUntil(s, &events, [&] { return s.restarts("flaky") >= 2; });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_GE(s.restarts("flaky"), 2);
  EXPECT_EQ(s.restarts("steady"), 0);
  EXPECT_EQ(s.pid("steady"), steady);
  ASSERT_FALSE(events.empty());
  EXPECT_THAT(events[0], HasSubstr("flaky exited with status 3; restarting in"));
  EXPECT_THAT(events[1], HasSubstr("flaky restarted"));
  // The log is appended across restarts.
  const std::string log = Read(s.LogPath("flaky"));
  EXPECT_GE(std::count(log.begin(), log.end(), '\n'), 2) << log;
  s.StopAll();
  EXPECT_EQ(s.pid("steady"), -1);
  EXPECT_EQ(kill(steady, 0), -1);  // gone
}

TEST(ServiceSupervisor, AChildThatKeepsDyingFailsWithItsNameAndLog) {
  TestDir dir;
  SupervisorOptions o = ShOptions(dir.path());
  o.max_restarts = 2;
  ServiceSupervisor s(o);
  ASSERT_TRUE(s.Start({{"broken", {"-c", "kill -9 $$"}}}).ok());
  std::vector<std::string> events;
  absl::Status st = PollUntil(s, &events, [] { return false; });
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("broken was killed by signal 9 after 2 restarts"));
  EXPECT_THAT(st.message(), HasSubstr(s.LogPath("broken")));
}

TEST(ServiceSupervisor, RefusesRepeatedOrEmptyNames) {
  TestDir dir;
  ServiceSupervisor s(ShOptions(dir.path()));
  EXPECT_EQ(s.Start({{"a", {"-c", "true"}}, {"a", {"-c", "true"}}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Start({{"", {"-c", "true"}}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServiceSupervisor, StopAllEndsAChildThatIgnoresSigterm) {
  TestDir dir;
  SupervisorOptions o = ShOptions(dir.path());
  o.stop_grace = absl::Milliseconds(200);
  ServiceSupervisor s(o);
  ASSERT_TRUE(s.Start({{"stubborn", {"-c", "trap '' TERM; while true; do sleep 0.05; done"}}}).ok());
  absl::SleepFor(absl::Milliseconds(100));  // the trap is set
  const int pid = s.pid("stubborn");
  const absl::Time before = absl::Now();
  s.StopAll();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  EXPECT_EQ(kill(pid, 0), -1);
}

// A child that, on SIGTERM, notes when it got it in <dir>/<name>.term, takes 0.3 s to finish, then
// notes when it exits in <dir>/<name>.exit (nanoseconds since the epoch).
SupervisedChild SlowToStop(const std::string& dir, const std::string& name, int stage) {
  const std::string base = absl::StrCat(dir, "/", name);
  return SupervisedChild{name,
                         {"-c", absl::StrCat("trap 'date +%s%N > ", base, ".term; sleep 0.3; date +%s%N > ", base,
                                             ".exit; exit 0' TERM; while true; do sleep 0.02; done")},
                         stage};
}

int64_t Stamp(const std::string& path) {
  int64_t ns = 0;
  std::string text = Read(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  EXPECT_TRUE(absl::SimpleAtoi(text, &ns)) << path << ": \"" << text << "\"";
  return ns;
}

TEST(ServiceSupervisor, StopAllStopsStageByStageAndOneStagesChildrenTogether) {
  TestDir dir;
  ServiceSupervisor s(ShOptions(dir.path()));
  // Started in this order; the stages, not the order, decide.
  ASSERT_TRUE(s.Start({SlowToStop(dir.path(), "server", 2), SlowToStop(dir.path(), "broker", 1),
                       SlowToStop(dir.path(), "client", 0), SlowToStop(dir.path(), "other_server", 2)})
                  .ok());
  absl::SleepFor(absl::Milliseconds(200));  // the traps are set
  s.StopAll();
  const std::string d = dir.path() + "/";
  // Each stage begins after the one before has exited.
  EXPECT_GE(Stamp(d + "broker.term"), Stamp(d + "client.exit"));
  EXPECT_GE(Stamp(d + "server.term"), Stamp(d + "broker.exit"));
  EXPECT_GE(Stamp(d + "other_server.term"), Stamp(d + "broker.exit"));
  // The two of stage 2 were both asked before either had finished.
  EXPECT_LT(Stamp(d + "server.term"), Stamp(d + "other_server.exit"));
  EXPECT_LT(Stamp(d + "other_server.term"), Stamp(d + "server.exit"));
  EXPECT_EQ(s.pid("server"), -1);
  EXPECT_EQ(s.pid("client"), -1);
}

}  // namespace
}  // namespace dsm
