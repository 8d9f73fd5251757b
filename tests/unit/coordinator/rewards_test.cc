// Every reward formula of METHOD.md, with format failures and edge scores.
#include "services/coordinator/rewards.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsm {
namespace {

using ::testing::HasSubstr;

v1::Score Ok(double value) {
  v1::Score s;
  s.set_value(value);
  s.set_format(v1::FORMAT_STATUS_OK);
  return s;
}

v1::Score Failed(v1::FormatStatus format, std::optional<double> value = std::nullopt) {
  v1::Score s;
  s.set_format(format);
  if (value) s.set_value(*value);
  return s;
}

TEST(Rewards, VerifierIsFormatTimesScoreAgreement) {
  EXPECT_EQ(*VerifierReward(Ok(1), 1), 1.0);
  EXPECT_EQ(*VerifierReward(Ok(0.5), 1), 0.5);
  EXPECT_EQ(*VerifierReward(Ok(0), 1), 0.0);
  EXPECT_EQ(*VerifierReward(Ok(0.5), 0), 0.5);
  EXPECT_EQ(*VerifierReward(Ok(0), 0), 1.0);
  EXPECT_EQ(*VerifierReward(Ok(1), 0.5), 0.5);
  // A right score with a missing marker still earns nothing.
  EXPECT_EQ(*VerifierReward(Failed(v1::FORMAT_STATUS_MISSING_SCORE_MARKER, 1.0), 1), 0.0);
  EXPECT_EQ(*VerifierReward(Failed(v1::FORMAT_STATUS_TRUNCATED), 0), 0.0);
  EXPECT_EQ(*VerifierReward(Failed(v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE), 0), 0.0);
  EXPECT_THAT(VerifierReward(Ok(1), 0.7).status().message(), HasSubstr("expert_score: 0.7 is not one of 0, 0.5, 1"));
}

TEST(Rewards, MetaVerifierHasTheSameShape) {
  EXPECT_EQ(*MetaVerifierReward(Ok(1), 1), 1.0);
  EXPECT_EQ(*MetaVerifierReward(Ok(0), 0.5), 0.5);
  EXPECT_EQ(*MetaVerifierReward(Failed(v1::FORMAT_STATUS_NO_BOXED_SCORE), 0), 0.0);
  EXPECT_FALSE(MetaVerifierReward(Ok(1), 2).ok());
}

TEST(Rewards, EnhancedVerifierMultipliesTheMetaScore) {
  EXPECT_EQ(*EnhancedVerifierReward(Ok(0), 0, 1.0), 1.0);
  EXPECT_EQ(*EnhancedVerifierReward(Ok(0), 0, 0.5), 0.5);  // right score, half-bogus issues
  EXPECT_EQ(*EnhancedVerifierReward(Ok(0), 0, 0.0), 0.0);  // right score for bogus reasons
  EXPECT_EQ(*EnhancedVerifierReward(Ok(0.5), 0, 1.0), 0.5);
  // A format failure is 0 even without a meta-score.
  EXPECT_EQ(*EnhancedVerifierReward(Failed(v1::FORMAT_STATUS_TRUNCATED), 1, std::nullopt), 0.0);
  // No meta-score for a well-formed analysis: an error, never a silent 0.
  absl::StatusOr<double> missing = EnhancedVerifierReward(Ok(1), 1, std::nullopt);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("meta_score"));
  EXPECT_FALSE(EnhancedVerifierReward(Ok(1), 1, 1.5).ok());
}

