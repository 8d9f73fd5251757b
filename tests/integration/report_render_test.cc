// The run report rendered by headless Chromium: no script errors, the page's
// script runs to its end, every chart is in the DOM, and the screenshot shows
// a page (header, charts in the phase colours), not a blank.
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/report/run_report.h"
#include "tests/integration/child_process.h"
#include "tests/integration/png_image.h"

namespace dsm {
namespace {

constexpr char kChromium[] = "/usr/bin/chromium";

// A run shaped like `dsm run configs/tiny.yaml`: warm-up, phases 1-5, then a
// second pass of 3-5, with noisy but rising rewards.
RunReportData RealisticRun() {
  RunReportData data;
  data.run_name = "tiny <2026-12-02>";
  data.state = "succeeded";
  data.started_at = "2026-12-02T09:00:00Z";
  data.config_yaml = "run:\n  name: tiny\nmodel:\n  layers: 4\n  hidden: 128\npipeline:\n  iterations: 2\n";
  const std::vector<std::pair<std::string, uint32_t>> phases = {
      {"warmup", 1},          {"verifier_rl", 1},     {"meta_verifier_rl", 1}, {"verifier_rl_meta", 1},
      {"generator_rl", 1},    {"auto_label", 1},      {"verifier_rl_meta", 2}, {"generator_rl", 2},
      {"auto_label", 2}};
  double t = 0;
  int k = 0;
  for (const auto& [phase, iteration] : phases) {
    const double length = phase == "warmup" ? 60 : phase == "auto_label" ? 15 : 40;
    data.phases.push_back({phase, iteration, t, t + length});
    if (phase != "auto_label") {
      ReportSeries reward{"reward_mean", phase, iteration, {}};
      ReportSeries kl{"kl", phase, iteration, {}};
      ReportSeries loss{"loss", phase, iteration, {}};
      for (int i = 0; i < 20; ++i) {
        const double x = t + length * (i + 0.5) / 20;
        const double noise = 0.05 * std::sin(1.7 * (i + 13 * k));
        reward.points.push_back({x, 0.3 + 0.02 * i + noise});
        kl.points.push_back({x, 0.001 * i * (1 + noise)});
        loss.points.push_back({x, 2.0 * std::exp(-0.1 * i) + noise});
      }
      if (phase != "warmup") {
        data.series.push_back(reward);
        data.series.push_back(kl);
      }
      data.series.push_back(loss);
      data.evaluations.push_back({phase, iteration, "before", {{"verifier_accuracy", 0.5 + 0.04 * k},
                                                                {"proof_pass_rate", 0.2 + 0.03 * k}}, 128, t});
      data.evaluations.push_back({phase, iteration, "after", {{"verifier_accuracy", 0.55 + 0.04 * k},
                                                               {"proof_pass_rate", 0.22 + 0.03 * k}}, 128, t + length});
    }
    t += length;
    ++k;
  }
  data.wall_seconds = t;
  data.summary = {{"verifier_accuracy", 0.84}, {"proof_pass_rate", 0.43}, {"samples_total", 18432}};
  data.claims = {{"verifier learns", "verifier agreement with the checker rises in phase 1", 0.54, 0.59, true},
                 {"meta-verifier helps", "fewer hallucinated issues after phase 3", 0.31, 0.22, true},
                 {"generator improves", "proof pass rate rises in phase 4", 0.32, 0.30, false}};
  return data;
}

// The end of a long log, for failure messages.
std::string Tail(const std::string& log) { return log.size() > 3000 ? "…" + log.substr(log.size() - 3000) : log; }

// Runs Chromium headless on `url` with `args`; returns its stdout+stderr.
std::string RunChromium(const std::string& dir, const std::string& name, const std::vector<std::string>& args,
                        const std::string& url) {
  std::vector<std::string> argv = {"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                   "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                                   absl::StrCat("--user-data-dir=", dir, "/profile-", name)};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  dsm_test::ChildProcess chromium(dsm_test::Program{kChromium}, argv, absl::StrCat(dir, "/", name, ".log"));
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (chromium.Running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(chromium.Running()) << "chromium " << name << " did not finish in 90 s";
  EXPECT_EQ(chromium.Stop(SIGKILL), 0) << Tail(chromium.Log());
  return chromium.Log();
}

// The browser console's lines (messages and uncaught exceptions) in a log.
std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> out;
  for (const absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, "CONSOLE") || absl::StrContains(line, "Uncaught")) out.emplace_back(line);
  }
  return out;
}

