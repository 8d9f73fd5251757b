// An SVG grouped bar chart: one group per label (e.g. a phase), one bar per
// kind in each group (e.g. before / after), with the values written above
// the bars and a legend. Server-side SVG: it needs no script to show. Pure,
// thread-safe.
#ifndef DSM_SERVICES_REPORT_BAR_CHART_H_
#define DSM_SERVICES_REPORT_BAR_CHART_H_

#include <optional>
#include <string>
#include <vector>

namespace dsm {

struct BarKind {
  std::string label;
  int color = 0;  // PaletteColor index
};

struct BarGroup {
  std::string label;
  std::vector<std::optional<double>> values;  // one per kind; missing or non-finite = no bar
};

struct BarChart {
  std::string metric;  // becomes data-metric and the accessible name
  std::vector<BarKind> kinds;
  std::vector<BarGroup> groups;
};

// One <svg class="chart eval-chart" data-metric="…"> element. Text is escaped;
// every coordinate is finite whatever the values.
std::string RenderBarChartSvg(const BarChart& chart);

}  // namespace dsm

#endif  // DSM_SERVICES_REPORT_BAR_CHART_H_
