#include "services/report/line_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "services/report/chart_axis.h"
#include "services/report/html_text.h"

namespace dsm {
namespace {

// Layout, in SVG user units (the page scales the whole chart).
constexpr double kWidth = 960;
constexpr double kLeft = 64;
constexpr double kRight = kWidth - 16;
constexpr double kTop = 44;  // two rows of band labels above the plot
constexpr double kBottom = kTop + 220;
constexpr double kLegendTop = kBottom + 52;
constexpr double kLegendRow = 18;
constexpr double kCharWidth = 6.5;  // estimated width of one character at 11-12 px
// Beyond this many points a line shows no dots (the file stays small).
constexpr size_t kMaxDots = 120;

using Points = std::vector<std::pair<double, double>>;

Points FinitePoints(const Points& points) {
  Points out;
  for (const auto& [x, y] : points) {
    if (std::isfinite(x) && std::isfinite(y)) out.emplace_back(x, y);
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

struct Frame {
  AxisScale x;
  AxisScale y;
  double x_divisor = 1;  // 60 when the axis counts minutes
  const char* x_unit = "s";

  double X(double seconds) const { return ScaleTo(x, seconds / x_divisor, kLeft, kRight); }
  double Y(double value) const { return ScaleTo(y, value, kBottom, kTop); }
};

Frame MakeFrame(const LineChart& chart, const std::vector<Points>& lines) {
  double x_lo = 0;
  double x_hi = 0;
  double y_lo = std::numeric_limits<double>::infinity();
  double y_hi = -std::numeric_limits<double>::infinity();
  for (const LineChartBand& band : chart.bands) {
    for (const double t : {band.start, band.end}) {
      if (std::isfinite(t)) {
        x_lo = std::min(x_lo, t);
        x_hi = std::max(x_hi, t);
      }
    }
  }
  for (const Points& line : lines) {
    for (const auto& [x, y] : line) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  }
  Frame frame;
  if (x_hi - x_lo > 600) {
    frame.x_divisor = 60;
    frame.x_unit = "min";
  }
  frame.x = NiceScale(x_lo / frame.x_divisor, x_hi / frame.x_divisor, 10);
  if (y_lo > y_hi) {  // no finite values
    y_lo = 0;
    y_hi = 1;
  }
  frame.y = NiceScale(y_lo, y_hi, 5);
  return frame;
}

void AppendAxes(const Frame& frame, std::string* svg) {
  for (const double tick : frame.y.ticks) {
    const std::string y = Coord(frame.Y(tick));
    absl::StrAppend(svg, "<line class=\"grid\" x1=\"", Coord(kLeft), "\" x2=\"", Coord(kRight), "\" y1=\"", y,
                    "\" y2=\"", y, "\"/><text class=\"tick\" x=\"", Coord(kLeft - 6), "\" y=\"", y,
                    "\" dy=\"4\" text-anchor=\"end\">", HtmlEscape(FormatNumber(tick)), "</text>");
  }
  for (const double tick : frame.x.ticks) {
    const std::string x = Coord(ScaleTo(frame.x, tick, kLeft, kRight));
    absl::StrAppend(svg, "<line class=\"axis\" x1=\"", x, "\" x2=\"", x, "\" y1=\"", Coord(kBottom), "\" y2=\"",
                    Coord(kBottom + 5), "\"/><text class=\"tick\" x=\"", x, "\" y=\"", Coord(kBottom + 18),
                    "\" text-anchor=\"middle\">", HtmlEscape(FormatNumber(tick)), "</text>");
  }
  absl::StrAppend(svg, "<rect class=\"frame\" x=\"", Coord(kLeft), "\" y=\"", Coord(kTop), "\" width=\"",
                  Coord(kRight - kLeft), "\" height=\"", Coord(kBottom - kTop), "\"/>");
  absl::StrAppend(svg, "<text class=\"axis-label\" x=\"", Coord((kLeft + kRight) / 2), "\" y=\"",
                  Coord(kBottom + 36), "\" text-anchor=\"middle\">time since start (", frame.x_unit,
                  ")</text>");
}

// Shaded bands; labels go on the first of two rows above the plot where they
// fit, else the second, else only in the band's tooltip and the legend.
void AppendBands(const LineChart& chart, const Frame& frame, std::string* svg) {
  double row_end[2] = {0, 0};
  for (const LineChartBand& band : chart.bands) {
    if (!std::isfinite(band.start) || !std::isfinite(band.end)) continue;
    const double x0 = frame.X(std::min(band.start, band.end));
    const double x1 = frame.X(std::max(band.start, band.end));
    const std::string color = PaletteColor(band.color);
    const std::string label = HtmlEscape(band.label);
    absl::StrAppend(svg, "<g class=\"band\"><rect x=\"", Coord(x0), "\" y=\"", Coord(kTop), "\" width=\"",
                    Coord(x1 - x0), "\" height=\"", Coord(kBottom - kTop), "\" fill=\"", color,
                    "\" fill-opacity=\"0.14\"><title>", label, ": ", HtmlEscape(FormatNumber(band.start)), "–",
                    HtmlEscape(FormatNumber(band.end)), " s</title></rect><line class=\"band-edge\" x1=\"",
                    Coord(x0), "\" x2=\"", Coord(x0), "\" y1=\"", Coord(kTop - 12), "\" y2=\"", Coord(kBottom),
                    "\"/>");
    const double width = static_cast<double>(band.label.size()) * kCharWidth;
    const double x = std::max(kLeft, std::min(x0 + 3, kRight - width));
    for (int row = 0; row < 2; ++row) {
      if (x < row_end[row] + 6) continue;
      row_end[row] = x + width;
      absl::StrAppend(svg, "<text class=\"band-label\" x=\"", Coord(x), "\" y=\"", Coord(row == 0 ? 16 : 30),
                      "\">", label, "</text>");
      break;
    }
    absl::StrAppend(svg, "</g>");
  }
}

void AppendLine(const LineChartSeries& series, const Points& points, const Frame& frame, std::string* svg) {
  const std::string color = PaletteColor(series.color);
  const std::string label = HtmlEscape(series.label);
  absl::StrAppend(svg, "<g class=\"series\" data-key=\"", label, "\">");
  if (points.size() >= 2) {
    absl::StrAppend(svg, "<polyline fill=\"none\" stroke=\"", color, "\" stroke-width=\"1.8\" points=\"");
    for (const auto& [x, y] : points) absl::StrAppend(svg, Coord(frame.X(x)), ",", Coord(frame.Y(y)), " ");
    absl::StrAppend(svg, "\"/>");
  }
  if (points.size() <= kMaxDots) {
    const char* radius = points.size() == 1 ? "4" : "2.5";
    for (const auto& [x, y] : points) {
      absl::StrAppend(svg, "<circle cx=\"", Coord(frame.X(x)), "\" cy=\"", Coord(frame.Y(y)), "\" r=\"", radius,
                      "\" fill=\"", color, "\"><title>", label, " · ", HtmlEscape(FormatNumber(x)),
                      " s · ", HtmlEscape(FormatNumber(y)), "</title></circle>");
    }
  }
  absl::StrAppend(svg, "</g>");
}

// The legend's entries (one per distinct label), laid out in rows; returns the
// number of rows.
int AppendLegend(const LineChart& chart, std::string* svg) {
  std::vector<const LineChartSeries*> entries;
  for (const LineChartSeries& s : chart.series) {
    const bool seen = std::any_of(entries.begin(), entries.end(),
                                  [&](const LineChartSeries* e) { return e->label == s.label; });
    if (!seen) entries.push_back(&s);
  }
  if (entries.empty()) return 0;
  int rows = 1;
  double x = kLeft;
  for (const LineChartSeries* entry : entries) {
    const double width = 18 + static_cast<double>(entry->label.size()) * kCharWidth + 16;
    if (x + width > kRight && x > kLeft) {
      ++rows;
      x = kLeft;
    }
    const double y = kLegendTop + (rows - 1) * kLegendRow;
    const std::string label = HtmlEscape(entry->label);
    absl::StrAppend(svg, "<g class=\"legend-item\" data-key=\"", label, "\"><rect x=\"", Coord(x), "\" y=\"",
                    Coord(y - 9), "\" width=\"12\" height=\"10\" fill=\"", PaletteColor(entry->color),
                    "\"/><text x=\"", Coord(x + 16), "\" y=\"", Coord(y), "\">", label, "</text></g>");
    x += width;
  }
  return rows;
}

}  // namespace

std::string RenderLineChartSvg(const LineChart& chart) {
  std::vector<Points> lines;
  size_t finite = 0;
  for (const LineChartSeries& s : chart.series) {
    lines.push_back(FinitePoints(s.points));
    finite += lines.back().size();
  }
  const Frame frame = MakeFrame(chart, lines);

  std::string body;
  AppendBands(chart, frame, &body);
  AppendAxes(frame, &body);
  for (size_t i = 0; i < chart.series.size(); ++i) AppendLine(chart.series[i], lines[i], frame, &body);
  if (finite == 0) {
    absl::StrAppend(&body, "<text class=\"empty\" x=\"", Coord((kLeft + kRight) / 2), "\" y=\"",
                    Coord((kTop + kBottom) / 2), "\" text-anchor=\"middle\">no finite values recorded</text>");
  }
  const int rows = AppendLegend(chart, &body);
  const double height = kLegendTop + std::max(0, rows - 1) * kLegendRow + 10;

  const std::string metric = HtmlEscape(chart.metric);
  return absl::StrCat("<svg class=\"chart line-chart\" data-metric=\"", metric,
                      "\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", Coord(kWidth), " ", Coord(height),
                      "\" role=\"img\" aria-label=\"", metric, " over time\">", body, "</svg>");
}

}  // namespace dsm