class ReportRender : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kChromium, X_OK) != 0) {
      GTEST_SKIP() << kChromium << " is missing: install Debian's chromium (scripts/setup.sh) to run this test";
    }
    dir_ = ::testing::TempDir() + "/report_render";
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(std::filesystem::create_directories(dir_));
    path_ = dir_ + "/report.html";
    ASSERT_TRUE(WriteRunReport(RealisticRun(), path_).ok());
  }

  void TearDown() override {
    // The profiles are large; the page, logs and screenshot stay for a look.
    std::error_code ec;
    for (const char* name : {"/profile-dom", "/profile-screenshot"}) std::filesystem::remove_all(dir_ + name, ec);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(ReportRender, ScriptRunsWithoutErrorsAndEveryChartIsInTheDom) {
  const std::string log = RunChromium(dir_, "dom", {"--dump-dom"}, "file://" + path_);
  EXPECT_THAT(ConsoleLines(log), ::testing::IsEmpty()) << "script errors or console output";
  EXPECT_TRUE(absl::StrContains(log, "data-report-ready=\"1\"")) << "the page's script did not run to its end";
  // The DOM as parsed: every chart and the escaped run name survived.
  for (const std::string metric : {"reward_mean", "kl", "loss"}) {
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat("class=\"chart line-chart\" data-metric=\"", metric, "\"")))
        << metric;
  }
  for (const std::string metric : {"verifier_accuracy", "proof_pass_rate"}) {
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat("class=\"chart eval-chart\" data-metric=\"", metric, "\"")))
        << metric;
  }
  EXPECT_TRUE(absl::StrContains(log, "<span class=\"run-name\">tiny &lt;2026-12-02&gt;</span>"));
}

TEST_F(ReportRender, ScreenshotIsNotBlank) {
  const std::string png = dir_ + "/report.png";
  const std::string log = RunChromium(dir_, "screenshot", {"--screenshot=" + png, "--window-size=1200,2000"},
                                      "file://" + path_);
  EXPECT_THAT(ConsoleLines(log), ::testing::IsEmpty()) << "script errors or console output";
  absl::StatusOr<dsm_test::PngImage> image = dsm_test::ReadPng(png);
  ASSERT_TRUE(image.ok()) << image.status() << "\n" << Tail(log);
  std::cout << "screenshot: " << png << " (" << image->width << "x" << image->height << ")\n";
  ASSERT_EQ(image->width, 1200u);
  ASSERT_EQ(image->height, 2000u);

  // The header is dark, the page white.
  const auto header = image->At(600, 20);
  EXPECT_LT(header[0] + header[1] + header[2], 3 * 80) << "header colour";
  size_t not_white = 0;
  size_t tinted = 0;  // pixels in one of the chart colours (lines, shaded bands)
  std::set<uint32_t> colours;
  for (const auto& px : image->pixels) {
    const int r = px[0], g = px[1], b = px[2];
    if (std::min({r, g, b}) < 240) ++not_white;
    if (std::max({r, g, b}) - std::min({r, g, b}) > 12) ++tinted;
    colours.insert((uint32_t(r) >> 4) << 8 | (uint32_t(g) >> 4) << 4 | (uint32_t(b) >> 4));
  }
  const double share = static_cast<double>(not_white) / static_cast<double>(image->pixels.size());
  const double tinted_share = static_cast<double>(tinted) / static_cast<double>(image->pixels.size());
  std::cout << "not white: " << share << ", coloured: " << tinted_share << ", distinct colours: " << colours.size()
            << "\n";
  EXPECT_GT(share, 0.10) << "the page looks blank";
  EXPECT_GT(tinted_share, 0.05) << "no chart colours on the page";
  EXPECT_GE(colours.size(), 32u) << "too few colours for charts";
}

}  // namespace
}  // namespace dsm