TEST(Rewards, GeneratorMatchesThePapersConsequences) {
  // Correct and honest: 1.
  EXPECT_DOUBLE_EQ(ComputeGeneratorReward(true, 1.0, 1.0, 1.0)->total, 1.0);
  // Wrong but claims 1: 0.
  EXPECT_DOUBLE_EQ(ComputeGeneratorReward(true, 1.0, 0.0, 1.0)->total, 0.0);
  // Wrong and admits it: 0.24 · ms.
  EXPECT_DOUBLE_EQ(ComputeGeneratorReward(true, 0.0, 0.0, 1.0)->total, 0.24);
  EXPECT_DOUBLE_EQ(ComputeGeneratorReward(true, 0.0, 0.0, 0.5)->total, 0.12);
  // Minor flaw, self-score 0.5 honest: 0.76·0.5 + 0.24.
  GeneratorReward r = *ComputeGeneratorReward(true, 0.5, 0.5, 1.0);
  EXPECT_DOUBLE_EQ(r.r_y, 0.5);
  EXPECT_DOUBLE_EQ(r.r_z, 1.0);
  EXPECT_DOUBLE_EQ(r.total, 0.76 * 0.5 + 0.24);
  // Mean of k verifications as s.
  EXPECT_DOUBLE_EQ(ComputeGeneratorReward(true, 1.0, 0.75, 1.0)->total, 0.76 * 0.75 + 0.24 * 0.75);
  // Format failure: everything 0, whatever else is known.
  GeneratorReward f = *ComputeGeneratorReward(false, std::nullopt, std::nullopt, std::nullopt);
  EXPECT_EQ(f.total, 0.0);
  EXPECT_EQ(f.r_format, 0.0);
  // Missing judgements are errors.
  EXPECT_EQ(ComputeGeneratorReward(true, 1.0, std::nullopt, 1.0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ComputeGeneratorReward(true, 1.0, 1.0, std::nullopt).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Other weights.
  GeneratorRewardOptions o;
  o.alpha = 1;
  o.beta = 0;
  EXPECT_DOUBLE_EQ(ComputeGeneratorReward(true, 0.0, 0.0, 1.0, o)->total, 0.0);
}

TEST(Rewards, AutoLabelFollowsTheRule) {
  AutoLabelOptions o;
  o.k = 2;
  // Two confirmed analyses at the lowest score 0: label 0.
  AutoLabelResult r = AutoLabel({{Ok(0), {1, 1, 0.5}}, {Ok(0), {1, 0, 1}}, {Ok(1), {}}, {Ok(0.5), {1, 1}}}, o);
  ASSERT_TRUE(r.label.has_value());
  EXPECT_EQ(*r.label, 0.0);
  EXPECT_EQ(r.confirmed_lowest, 2);
  // Every analysis says 1: label 1.
  r = AutoLabel({{Ok(1), {}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 1.0);
  // Issues reported but none confirmed (bogus): label 1.
  r = AutoLabel({{Ok(0), {0, 0, 0}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 1.0);
  // Only one confirmed lowest analysis with k = 2: dropped.
  r = AutoLabel({{Ok(0), {1, 1}}, {Ok(0), {0, 0}}, {Ok(1), {}}}, o);
  EXPECT_FALSE(r.label.has_value());
  EXPECT_THAT(r.reason, HasSubstr("k = 2"));
  // A tie in the meta-verifications is not a majority.
  r = AutoLabel({{Ok(0.5), {1, 0}}, {Ok(0.5), {1, 0}}}, o);
  EXPECT_EQ(r.label, 1.0);
  // Format failures are left out; none valid: dropped.
  r = AutoLabel({{Failed(v1::FORMAT_STATUS_TRUNCATED), {}}}, o);
  EXPECT_FALSE(r.label.has_value());
  EXPECT_EQ(r.valid_analyses, 0);
  r = AutoLabel({{Failed(v1::FORMAT_STATUS_TRUNCATED, 0.0), {1, 1}}, {Ok(0.5), {1}}, {Ok(0.5), {1}}}, o);
  EXPECT_EQ(r.label, 0.5);
}

TEST(Rewards, AutoLabelTakesNoScoreTheMetaVerifierCallsWrong) {
  AutoLabelOptions o;
  o.k = 2;
  // Meta 0.5: the issue is real but the score is wrong (a reversed fact scored 0, not 0.5).
  // Those analyses do not set the label, and the proof does not pass as correct: dropped.
  AutoLabelResult r = AutoLabel({{Ok(0), {0.5, 0.5}}, {Ok(0), {0.5, 1}}, {Ok(0.5), {1, 1}}, {Ok(1), {}}}, o);
  EXPECT_FALSE(r.label.has_value()) << r.reason;
  EXPECT_EQ(r.confirmed_lowest, 0);
  // The right score confirmed k times next to a wrong one: the lowest is the wrong one, so
  // nothing is labelled until the wrong one is left out by its format.
  r = AutoLabel({{Ok(0.5), {1, 1}}, {Ok(0.5), {1, 1}}, {Ok(0), {0.5, 0.5}}}, o);
  EXPECT_FALSE(r.label.has_value());
  r = AutoLabel({{Ok(0.5), {1, 1}}, {Ok(0.5), {1, 1}}, {Failed(v1::FORMAT_STATUS_TRUNCATED, 0.0), {0.5, 0.5}}}, o);
  EXPECT_EQ(r.label, 0.5);
  // Only made-up issues (meta 0) still leave the proof at 1.
  r = AutoLabel({{Ok(0), {0, 0}}, {Ok(0.5), {0, 0.5}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 1.0);
  // The thresholds are options: at 0.5 a "wrong score" meta-verification confirms.
  o.confirm_threshold = 0.5;
  r = AutoLabel({{Ok(0), {0.5, 0.5}}, {Ok(0), {0.5, 1}}, {Ok(0.5), {1, 1}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 0.0);
}

TEST(Rewards, AutoLabelCanDropAProofWhoseConfirmedAnalysesDisagree) {
  AutoLabelOptions o;
  o.k = 2;
  // Two confirmed analyses call a step's fact "not given" (0), one "cited backwards" (0.5),
  // and the meta-verifier endorses all three (phase 5 on the tiny model, BENCHMARKS.md).
  const std::vector<LabelEvidence> split = {
      {Ok(0), {1, 1, 1, 1}}, {Ok(0.5), {1, 1, 1, 1}}, {Ok(0), {1, 1, 0.5, 1}}, {Ok(1), {}}};
  // METHOD.md's rule: the lowest confirmed score.
  EXPECT_EQ(AutoLabel(split, o).label, 0.0);
  o.drop_conflicts = true;
  AutoLabelResult r = AutoLabel(split, o);
  EXPECT_FALSE(r.label.has_value());
  EXPECT_EQ(r.confirmed_lowest, 2);
  EXPECT_EQ(r.reason, "confirmed analyses disagree: 2 give 0, another gives 0.5");
  // An analysis at another score that the meta-verifier does not confirm is no conflict.
  r = AutoLabel({{Ok(0), {1, 1}}, {Ok(0.5), {1, 0, 0.5}}, {Ok(0), {1, 1}}}, o);
  EXPECT_EQ(r.label, 0.0);
  // Nor are analyses that agree, or the analyses that say 1 (never meta-verified).
  r = AutoLabel({{Ok(0.5), {1, 1}}, {Ok(0.5), {1, 1}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 0.5);
  r = AutoLabel({{Ok(1), {}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 1.0);
}

TEST(Rewards, AutoLabelCanAskEveryAnalysisToSayOneForALabelOfOne) {
  AutoLabelOptions o;
  o.k = 2;
  // One analysis names an issue the meta-verifier calls made up (meta 0): METHOD.md's rule
  // passes the proof as correct.
  const std::vector<LabelEvidence> doubted = {{Ok(1), {}}, {Ok(0), {0, 0, 0.5, 0}}, {Ok(1), {}}};
  EXPECT_EQ(AutoLabel(doubted, o).label, 1.0);
  o.unanimous_correct = true;
  AutoLabelResult r = AutoLabel(doubted, o);
  EXPECT_FALSE(r.label.has_value());
  EXPECT_EQ(r.reason, "an analysis gives 0 and 1 needs every analysis to give 1");
  // Every analysis at 1 (a malformed one left out) is still labelled 1, and confirmed
  // analyses still label the proof with their score.
  r = AutoLabel({{Ok(1), {}}, {Failed(v1::FORMAT_STATUS_TRUNCATED, 0.0), {}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 1.0);
  r = AutoLabel({{Ok(0.5), {1, 1}}, {Ok(0.5), {1, 1}}, {Ok(1), {}}}, o);
  EXPECT_EQ(r.label, 0.5);
  // An issue found real but not confirmed k times drops the proof either way.
  r = AutoLabel({{Ok(0.5), {1, 1}}, {Ok(0.5), {0.5, 0.5}}, {Ok(1), {}}}, o);
  EXPECT_FALSE(r.label.has_value());
}

}  // namespace
}  // namespace dsm
