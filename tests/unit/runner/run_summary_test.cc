// SummarizeRun: summary.json's fields come from the right evaluations (phase, iteration, point),
// missing ones are null, and each claim holds only when its numbers say so.
#include "services/runner/run_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace dsm {
namespace {

v1::Evaluation Eval(v1::Phase phase, uint32_t iteration, v1::EvaluationPoint point,
                    std::map<std::string, double> metrics) {
  v1::Evaluation e;
  e.set_phase(phase);
  e.set_iteration(iteration);
  e.set_point(point);
  e.mutable_metrics()->insert(metrics.begin(), metrics.end());
  return e;
}

constexpr auto kBefore = v1::EVALUATION_POINT_BEFORE;
constexpr auto kAfter = v1::EVALUATION_POINT_AFTER;

std::vector<v1::Evaluation> TwoIterations() {
  return {
      Eval(v1::PHASE_VERIFIER_RL, 1, kBefore, {{"verifier_agreement", 0.40}, {"hallucinated_issue_rate", 0.5}}),
      Eval(v1::PHASE_VERIFIER_RL, 1, kAfter, {{"verifier_agreement", 0.55}, {"hallucinated_issue_rate", 0.30}}),
      Eval(v1::PHASE_ENHANCED_VERIFIER_RL, 1, kAfter, {{"hallucinated_issue_rate", 0.35}}),
      Eval(v1::PHASE_GENERATOR_RL, 1, kBefore, {{"generator_score", 0.20}, {"self_score_agreement", 0.5}}),
      Eval(v1::PHASE_GENERATOR_RL, 1, kAfter, {{"generator_score", 0.25}, {"self_score_agreement", 0.6}}),
      Eval(v1::PHASE_AUTO_LABEL, 1, kAfter, {{"autolabel_agreement", 0.80}, {"autolabel_kept_fraction", 0.5}}),
      Eval(v1::PHASE_ENHANCED_VERIFIER_RL, 2, kAfter, {{"hallucinated_issue_rate", 0.25}}),
      Eval(v1::PHASE_GENERATOR_RL, 2, kBefore, {{"generator_score", 0.26}, {"self_score_agreement", 0.61}}),
      Eval(v1::PHASE_GENERATOR_RL, 2, kAfter, {{"generator_score", 0.31}, {"self_score_agreement", 0.58}}),
      Eval(v1::PHASE_AUTO_LABEL, 2, kAfter,
           {{"autolabel_agreement", 0.92}, {"autolabel_kept_fraction", 0.6}, {"autolabel_missed_issue_rate", 0.05},
            {"autolabel_false_issue_rate", 0.02}, {"autolabel_wrong_severity_rate", 0.01}}),
  };
}

TEST(RunSummary, FieldsComeFromTheRightEvaluations) {
  const RunSummary s = SummarizeRun(TwoIterations(), 812.5, {{"warmup_verifier_agreement", 0.4}});
  auto f = [&](const char* k) { return s.fields.at(k).value(); };
  EXPECT_DOUBLE_EQ(f("verifier_agreement_before"), 0.40);
  EXPECT_DOUBLE_EQ(f("verifier_agreement_after"), 0.55);
  EXPECT_DOUBLE_EQ(f("hallucinated_issue_rate_phase1"), 0.30);
  EXPECT_DOUBLE_EQ(f("hallucinated_issue_rate_phase3"), 0.25);  // the last iteration's phase 3
  EXPECT_DOUBLE_EQ(f("generator_score_before"), 0.20);          // iteration 1, before
  EXPECT_DOUBLE_EQ(f("generator_score_after"), 0.31);           // the last iteration, after
  EXPECT_DOUBLE_EQ(f("self_score_agreement_before"), 0.5);
  EXPECT_DOUBLE_EQ(f("self_score_agreement_after"), 0.58);
  EXPECT_DOUBLE_EQ(f("autolabel_agreement"), 0.92);
  EXPECT_DOUBLE_EQ(f("autolabel_kept_fraction"), 0.6);
  EXPECT_DOUBLE_EQ(f("autolabel_missed_issue_rate"), 0.05);
  EXPECT_DOUBLE_EQ(f("autolabel_false_issue_rate"), 0.02);
  EXPECT_DOUBLE_EQ(f("autolabel_wrong_severity_rate"), 0.01);
  EXPECT_DOUBLE_EQ(f("wall_seconds"), 812.5);
  EXPECT_DOUBLE_EQ(f("warmup_verifier_agreement"), 0.4);
}

TEST(RunSummary, ClaimsHoldOnlyWhenTheNumbersSaySo) {
  const RunSummary s = SummarizeRun(TwoIterations(), 1);
  std::map<std::string, bool> held;
  for (const SummaryClaim& c : s.claims) held[c.name] = c.held;
  EXPECT_TRUE(held.at("verifier_agreement_rises"));
  EXPECT_TRUE(held.at("hallucination_does_not_rise"));  // 0.30 -> 0.25
  EXPECT_TRUE(held.at("generator_score_rises"));
  EXPECT_TRUE(held.at("self_score_agreement_rises"));   // 0.5 -> 0.58
  EXPECT_TRUE(held.at("autolabel_agreement_at_least_0_9"));

  std::vector<v1::Evaluation> worse = TwoIterations();
  (*worse[1].mutable_metrics())["verifier_agreement"] = 0.40;  // equal is not a rise
  (*worse[6].mutable_metrics())["hallucinated_issue_rate"] = 0.31;
  (*worse[9].mutable_metrics())["autolabel_agreement"] = 0.899;
  held.clear();
  for (const SummaryClaim& c : SummarizeRun(worse, 1).claims) held[c.name] = c.held;
  EXPECT_FALSE(held.at("verifier_agreement_rises"));
  EXPECT_FALSE(held.at("hallucination_does_not_rise"));
  EXPECT_FALSE(held.at("autolabel_agreement_at_least_0_9"));
}

TEST(RunSummary, MissingNumbersAreNullAndTheirClaimsDoNotHold) {
  const RunSummary s = SummarizeRun({Eval(v1::PHASE_VERIFIER_RL, 1, kBefore, {{"verifier_agreement", 0.4}})}, 3);
  EXPECT_FALSE(s.fields.at("verifier_agreement_after").has_value());
  for (const SummaryClaim& c : s.claims) EXPECT_FALSE(c.held) << c.name;
  const nlohmann::json j = nlohmann::json::parse(RunSummaryJson(s, "tiny", "RUN_STATE_FAILED"));
  EXPECT_EQ(j["run"], "tiny");
  EXPECT_EQ(j["state"], "RUN_STATE_FAILED");
  EXPECT_DOUBLE_EQ(j["verifier_agreement_before"].get<double>(), 0.4);
  EXPECT_TRUE(j["verifier_agreement_after"].is_null());
  EXPECT_DOUBLE_EQ(j["wall_seconds"].get<double>(), 3);
  for (const char* key : {"hallucinated_issue_rate_phase1", "hallucinated_issue_rate_phase3", "generator_score_before",
                          "generator_score_after", "self_score_agreement_before", "self_score_agreement_after",
                          "autolabel_agreement", "autolabel_kept_fraction"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  ASSERT_EQ(j["claims"].size(), 5u);
  EXPECT_EQ(j["claims"][0]["held"], false);
}

}  // namespace
}  // namespace dsm
