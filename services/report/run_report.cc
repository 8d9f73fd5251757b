#include "services/report/run_report.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "services/report/bar_chart.h"
#include "services/report/html_text.h"
#include "services/report/line_chart.h"

namespace dsm {
namespace {

constexpr char kStyle[] = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2933;
       background: #ffffff; }
header { background: #1f2a37; color: #ffffff; padding: 18px 32px; }
header h1 { margin: 0 0 6px 0; font-size: 24px; }
header .meta { margin: 0; color: #d3dae3; }
main { max-width: 1000px; margin: 0 auto; padding: 8px 24px 40px 24px; }
h2 { border-bottom: 1px solid #d8dee4; padding-bottom: 4px; margin-top: 32px; }
figure { margin: 12px 0 24px 0; }
figcaption { font-weight: 600; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d8dee4; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #52606d; color: #ffffff; }
.state-succeeded, .state-completed, .state-done { background: #2e7d32; }
.state-failed, .state-cancelled, .state-canceled { background: #c62828; }
.held { background: #e8f5e9; color: #1b5e20; font-weight: 600; }
.not-held { background: #ffebee; color: #b71c1c; font-weight: 600; }
.claim-description { color: #52606d; font-size: 90%; }
.none { color: #52606d; font-style: italic; }
pre { background: #f6f8fa; border: 1px solid #d8dee4; padding: 12px; overflow: auto; font-size: 13px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font-size: 12px; fill: #334155; }
svg.chart .tick { font-size: 11px; fill: #52606d; }
svg.chart .grid { stroke: #e6e9ed; stroke-width: 1; }
svg.chart .axis { stroke: #7b8794; stroke-width: 1; }
svg.chart .frame { fill: none; stroke: #9aa5b1; stroke-width: 1; }
svg.chart .band-edge { stroke: #9aa5b1; stroke-width: 1; stroke-dasharray: 3 3; }
svg.chart text.band-label { font-size: 11px; font-weight: 600; }
svg.chart .bar-value { font-size: 10px; }
svg.chart .empty { font-size: 14px; fill: #7b8794; font-style: italic; }
svg.chart .legend-item { cursor: default; }
svg.chart .series.dim { opacity: 0.12; }
)css";

// Hovering a legend entry of a line chart dims the other lines. The page shows
// everything without it; the last line marks that the script ran to the end.
constexpr char kScript[] = R"js(
(function () {
  var charts = document.querySelectorAll('svg.line-chart');
  for (var c = 0; c < charts.length; c++) {
    var lines = charts[c].querySelectorAll('.series');
    var items = charts[c].querySelectorAll('.legend-item');
    for (var i = 0; i < items.length; i++) {
      items[i].addEventListener('mouseenter', function (key, lines) {
        return function () {
          for (var j = 0; j < lines.length; j++) {
            lines[j].classList.toggle('dim', lines[j].getAttribute('data-key') !== key);
          }
        };
      }(items[i].getAttribute('data-key'), lines));
      items[i].addEventListener('mouseleave', function (lines) {
        return function () {
          for (var j = 0; j < lines.length; j++) lines[j].classList.remove('dim');
        };
      }(lines));
    }
  }
  document.documentElement.setAttribute('data-report-ready', '1');
})();
)js";

// Opens section `id` under heading `title`. An empty section gets `none`
// and is closed at once: returns false, nothing more to add.
bool OpenSection(const char* id, const char* title, bool empty, const char* none, std::string* html) {
  absl::StrAppend(html, "<section id=\"", id, "\"><h2>", title, "</h2>");
  if (empty) absl::StrAppend(html, "<p class=\"none\">", none, "</p></section>");
  return !empty;
}

// Appends `item` unless `items` holds it already (keeps the order of first appearance).
template <typename T>
void AddOnce(std::vector<T>* items, const T& item) {
  if (std::find(items->begin(), items->end(), item) == items->end()) items->push_back(item);
}

// Names and colours of phases: a phase keeps one colour in every chart, and
// labels carry the iteration only when the run had more than one.
class PhaseStyle {
 public:
  explicit PhaseStyle(const RunReportData& data) {
    for (const ReportPhaseSpan& p : data.phases) Note(p.phase, p.iteration);
    for (const ReportSeries& s : data.series) Note(s.phase, s.iteration);
    for (const ReportEvaluation& e : data.evaluations) Note(e.phase, e.iteration);
  }

  std::string Label(const std::string& phase, uint32_t iteration) const {
    return several_iterations_ ? absl::StrCat(phase, " #", iteration) : phase;
  }

  int Color(const std::string& phase) const {
    const auto it = std::find(names_.begin(), names_.end(), phase);
    return static_cast<int>(it - names_.begin());
  }

 private:
  void Note(const std::string& phase, uint32_t iteration) {
    AddOnce(&names_, phase);
    several_iterations_ = several_iterations_ || iteration > 1;
  }

  std::vector<std::string> names_;
  bool several_iterations_ = false;
};

// A CSS class from free text: lower-case letters, digits and '-'.
std::string ClassName(const std::string& text) {
  std::string out;
  for (const char c : text) out += absl::ascii_isalnum(static_cast<unsigned char>(c)) ? absl::ascii_tolower(c) : '-';
  return out;
}

std::string NumberCell(double value) { return absl::StrCat("<td class=\"num\">", FormatNumber(value), "</td>"); }

void AppendHeader(const RunReportData& data, std::string* html) {
  absl::StrAppend(html, "<header><h1>dsm run <span class=\"run-name\">", HtmlEscape(data.run_name),
                  "</span></h1><p class=\"meta\"><span class=\"state state-", ClassName(data.state), "\">",
                  HtmlEscape(data.state.empty() ? "unknown" : data.state), "</span>");
  if (!data.started_at.empty()) absl::StrAppend(html, " · started ", HtmlEscape(data.started_at));
  absl::StrAppend(html, " · wall time ", HtmlEscape(FormatDuration(data.wall_seconds)), "</p></header>");
}

void AppendClaims(const RunReportData& data, std::string* html) {
  if (!OpenSection("claims", "Claims", data.claims.empty(), "No claims were measured on this run.", html)) return;
  absl::StrAppend(html, "<table><tr><th>claim</th><th>before → after</th><th>change</th><th>result</th></tr>");
  for (const ReportClaim& claim : data.claims) {
    absl::StrAppend(html, "<tr><td>", HtmlEscape(claim.name), "<div class=\"claim-description\">",
                    HtmlEscape(claim.description), "</div></td><td class=\"num\">", FormatNumber(claim.before),
                    " → ", FormatNumber(claim.after), "</td>", NumberCell(claim.after - claim.before),
                    claim.held ? "<td class=\"held\">held</td>" : "<td class=\"not-held\">did not hold</td>",
                    "</tr>");
  }
  absl::StrAppend(html, "</table></section>");
}

void AppendTrainingCharts(const RunReportData& data, const PhaseStyle& style, std::string* html) {
  std::vector<std::string> metrics;
  for (const ReportSeries& s : data.series) AddOnce(&metrics, s.metric);
  // Reward first, then KL, then the rest as they came.
  auto rank = [](const std::string& metric) {
    return absl::StartsWith(metric, "reward") ? 0 : absl::StartsWith(metric, "kl") ? 1 : 2;
  };
  std::stable_sort(metrics.begin(), metrics.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  if (!OpenSection("metrics", "Training metrics", metrics.empty(), "No training metrics were recorded.", html)) return;
  for (const std::string& metric : metrics) {
    LineChart chart;
    chart.metric = metric;
    for (const ReportPhaseSpan& p : data.phases) {
      chart.bands.push_back({style.Label(p.phase, p.iteration), style.Color(p.phase), p.start_seconds,
                             p.end_seconds});
    }
    for (const ReportSeries& s : data.series) {
      if (s.metric != metric) continue;
      LineChartSeries line{style.Label(s.phase, s.iteration), style.Color(s.phase), {}};
      for (const ReportPoint& point : s.points) line.points.emplace_back(point.x, point.y);
      chart.series.push_back(std::move(line));
    }
    absl::StrAppend(html, "<figure><figcaption>", HtmlEscape(metric), "</figcaption>", RenderLineChartSvg(chart),
                    "</figure>");
  }
  absl::StrAppend(html, "</section>");
}

void AppendEvaluations(const RunReportData& data, const PhaseStyle& style, std::string* html) {
  if (!OpenSection("evaluations", "Evaluations", data.evaluations.empty(), "No evaluations were recorded.", html)) {
    return;
  }
  // Groups: (phase, iteration) in order of appearance; kinds: the points, "before" and "after" first.
  std::vector<std::pair<std::string, uint32_t>> groups;
  std::vector<std::string> points = {"before", "after"};
  std::vector<std::string> metrics;
  for (const ReportEvaluation& e : data.evaluations) {
    AddOnce(&groups, {e.phase, e.iteration});
    AddOnce(&points, e.point);
    for (const auto& [name, value] : e.metrics) AddOnce(&metrics, name);
  }
  std::sort(metrics.begin(), metrics.end());
  for (const std::string& metric : metrics) {
    BarChart chart;
    chart.metric = metric;
    for (size_t k = 0; k < points.size(); ++k) chart.kinds.push_back({points[k], k == 0 ? 9 : static_cast<int>(k - 1)});
    for (const auto& [phase, iteration] : groups) {
      BarGroup group{style.Label(phase, iteration), std::vector<std::optional<double>>(points.size())};
      for (const ReportEvaluation& e : data.evaluations) {  // the last one of each point wins
        const auto value = e.metrics.find(metric);
        if (e.phase != phase || e.iteration != iteration || value == e.metrics.end()) continue;
        const auto k = std::find(points.begin(), points.end(), e.point) - points.begin();
        group.values[static_cast<size_t>(k)] = value->second;
      }
      chart.groups.push_back(std::move(group));
    }
    absl::StrAppend(html, "<figure><figcaption>", HtmlEscape(metric), "</figcaption>", RenderBarChartSvg(chart),
                    "</figure>");
  }
  absl::StrAppend(html, "<table><tr><th>phase</th><th>point</th><th>items</th><th>at</th>");
  for (const std::string& metric : metrics) absl::StrAppend(html, "<th>", HtmlEscape(metric), "</th>");
  absl::StrAppend(html, "</tr>");
  for (const ReportEvaluation& e : data.evaluations) {
    absl::StrAppend(html, "<tr><td>", HtmlEscape(style.Label(e.phase, e.iteration)), "</td><td>",
                    HtmlEscape(e.point), "</td><td class=\"num\">", e.items, "</td><td class=\"num\">",
                    HtmlEscape(FormatDuration(e.at_seconds)), "</td>");
    for (const std::string& metric : metrics) {
      const auto value = e.metrics.find(metric);
      absl::StrAppend(html, value == e.metrics.end() ? "<td></td>" : NumberCell(value->second));
    }
    absl::StrAppend(html, "</tr>");
  }
  absl::StrAppend(html, "</table></section>");
}

void AppendPhases(const RunReportData& data, const PhaseStyle& style, std::string* html) {
  if (!OpenSection("phases", "Phases", data.phases.empty(), "No phase ran.", html)) return;
  absl::StrAppend(html, "<table><tr><th>phase</th><th>iteration</th><th>start</th><th>end</th><th>duration</th></tr>");
  for (const ReportPhaseSpan& p : data.phases) {
    absl::StrAppend(html, "<tr><td>", HtmlEscape(style.Label(p.phase, p.iteration)), "</td><td class=\"num\">",
                    p.iteration, "</td><td class=\"num\">", HtmlEscape(FormatDuration(p.start_seconds)),
                    "</td><td class=\"num\">", HtmlEscape(FormatDuration(p.end_seconds)), "</td><td class=\"num\">",
                    HtmlEscape(FormatDuration(p.end_seconds - p.start_seconds)), "</td></tr>");
  }
  absl::StrAppend(html, "</table></section>");
}

void AppendSummary(const RunReportData& data, std::string* html) {
  if (!OpenSection("summary", "Summary", data.summary.empty(), "No summary numbers.", html)) return;
  absl::StrAppend(html, "<table><tr><th>name</th><th>value</th></tr>");
  for (const auto& [name, value] : data.summary) {
    absl::StrAppend(html, "<tr><td>", HtmlEscape(name), "</td>", NumberCell(value), "</tr>");
  }
  absl::StrAppend(html, "</table></section>");
}

}  // namespace

std::string RenderRunReportHtml(const RunReportData& data) {
  const PhaseStyle style(data);
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>dsm run ",
      HtmlEscape(data.run_name), "</title><style>", kStyle, "</style></head><body>");
  AppendHeader(data, &html);
  absl::StrAppend(&html, "<main>");
  AppendClaims(data, &html);
  AppendTrainingCharts(data, style, &html);
  AppendEvaluations(data, style, &html);
  AppendPhases(data, style, &html);
  AppendSummary(data, &html);
  absl::StrAppend(&html, "<section id=\"config\"><h2>Configuration</h2><pre>", HtmlEscape(data.config_yaml),
                  "</pre></section></main><script>", kScript, "</script></body></html>\n");
  return html;
}

absl::Status WriteRunReport(const RunReportData& data, const std::string& path) {
  const absl::Status status = WriteFileAtomically(path, RenderRunReportHtml(data));
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("writing run report ", path, ": ", status.message()));
}

}  // namespace dsm
