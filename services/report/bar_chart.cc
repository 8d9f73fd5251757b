#include "services/report/bar_chart.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/report/chart_axis.h"
#include "services/report/html_text.h"

namespace dsm {
namespace {

// Layout, in SVG user units (the page scales the whole chart).
constexpr double kWidth = 960;
constexpr double kHeight = 262;
constexpr double kLeft = 64;
constexpr double kRight = kWidth - 16;
constexpr double kTop = 24;
constexpr double kBottom = kTop + 180;
constexpr double kLegendY = 250;
constexpr double kCharWidth = 6.5;  // estimated width of one character at 11-12 px

bool HasValue(const std::optional<double>& v) { return v.has_value() && std::isfinite(*v); }

// `label` cut to about `width` units, with an ellipsis when cut.
std::string FitLabel(const std::string& label, double width) {
  const auto chars = static_cast<size_t>(std::max(1.0, width / kCharWidth));
  if (label.size() <= chars) return label;
  size_t cut = chars > 1 ? chars - 1 : 1;
  // Never split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(label[cut]) & 0xC0) == 0x80) --cut;
  return label.substr(0, cut) + "…";
}

}  // namespace

std::string RenderBarChartSvg(const BarChart& chart) {
  double lo = 0;
  double hi = 0;
  bool any = false;
  for (const BarGroup& group : chart.groups) {
    for (const std::optional<double>& v : group.values) {
      if (!HasValue(v)) continue;
      any = true;
      lo = std::min(lo, *v);
      hi = std::max(hi, *v);
    }
  }
  const AxisScale scale = NiceScale(lo, any ? hi : 1.0, 4);
  auto y_of = [&](double v) { return ScaleTo(scale, v, kBottom, kTop); };

  std::string body;
  for (const double tick : scale.ticks) {
    const std::string y = Coord(y_of(tick));
    absl::StrAppend(&body, "<line class=\"grid\" x1=\"", Coord(kLeft), "\" x2=\"", Coord(kRight), "\" y1=\"", y,
                    "\" y2=\"", y, "\"/><text class=\"tick\" x=\"", Coord(kLeft - 6), "\" y=\"", y,
                    "\" dy=\"4\" text-anchor=\"end\">", HtmlEscape(FormatNumber(tick)), "</text>");
  }
  const double group_width = (kRight - kLeft) / static_cast<double>(std::max<size_t>(1, chart.groups.size()));
  const double kinds = static_cast<double>(std::max<size_t>(1, chart.kinds.size()));
  const double bar_width = std::min(36.0, group_width * 0.7 / kinds);
  const double zero = y_of(0);
  for (size_t g = 0; g < chart.groups.size(); ++g) {
    const BarGroup& group = chart.groups[g];
    const double center = kLeft + (static_cast<double>(g) + 0.5) * group_width;
    const std::string label = HtmlEscape(group.label);
    absl::StrAppend(&body, "<g class=\"bar-group\"><text class=\"group-label\" x=\"", Coord(center), "\" y=\"",
                    Coord(kBottom + 18), "\" text-anchor=\"middle\"><title>", label, "</title>",
                    HtmlEscape(FitLabel(group.label, group_width - 6)), "</text>");
    for (size_t k = 0; k < group.values.size() && k < chart.kinds.size(); ++k) {
      if (!HasValue(group.values[k])) continue;
      const double v = *group.values[k];
      const double x = center - kinds * bar_width / 2 + static_cast<double>(k) * bar_width;
      const double y = y_of(v);
      const std::string text = HtmlEscape(FormatNumber(v));
      absl::StrAppend(&body, "<rect class=\"bar\" x=\"", Coord(x + 1), "\" y=\"", Coord(std::min(y, zero)),
                      "\" width=\"", Coord(bar_width - 2), "\" height=\"", Coord(std::abs(zero - y)),
                      "\" fill=\"", PaletteColor(chart.kinds[k].color), "\"><title>", label, " · ",
                      HtmlEscape(chart.kinds[k].label), ": ", text, "</title></rect><text class=\"bar-value\" x=\"",
                      Coord(x + bar_width / 2), "\" y=\"", Coord(v >= 0 ? y - 4 : y + 12),
                      "\" text-anchor=\"middle\">", text, "</text>");
    }
    absl::StrAppend(&body, "</g>");
  }
  absl::StrAppend(&body, "<line class=\"axis\" x1=\"", Coord(kLeft), "\" x2=\"", Coord(kRight), "\" y1=\"",
                  Coord(zero), "\" y2=\"", Coord(zero), "\"/>");
  if (!any) {
    absl::StrAppend(&body, "<text class=\"empty\" x=\"", Coord((kLeft + kRight) / 2), "\" y=\"",
                    Coord((kTop + kBottom) / 2), "\" text-anchor=\"middle\">no finite values recorded</text>");
  }
  double x = kLeft;
  for (const BarKind& kind : chart.kinds) {
    absl::StrAppend(&body, "<g class=\"legend-item\"><rect x=\"", Coord(x), "\" y=\"", Coord(kLegendY - 9),
                    "\" width=\"12\" height=\"10\" fill=\"", PaletteColor(kind.color), "\"/><text x=\"",
                    Coord(x + 16), "\" y=\"", Coord(kLegendY), "\">", HtmlEscape(kind.label), "</text></g>");
    x += 34 + static_cast<double>(kind.label.size()) * kCharWidth;
  }
  const std::string metric = HtmlEscape(chart.metric);
  return absl::StrCat("<svg class=\"chart eval-chart\" data-metric=\"", metric,
                      "\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", Coord(kWidth), " ", Coord(kHeight),
                      "\" role=\"img\" aria-label=\"", metric, " before and after each phase\">", body, "</svg>");
}

}  // namespace dsm
