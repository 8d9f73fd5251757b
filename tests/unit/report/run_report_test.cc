#include "services/report/run_report.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/report/chart_axis.h"

namespace dsm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// The one chart whose data-metric is `metric` (its whole <svg> element).
std::string ChartOf(const std::string& html, const std::string& metric) {
  const size_t at = html.find(absl::StrCat("data-metric=\"", metric, "\""));
  if (at == std::string::npos) return "";
  const size_t start = html.rfind("<svg", at);
  const size_t end = html.find("</svg>", at);
  return html.substr(start, end + 6 - start);
}

// Every number inside a points="…" or a coordinate attribute, parsed.
std::vector<double> Coordinates(const std::string& svg) {
  std::vector<double> out;
  static const std::regex kAttr(R"re(\s(?:x|y|x1|x2|y1|y2|cx|cy|width|height|points)="([^"]*)")re");
  for (std::sregex_iterator it(svg.begin(), svg.end(), kAttr), end; it != end; ++it) {
    const std::string value = (*it)[1];
    static const std::regex kNumber(R"re([^ ,]+)re");
    for (std::sregex_iterator n(value.begin(), value.end(), kNumber); n != end; ++n) {
      out.push_back(std::strtod(n->str().c_str(), nullptr));
      if (n->str().find_first_not_of("-.0123456789") != std::string::npos) out.back() = kNaN;
    }
  }
  return out;
}

// The line colour of the series with legend key `key` in `chart`.
std::string StrokeOf(const std::string& chart, const std::string& key) {
  std::smatch match;
  const std::regex pattern(absl::StrCat("data-key=\"", key, "\"><polyline fill=\"none\" stroke=\"([^\"]*)\""));
  return std::regex_search(chart, match, pattern) ? match[1].str() : "";
}

// Each listed element opens as often as it closes.
void ExpectBalanced(const std::string& html) {
  for (const char* tag : {"html", "head", "body", "main", "section", "table", "tr", "svg", "g", "text", "figure",
                          "script", "style", "pre", "title"}) {
    EXPECT_EQ(Count(html, absl::StrCat("<", tag, ">")) + Count(html, absl::StrCat("<", tag, " ")),
              Count(html, absl::StrCat("</", tag, ">")))
        << "<" << tag << ">";
  }
}

RunReportData TwoPhaseRun() {
  RunReportData data;
  data.run_name = "tiny";
  data.state = "succeeded";
  data.started_at = "2026-12-02T09:00:00Z";
  data.wall_seconds = 200;
  data.config_yaml = "run:\n  name: tiny\n";
  data.phases = {{"verifier_rl", 1, 0, 100}, {"generator_rl", 1, 100, 200}};
  for (const std::string metric : {"reward_mean", "kl", "loss"}) {
    data.series.push_back({metric, "verifier_rl", 1, {{10, 0.1}, {50, 0.3}, {90, 0.4}}});
    data.series.push_back({metric, "generator_rl", 1, {{110, 0.2}, {150, 0.5}, {190, 0.6}}});
  }
  data.evaluations = {{"verifier_rl", 1, "before", {{"verifier_accuracy", 0.5}}, 64, 0},
                      {"verifier_rl", 1, "after", {{"verifier_accuracy", 0.75}}, 64, 100}};
  data.summary = {{"verifier_accuracy", 0.75}, {"samples_total", 18432}};
  data.claims = {{"verifier learns", "verifier agreement rises in phase 1", 0.5, 0.75, true},
                 {"generator learns", "proof pass rate rises in phase 4", 0.4, 0.35, false}};
  return data;
}

TEST(RunReport, EscapesEveryTextFromTheData) {
  RunReportData data = TwoPhaseRun();
  data.run_name = "<script>alert(\"x\")</script> & 'q'";
  data.state = "<b>done</b>";
  data.config_yaml = "name: \"<img src=x onerror=alert(1)>\" # a & b\n";
  data.phases[0].phase = "phase<1>";
  data.series[0].phase = "phase<1>";
  data.series[0].metric = "reward\"mean";
  data.summary["<i>n</i>"] = 1;
  data.claims[0].description = "rises </td> & more";
  const std::string html = RenderRunReportHtml(data);

  EXPECT_THAT(html, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("<b>done")));
  EXPECT_THAT(html, Not(HasSubstr("<i>n")));
  EXPECT_THAT(html, Not(HasSubstr("phase<1>")));
  EXPECT_THAT(html, Not(HasSubstr("rises </td>")));
  EXPECT_EQ(Count(html, "<script"), 1u) << "only the page's own script";
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"));
  EXPECT_THAT(html, HasSubstr("name: &quot;&lt;img src=x onerror=alert(1)&gt;&quot; # a &amp; b"));
  EXPECT_THAT(html, HasSubstr("data-metric=\"reward&quot;mean\""));
  EXPECT_THAT(html, HasSubstr(">phase&lt;1&gt;</text>"));
  EXPECT_THAT(html, HasSubstr("rises &lt;/td&gt; &amp; more"));
  ExpectBalanced(html);
}

TEST(RunReport, DrawsOneLineChartPerMetricWithEveryPhase) {
  const std::string html = RenderRunReportHtml(TwoPhaseRun());
  EXPECT_EQ(Count(html, "class=\"chart line-chart\""), 3u);
  for (const std::string metric : {"reward_mean", "kl", "loss"}) {
    EXPECT_EQ(Count(html, absl::StrCat("class=\"chart line-chart\" data-metric=\"", metric, "\"")), 1u) << metric;
    const std::string chart = ChartOf(html, metric);
    // Both phases as bands with labels, and one line of three points per phase.
    EXPECT_EQ(Count(chart, "class=\"band\""), 2u) << metric;
    EXPECT_THAT(chart, HasSubstr(">verifier_rl</text>"));
    EXPECT_THAT(chart, HasSubstr(">generator_rl</text>"));
    EXPECT_EQ(Count(chart, "<polyline"), 2u) << metric;
    EXPECT_EQ(Count(chart, "<circle"), 6u) << metric;
  }
  ExpectBalanced(html);
}

TEST(RunReport, PutsRewardThenKlFirst) {
  RunReportData data;
  for (const std::string metric : {"loss", "grad_norm", "kl", "reward_mean"}) {
    data.series.push_back({metric, "verifier_rl", 1, {{1, 1}}});
  }
  const std::string html = RenderRunReportHtml(data);
  const size_t reward = html.find("data-metric=\"reward_mean\"");
  const size_t kl = html.find("data-metric=\"kl\"");
  const size_t loss = html.find("data-metric=\"loss\"");
  const size_t grad = html.find("data-metric=\"grad_norm\"");
  ASSERT_NE(grad, std::string::npos);
  EXPECT_LT(reward, kl);
  EXPECT_LT(kl, loss);
  EXPECT_LT(loss, grad);
}

TEST(RunReport, LaterIterationsAreLabelledAsSuch) {
  RunReportData data = TwoPhaseRun();
  data.phases.push_back({"verifier_rl", 2, 200, 300});
  data.series.push_back({"kl", "verifier_rl", 2, {{210, 0.2}, {290, 0.1}}});
  const std::string chart = ChartOf(RenderRunReportHtml(data), "kl");
  EXPECT_THAT(chart, HasSubstr(">verifier_rl #1</text>"));
  EXPECT_THAT(chart, HasSubstr(">verifier_rl #2</text>"));
  EXPECT_EQ(Count(chart, "<polyline"), 3u);
  // One legend entry per phase and iteration, one colour per phase name.
  EXPECT_EQ(Count(chart, "class=\"legend-item\""), 3u);
  EXPECT_EQ(StrokeOf(chart, "verifier_rl #1"), StrokeOf(chart, "verifier_rl #2"));
  EXPECT_NE(StrokeOf(chart, "verifier_rl #1"), StrokeOf(chart, "generator_rl #1"));
  EXPECT_THAT(StrokeOf(chart, "generator_rl #1"), ::testing::MatchesRegex("#[0-9a-f]{6}"));
}

TEST(RunReport, ShowsClaimsEvaluationsSummaryAndConfig) {
  const std::string html = RenderRunReportHtml(TwoPhaseRun());
  EXPECT_THAT(html, HasSubstr("<span class=\"run-name\">tiny</span>"));
  EXPECT_THAT(html, HasSubstr("class=\"state state-succeeded\">succeeded<"));
  EXPECT_THAT(html, HasSubstr("wall time 3 min 20 s"));
  EXPECT_THAT(html, HasSubstr("0.5 → 0.75</td><td class=\"num\">0.25</td><td class=\"held\">held</td>"));
  EXPECT_THAT(html, HasSubstr("0.4 → 0.35</td><td class=\"num\">-0.05</td><td class=\"not-held\">did not hold</td>"));
  // Evaluation: one bar chart per metric, one bar for each of before and after.
  EXPECT_EQ(Count(html, "class=\"chart eval-chart\""), 1u);
  const std::string eval = ChartOf(html, "verifier_accuracy");
  EXPECT_EQ(Count(eval, "class=\"bar\""), 2u);
  EXPECT_THAT(eval, HasSubstr("verifier_rl · before: 0.5</title>"));
  EXPECT_THAT(eval, HasSubstr("verifier_rl · after: 0.75</title>"));
  EXPECT_THAT(html, HasSubstr("<td>samples_total</td><td class=\"num\">18432</td>"));
  EXPECT_THAT(html, HasSubstr("<pre>run:\n  name: tiny\n</pre>"));
}

TEST(RunReport, EmptyDataStillRendersAWholePage) {
  const std::string html = RenderRunReportHtml(RunReportData{});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(absl::EndsWith(html, "</html>\n"));
  EXPECT_THAT(html, Not(HasSubstr("<svg")));
  EXPECT_THAT(html, HasSubstr("No claims were measured on this run."));
  EXPECT_THAT(html, HasSubstr("No training metrics were recorded."));
  EXPECT_THAT(html, HasSubstr("No evaluations were recorded."));
  EXPECT_THAT(html, HasSubstr("wall time 0.0 s"));
  EXPECT_THAT(html, HasSubstr("data-report-ready"));
  ExpectBalanced(html);
}

TEST(RunReport, SkipsNonFiniteValuesAndKeepsEveryCoordinateFinite) {
  RunReportData data;
  data.phases = {{"verifier_rl", 1, 0, kInf}, {"generator_rl", 1, kNaN, 10}};
  data.series = {{"reward_mean", "verifier_rl", 1, {{0, kNaN}, {1, kInf}, {2, 0.5}, {kNaN, 1}, {4, -kInf}, {5, 0.7}}},
                 {"kl", "verifier_rl", 1, {{1, kNaN}, {2, kInf}}},
                 {"loss", "verifier_rl", 1, {{3, 0.25}}},
                 {"huge", "verifier_rl", 1, {{0, -1e308}, {1, 1e308}, {1e308, 0}}}};
  data.evaluations = {{"verifier_rl", 1, "before", {{"acc", kNaN}}, 1, 0},
                      {"verifier_rl", 1, "after", {{"acc", 0.5}}, 1, 1}};
  data.claims = {{"c", "d", kNaN, kInf, false}};
  data.summary = {{"s", kNaN}};
  data.wall_seconds = kNaN;
  const std::string html = RenderRunReportHtml(data);

  const std::string reward = ChartOf(html, "reward_mean");
  ASSERT_EQ(Count(reward, "<polyline"), 1u);
  const std::string points = reward.substr(reward.find("points=\""), reward.find("\"/>", reward.find("points=")) -
                                                                          reward.find("points=\""));
  EXPECT_EQ(Count(points, ","), 2u) << points;  // (2, 0.5) and (5, 0.7) only
  EXPECT_EQ(Count(reward, "<circle"), 2u);
  const std::string kl = ChartOf(html, "kl");
  EXPECT_EQ(Count(kl, "<polyline"), 0u);
  EXPECT_EQ(Count(kl, "<circle"), 0u);
  EXPECT_THAT(kl, HasSubstr("no finite values recorded"));
  const std::string loss = ChartOf(html, "loss");
  EXPECT_EQ(Count(loss, "<polyline"), 0u) << "one point is a dot, not a line";
  EXPECT_EQ(Count(loss, "<circle"), 1u);
  EXPECT_EQ(Count(ChartOf(html, "acc"), "class=\"bar\""), 1u);

  for (const std::string metric : {"reward_mean", "kl", "loss", "huge", "acc"}) {
    const std::vector<double> coords = Coordinates(ChartOf(html, metric));
    ASSERT_FALSE(coords.empty()) << metric;
    for (const double c : coords) {
      EXPECT_TRUE(std::isfinite(c)) << metric;
      EXPECT_GE(c, -1) << metric;
      EXPECT_LE(c, 961) << metric;  // inside the view box
    }
  }
  EXPECT_THAT(html, HasSubstr("n/a → n/a"));
  EXPECT_THAT(html, HasSubstr("<td>s</td><td class=\"num\">n/a</td>"));
  EXPECT_THAT(html, HasSubstr("wall time n/a"));
  ExpectBalanced(html);
}

TEST(NiceScale, CoversTheRangeWithRoundTicks) {
  const AxisScale scale = NiceScale(0.12, 0.87, 5);
  EXPECT_DOUBLE_EQ(scale.lo, 0);
  EXPECT_DOUBLE_EQ(scale.hi, 1);
  ASSERT_EQ(scale.ticks.size(), 6u);
  EXPECT_NEAR(scale.ticks[1], 0.2, 1e-12);
  const AxisScale one = NiceScale(3, 3, 5);
  EXPECT_LT(one.lo, 3);
  EXPECT_GT(one.hi, 3);
  const AxisScale wide = NiceScale(-1e308, 1e308, 5);
  EXPECT_TRUE(std::isfinite(wide.hi - wide.lo));
  EXPECT_LE(wide.ticks.size(), 7u);
}

TEST(WriteRunReport, WritesThePageAtomically) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/run_report_test_", getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string path = dir + "/report.html";
  ASSERT_TRUE(WriteRunReport(TwoPhaseRun(), path).ok());
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, RenderRunReportHtml(TwoPhaseRun()));
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) left.push_back(entry.path().filename());
  EXPECT_THAT(left, ElementsAre("report.html")) << "no temporary file left behind";
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(WriteRunReport, AnUnwritablePathIsAnErrorNamingIt) {
  const std::string path = "/nonexistent-dsm-dir/runs/tiny/report.html";
  const absl::Status status = WriteRunReport(TwoPhaseRun(), path);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

}  // namespace
}  // namespace dsm
