// The meta-verifier's judgement of the verifier's own analyses as phase 0's held-out metrics:
// agreement with the checker, and what it pays analyses that name only made-up issues against
// those that name only real ones (phase 3's R_meta signal against hallucinated issues).
#include "tasks/chain_warmup_eval.h"

#include <optional>
#include <vector>

#include <gtest/gtest.h>

namespace dsm {
namespace {

ChainAnalysisAssessment Assessed(double meta_score, std::vector<int> real, std::vector<int> bogus) {
  ChainAnalysisAssessment a;
  a.meta_score = meta_score;
  a.real_lines = std::move(real);
  a.bogus_lines = std::move(bogus);
  a.claims.lines = a.real_lines;
  a.claims.lines.insert(a.claims.lines.end(), a.bogus_lines.begin(), a.bogus_lines.end());
  return a;
}

TEST(MetaJudgementMetrics, AgreementAndWhatMadeUpAndRealIssuesArePaid) {
  const std::vector<ChainAnalysisAssessment> truth = {
      Assessed(0, {}, {2}),    // a made-up issue only
      Assessed(0, {}, {1}),    // another
      Assessed(1, {3}, {}),    // the real issue
      Assessed(0.5, {3}, {1}), // both: neither mean
      Assessed(1, {}, {}),     // names nothing
  };
  const std::vector<std::optional<double>> scores = {0, std::nullopt, 0.5, 0.5, 1};
  const std::map<std::string, double> m = MetaJudgementMetrics(truth, scores);
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_agreement"), 3.0 / 5);       // 0, 0.5 on the mixed one, 1
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_majority_baseline"), 2.0 / 5);  // label 0 twice
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_bogus_mean"), 0.0);           // 0, and a malformed one as 0
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_real_mean"), 0.5);
}

TEST(MetaJudgementMetrics, NothingJudgedIsNoMetricAndAKindAbsentIsNoMean) {
  EXPECT_TRUE(MetaJudgementMetrics({}, {}).empty());
  const std::map<std::string, double> m = MetaJudgementMetrics({Assessed(1, {}, {})}, {1.0});
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_agreement"), 1.0);
  EXPECT_EQ(m.count("meta_sampled_bogus_mean"), 0u);
  EXPECT_EQ(m.count("meta_sampled_real_mean"), 0u);
}

}  // namespace
}  // namespace dsm
