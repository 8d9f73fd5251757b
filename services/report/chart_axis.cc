#include "services/report/chart_axis.h"

#include <algorithm>
#include <cmath>

namespace dsm {
namespace {

// Beyond this the tick arithmetic would overflow.
constexpr double kLimit = 1e300;
// Ranges narrower than this are drawn as one value (denormals break the steps).
constexpr double kTiny = 1e-200;

}  // namespace

AxisScale NiceScale(double lo, double hi, int target_ticks) {
  if (!std::isfinite(lo)) lo = 0;
  if (!std::isfinite(hi)) hi = lo;
  if (lo > hi) std::swap(lo, hi);
  lo = std::clamp(lo, -kLimit, kLimit);
  hi = std::clamp(hi, -kLimit, kLimit);
  if (hi - lo <= std::abs(hi) * 1e-12 || hi - lo < kTiny) {  // one value: a band around it
    const double pad = std::abs(hi) < kTiny ? 1 : std::abs(hi) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw_step = (hi - lo) / std::max(1, target_ticks);
  const double magnitude = std::pow(10, std::floor(std::log10(raw_step)));
  double step = magnitude;
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw_step) break;
  }
  AxisScale scale;
  scale.lo = std::floor(lo / step) * step;
  scale.hi = std::ceil(hi / step) * step;
  // At most target_ticks + 2 ticks; computed from the index so rounding never loops.
  for (int i = 0; i <= target_ticks + 2; ++i) {
    const double tick = scale.lo + i * step;
    if (tick > scale.hi + step * 1e-9) break;
    scale.ticks.push_back(std::abs(tick) < step * 1e-9 ? 0.0 : tick);
  }
  return scale;
}

double ScaleTo(const AxisScale& scale, double value, double from, double to) {
  const double t = (value - scale.lo) / (scale.hi - scale.lo);
  return from + std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * (to - from);
}

const char* PaletteColor(int i) {
  // Tableau 10: distinct on screen and in print.
  static const char* const kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                        "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  constexpr int kCount = sizeof(kColors) / sizeof(kColors[0]);
  return kColors[((i % kCount) + kCount) % kCount];
}

}  // namespace dsm
