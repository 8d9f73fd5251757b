#include "services/scoring/aggregation.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <vector>

#include <spdlog/spdlog.h>

namespace dsm {

v1::Aggregation EffectiveAggregation(v1::Aggregation aggregation) {
  return aggregation == v1::AGGREGATION_UNSPECIFIED ? v1::AGGREGATION_MEAN : aggregation;
}

std::optional<double> Aggregate(absl::Span<const v1::Score> scores, v1::Aggregation aggregation) {
  std::vector<double> valid;
  for (const v1::Score& s : scores) {
    if (s.format() == v1::FORMAT_STATUS_OK && s.has_value()) valid.push_back(s.value());
  }
  if (valid.empty()) return std::nullopt;
  switch (EffectiveAggregation(aggregation)) {
    case v1::AGGREGATION_MEAN: {
      double sum = 0;
      for (double v : valid) sum += v;
      return sum / static_cast<double>(valid.size());
    }
    case v1::AGGREGATION_MIN:
      return *std::min_element(valid.begin(), valid.end());
    case v1::AGGREGATION_MAJORITY: {
      std::map<double, int> counts;  // ascending, so the first maximum is the lowest score
      for (double v : valid) ++counts[v];
      auto best = counts.begin();
      for (auto it = counts.begin(); it != counts.end(); ++it) {
        if (it->second > best->second) best = it;
      }
      return best->first;
    }
    default:
      break;
  }
  spdlog::critical("Aggregate: unknown aggregation {} (requests must be validated first)",
                   static_cast<int>(aggregation));
  std::abort();
}

}  // namespace dsm
