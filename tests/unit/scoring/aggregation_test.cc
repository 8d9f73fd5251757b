// Aggregation of n scores (services/scoring/aggregation.h): mean, min,
// majority with ties to the lower score; format failures left out.
#include "services/scoring/aggregation.h"

#include <optional>
#include <vector>

#include <gtest/gtest.h>

namespace dsm {
namespace {

v1::Score Ok(double value) {
  v1::Score s;
  s.set_value(value);
  s.set_format(v1::FORMAT_STATUS_OK);
  return s;
}

v1::Score Failed(v1::FormatStatus format, std::optional<double> value = std::nullopt) {
  v1::Score s;
  if (value) s.set_value(*value);
  s.set_format(format);
  return s;
}

struct Case {
  const char* name;
  std::vector<v1::Score> scores;
  std::optional<double> mean, min, majority;
};

TEST(Aggregation, Table) {
  const std::vector<Case> cases = {
      {"one", {Ok(0.5)}, 0.5, 0.5, 0.5},
      {"all ones", {Ok(1), Ok(1), Ok(1)}, 1.0, 1.0, 1.0},
      {"mixed", {Ok(1), Ok(0.5), Ok(1), Ok(0)}, 0.625, 0.0, 1.0},
      {"tie goes to the lower score", {Ok(1), Ok(0), Ok(1), Ok(0)}, 0.5, 0.0, 0.0},
      {"three-way tie", {Ok(1), Ok(0.5), Ok(0)}, 0.5, 0.0, 0.0},
      {"tie between 1 and 0.5", {Ok(0.5), Ok(1), Ok(1), Ok(0.5), Ok(0)}, 0.6, 0.0, 0.5},
      // A failed analysis is left out, even when it carries a value.
      {"failures left out",
       {Ok(1), Failed(v1::FORMAT_STATUS_TRUNCATED, 0.0), Failed(v1::FORMAT_STATUS_NO_BOXED_SCORE),
        Failed(v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER, 0.0), Ok(0.5)},
       0.75, 0.5, 0.5},
      {"no valid score", {Failed(v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE), Failed(v1::FORMAT_STATUS_TRUNCATED, 1)},
       std::nullopt, std::nullopt, std::nullopt},
      {"empty", {}, std::nullopt, std::nullopt, std::nullopt},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Aggregate(c.scores, v1::AGGREGATION_MEAN), c.mean) << c.name;
    EXPECT_EQ(Aggregate(c.scores, v1::AGGREGATION_UNSPECIFIED), c.mean) << c.name;
    EXPECT_EQ(Aggregate(c.scores, v1::AGGREGATION_MIN), c.min) << c.name;
    EXPECT_EQ(Aggregate(c.scores, v1::AGGREGATION_MAJORITY), c.majority) << c.name;
  }
}

TEST(Aggregation, UnspecifiedMeansMean) {
  EXPECT_EQ(EffectiveAggregation(v1::AGGREGATION_UNSPECIFIED), v1::AGGREGATION_MEAN);
  EXPECT_EQ(EffectiveAggregation(v1::AGGREGATION_MAJORITY), v1::AGGREGATION_MAJORITY);
}

}  // namespace
}  // namespace dsm
