// The meta-verifier's judgement of the verifier's own analyses as phase 0's held-out metrics:
// agreement with the checker, and what it pays analyses that name only made-up issues against
// those that name only real ones (phase 3's R_meta signal against hallucinated issues), and how
// often its "Checked:" note looks up the lines an analysis names.
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

MetaJudgement Judged(ChainAnalysisAssessment truth, std::optional<double> score, bool note_right = false) {
  return MetaJudgement{std::move(truth), score, note_right};
}

TEST(MetaJudgementMetrics, AgreementAndWhatMadeUpAndRealIssuesArePaid) {
  const std::vector<MetaJudgement> judged = {
      Judged(Assessed(0, {}, {2}), 0, true),            // a made-up issue only, its line checked right
      Judged(Assessed(0, {}, {1}), std::nullopt),       // another
      Judged(Assessed(1, {3}, {}), 0.5),                // the real issue
      Judged(Assessed(0.5, {3}, {1}), 0.5, true),       // both: neither mean
      Judged(Assessed(1, {}, {}), 1, true),             // names nothing: no note to check
  };
  const std::map<std::string, double> m = MetaJudgementMetrics(judged);
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_agreement"), 3.0 / 5);       // 0, 0.5 on the mixed one, 1
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_majority_baseline"), 2.0 / 5);  // label 0 twice
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_bogus_mean"), 0.0);           // 0, and a malformed one as 0
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_real_mean"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_note_right"), 2.0 / 4);       // of the four that name a line
}

TEST(MetaJudgementMetrics, NothingJudgedIsNoMetricAndAKindAbsentIsNoMean) {
  EXPECT_TRUE(MetaJudgementMetrics({}).empty());
  const std::map<std::string, double> m = MetaJudgementMetrics({Judged(Assessed(1, {}, {}), 1.0)});
  EXPECT_DOUBLE_EQ(m.at("meta_sampled_agreement"), 1.0);
  EXPECT_EQ(m.count("meta_sampled_bogus_mean"), 0u);
  EXPECT_EQ(m.count("meta_sampled_real_mean"), 0u);
  EXPECT_EQ(m.count("meta_sampled_note_right"), 0u);
}

}  // namespace
}  // namespace dsm
