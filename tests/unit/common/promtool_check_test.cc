// Checks that MetricsRegistry::Exposition() passes `promtool check metrics`
// (parser and lint) from the Debian "prometheus" package, as DESIGN.md §7
// requires. promtool missing is a failure, not a skip: scripts/setup.sh
// installs it.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/metrics_registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

std::string PromtoolPath() {
  if (const char* env = std::getenv("DSM_PROMTOOL"); env != nullptr && *env != '\0') return env;
  return "/usr/bin/promtool";
}

struct CheckResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Writes `exposition` to a temp file and runs `promtool check metrics < file`.
CheckResult RunPromtool(const std::string& exposition) {
  CheckResult result;
  char path[] = "/tmp/dsm_promtool_check_XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) {
    result.output = "mkstemp failed";
    return result;
  }
  ::close(fd);
  {
    std::ofstream file(path, std::ios::binary);
    file << exposition;
  }
  const std::string command =
      absl::StrCat("'", PromtoolPath(), "' check metrics < '", path, "' 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    result.output = "popen failed";
  } else {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
    const int status = ::pclose(pipe);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  }
  ::unlink(path);
  return result;
}

class PromtoolCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(PromtoolPath().c_str(), X_OK), 0)
        << "promtool not found at " << PromtoolPath()
        << ": install the Debian package 'prometheus' (scripts/setup.sh does) or set "
           "DSM_PROMTOOL";
  }
};

TEST_F(PromtoolCheck, EveryMetricTypeWithAwkwardLabelValuesPasses) {
  MetricsRegistry registry;
  const std::string awkward = "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9 end";

  CounterFamily* requests =
      registry
          .AddCounter("dsm_requests_total", "Requests, by \"method\".\nBackslash: \\ done.",
                      {"method", "detail"})
          .value();
  requests->WithLabels({"GET", awkward}).Increment(3);
  requests->WithLabels({"POST", ""}).Increment(0.5);
  registry.AddCounter("dsm_plain_events_total", "Unlabelled counter.")
      .value()
      ->Default()
      .Increment();

  GaugeFamily* level =
      registry.AddGauge("dsm_level_ratio", "Gauge with odd values.", {"k"}).value();
  level->WithLabels({"nan"}).Set(std::numeric_limits<double>::quiet_NaN());
  level->WithLabels({"inf"}).Set(std::numeric_limits<double>::infinity());
  level->WithLabels({"neg_inf"}).Set(-std::numeric_limits<double>::infinity());
  level->WithLabels({"tiny"}).Set(1.5e-300);
  level->WithLabels({"huge"}).Set(1e300);
  level->WithLabels({awkward}).Set(-7);
  registry.AddGauge("dsm_queue_depth", "Unlabelled gauge.").value()->Default().Set(4);

  HistogramFamily* latency =
      registry
          .AddHistogram("dsm_rpc_duration_seconds", "RPC latency.", {"method", "detail"},
                        ExponentialBuckets(0.001, 2.5, 8))
          .value();
  Histogram& h = latency->WithLabels({"Generate", awkward});
  for (double v : {0.0005, 0.002, 0.01, 0.3, 5.0}) h.Observe(v);
  latency->WithLabels({"Score", "x"});
  registry.AddHistogram("dsm_batch_tokens", "Unlabelled histogram.", {}, LinearBuckets(64, 64, 4))
      .value()
      ->Default()
      .Observe(100);

  ASSERT_TRUE(RegisterProcessMetrics(registry, "0.1.0+test \"quoted\"").ok());

  const std::string exposition = registry.Exposition();
  const CheckResult result = RunPromtool(exposition);
  EXPECT_EQ(result.exit_code, 0) << "promtool output:\n"
                                 << result.output << "\nexposition:\n"
                                 << exposition;
  EXPECT_EQ(result.output, "") << "exposition:\n" << exposition;
}

TEST_F(PromtoolCheck, CatchesALintProblem) {
  // What the registry refuses to produce, written by hand: promtool must
  // notice, or the test above proves nothing.
  const CheckResult result = RunPromtool(
      "# HELP dsm_requests A counter without the _total suffix.\n"
      "# TYPE dsm_requests counter\n"
      "dsm_requests 1\n");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("_total"));
}

TEST_F(PromtoolCheck, CatchesBrokenEscaping) {
  // A raw newline inside a label value: the text format forbids it.
  const CheckResult result = RunPromtool(
      "# HELP dsm_x_total X.\n"
      "# TYPE dsm_x_total counter\n"
      "dsm_x_total{k=\"a\nb\"} 1\n");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("parsing error"));
}

}  // namespace
}  // namespace dsm
