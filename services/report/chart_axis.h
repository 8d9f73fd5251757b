// Shared pieces of the report's SVG charts: value ranges with evenly spaced
// "nice" tick marks (1, 2 or 5 × 10^k), and the colour palette. Pure
// functions, thread-safe.
#ifndef DSM_SERVICES_REPORT_CHART_AXIS_H_
#define DSM_SERVICES_REPORT_CHART_AXIS_H_

#include <string>
#include <vector>

namespace dsm {

// An axis: the range it shows and its tick values, lo <= ticks <= hi, lo < hi.
struct AxisScale {
  double lo = 0;
  double hi = 1;
  std::vector<double> ticks;
};

// A scale covering [lo, hi] (finite, any order, possibly equal) with about
// `target_ticks` ticks, widened to the outer ticks. Always finite with lo < hi,
// even for a single value or values near the limits of double.
AxisScale NiceScale(double lo, double hi, int target_ticks);

// Maps `value` from [scale.lo, scale.hi] onto [from, to] (either order),
// clamped to that interval.
double ScaleTo(const AxisScale& scale, double value, double from, double to);

// A distinct colour for index `i` (wraps around), as "#rrggbb".
const char* PaletteColor(int i);

}  // namespace dsm

#endif  // DSM_SERVICES_REPORT_CHART_AXIS_H_
