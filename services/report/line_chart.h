// An SVG line chart of one metric over the run's time: the phases as shaded,
// labelled bands behind the lines, one line (with its points) per series, and
// a legend. Server-side SVG: it needs no script to show. Pure, thread-safe.
#ifndef DSM_SERVICES_REPORT_LINE_CHART_H_
#define DSM_SERVICES_REPORT_LINE_CHART_H_

#include <string>
#include <utility>
#include <vector>

namespace dsm {

// A stretch of time shown as a shaded band with its label above the plot.
struct LineChartBand {
  std::string label;
  int color = 0;  // PaletteColor index
  double start = 0;
  double end = 0;
};

// One line. Series with the same `label` share one legend entry.
struct LineChartSeries {
  std::string label;
  int color = 0;  // PaletteColor index
  std::vector<std::pair<double, double>> points;  // (seconds, value); non-finite ones are skipped
};

struct LineChart {
  std::string metric;  // becomes data-metric and the accessible name
  std::vector<LineChartBand> bands;
  std::vector<LineChartSeries> series;
};

// One <svg class="chart line-chart" data-metric="…"> element. Text is escaped;
// every coordinate is finite whatever the input (empty series, NaN, one point).
std::string RenderLineChartSvg(const LineChart& chart);

}  // namespace dsm

#endif  // DSM_SERVICES_REPORT_LINE_CHART_H_
