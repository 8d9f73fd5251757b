// Score parsing (services/scoring/score_parser.h): markers, the last boxed
// score, </think>, truncation, accepted value forms, generator output split.
#include "services/scoring/score_parser.h"

#include <string>

#include <gtest/gtest.h>

namespace dsm {
namespace {

const OutputMarkers kMarkers = VerifierMarkers();

std::string Analysis(const std::string& evaluation, const std::string& boxed) {
  return "Here is my evaluation of the solution:\n" + evaluation +
         "\n\nBased on my evaluation, the final overall score should be:\n" + boxed;
}

// value (or -1 when absent) and format, for compact expectations.
std::pair<double, v1::FormatStatus> Parse(const std::string& text,
                                          v1::FinishReason finish = v1::FINISH_REASON_STOP_TOKEN) {
  v1::Score s = ParseScore(text, kMarkers, finish);
  return {s.has_value() ? s.value() : -1.0, s.format()};
}

TEST(ScoreParser, WellFormedAnalysesGiveTheirScore) {
  EXPECT_EQ(Parse(Analysis("All steps hold.", "\\boxed{1}")), std::make_pair(1.0, v1::FORMAT_STATUS_OK));
  EXPECT_EQ(Parse(Analysis("Step 2 omits a case.", "\\boxed{0.5}")), std::make_pair(0.5, v1::FORMAT_STATUS_OK));
  EXPECT_EQ(Parse(Analysis("Step 3 is false.", "\\boxed{0}")), std::make_pair(0.0, v1::FORMAT_STATUS_OK));
}

TEST(ScoreParser, MissingEvaluationMarker) {
  EXPECT_EQ(Parse("The proof is fine.\nBased on my evaluation, the final overall score should be:\n\\boxed{1}"),
            std::make_pair(1.0, v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER));
}

TEST(ScoreParser, MissingScoreMarkerStillReportsTheValue) {
  EXPECT_EQ(Parse("Here is my evaluation of the solution:\nFine. So the score is \\boxed{0.5}"),
            std::make_pair(0.5, v1::FORMAT_STATUS_MISSING_SCORE_MARKER));
  // Marker text must match exactly (case-sensitive).
  EXPECT_EQ(Parse("Here is my evaluation of the solution:\nbased on my evaluation, the final overall score "
                  "should be: \\boxed{1}")
                .second,
            v1::FORMAT_STATUS_MISSING_SCORE_MARKER);
}

TEST(ScoreParser, LastBoxAfterTheScoreMarkerWins) {
  EXPECT_EQ(Parse(Analysis("The claim \\boxed{0} in step 1 is right.", "\\boxed{0.5} then finally \\boxed{1}")),
            std::make_pair(1.0, v1::FORMAT_STATUS_OK));
  // A box before the marker does not count once the marker is there.
  EXPECT_EQ(Parse(Analysis("I would say \\boxed{1}.", "no box here")),
            std::make_pair(-1.0, v1::FORMAT_STATUS_NO_BOXED_SCORE));
  // The last occurrence of the marker is the one that counts.
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{0}\nBased on my evaluation, the final overall score should be: \\boxed{1}")),
            std::make_pair(1.0, v1::FORMAT_STATUS_OK));
}

TEST(ScoreParser, OutOfRangeOrUnparsableValues) {
  for (const char* boxed : {"\\boxed{2}", "\\boxed{0.7}", "\\boxed{abc}", "\\boxed{-1}", "\\boxed{1e0}",
                            "\\boxed{+1}", "\\boxed{1/2}", "\\boxed{$1$}", "\\boxed{1 point}", "\\boxed{.}"}) {
    EXPECT_EQ(Parse(Analysis("x", boxed)), std::make_pair(-1.0, v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE)) << boxed;
  }
}

TEST(ScoreParser, AcceptedNumeralForms) {
  EXPECT_EQ(ParseScoreValue("1"), 1.0);
  EXPECT_EQ(ParseScoreValue("1.0"), 1.0);
  EXPECT_EQ(ParseScoreValue("1."), 1.0);
  EXPECT_EQ(ParseScoreValue(" 0.5 "), 0.5);
  EXPECT_EQ(ParseScoreValue(".5"), 0.5);
  EXPECT_EQ(ParseScoreValue("0.50"), 0.5);
  EXPECT_EQ(ParseScoreValue("0"), 0.0);
  EXPECT_EQ(ParseScoreValue("00"), 0.0);
  EXPECT_EQ(ParseScoreValue("0.0"), 0.0);
  EXPECT_EQ(ParseScoreValue("10"), std::nullopt);
  EXPECT_EQ(ParseScoreValue("0.05"), std::nullopt);
  EXPECT_EQ(ParseScoreValue("1.5"), std::nullopt);
  EXPECT_EQ(ParseScoreValue(""), std::nullopt);
}

TEST(ScoreParser, NestedBracesAreMatchedAndFractionsAreOutOfRange) {
  // Decision: \frac{1}{2} is a format failure, not 0.5 (see score_parser.h).
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{\\frac{1}{2}}")),
            std::make_pair(-1.0, v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE));
  // Braces are matched: the box is the whole \text{...}, not "\text{1".
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{\\text{1}}")).second, v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE);
  // A box inside a box is part of the outer box.
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{\\boxed{1}}")).second, v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE);
  // Braces after the box do not confuse the match.
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{1} {so {it} goes}")), std::make_pair(1.0, v1::FORMAT_STATUS_OK));
}

TEST(ScoreParser, UnbalancedBoxIsNoBoxedScore) {
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{1")), std::make_pair(-1.0, v1::FORMAT_STATUS_NO_BOXED_SCORE));
  // An unclosed last box is never replaced by an earlier one.
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{1} and \\boxed{\\frac{1}{2}")),
            std::make_pair(-1.0, v1::FORMAT_STATUS_NO_BOXED_SCORE));
}

TEST(ScoreParser, EmptyBoxesAreSkipped) {
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{}")), std::make_pair(-1.0, v1::FORMAT_STATUS_NO_BOXED_SCORE));
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{ }")), std::make_pair(-1.0, v1::FORMAT_STATUS_NO_BOXED_SCORE));
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{0.5} \\boxed{}")), std::make_pair(0.5, v1::FORMAT_STATUS_OK));
  EXPECT_EQ(Parse(Analysis("x", "no box at all")), std::make_pair(-1.0, v1::FORMAT_STATUS_NO_BOXED_SCORE));
}

TEST(ScoreParser, OnlyTextAfterTheLastThinkCounts) {
  const std::string analysis = Analysis("Fine.", "\\boxed{1}");
  EXPECT_EQ(Parse("<think>hmm \\boxed{0}</think>\n" + analysis), std::make_pair(1.0, v1::FORMAT_STATUS_OK));
  // Markers and box inside the thinking only: nothing counts.
  EXPECT_EQ(Parse("<think>" + analysis + "</think>\nIt is correct."),
            std::make_pair(-1.0, v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER));
  EXPECT_EQ(Parse("<think>a</think><think>" + Analysis("x", "\\boxed{0}") + "</think>" + analysis),
            std::make_pair(1.0, v1::FORMAT_STATUS_OK));
  EXPECT_EQ(TextAfterThinking("a</think>b</think>c"), "c");
  EXPECT_EQ(TextAfterThinking("no thinking"), "no thinking");
}

TEST(ScoreParser, TruncatedComesFirstButKeepsTheValue) {
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{1}"), v1::FINISH_REASON_LENGTH),
            std::make_pair(1.0, v1::FORMAT_STATUS_TRUNCATED));
  EXPECT_EQ(Parse("Here is my evaluation of the solution:\nStep 1 is", v1::FINISH_REASON_LENGTH),
            std::make_pair(-1.0, v1::FORMAT_STATUS_TRUNCATED));
  EXPECT_EQ(Parse(Analysis("x", "\\boxed{1}"), v1::FINISH_REASON_STOP_STRING).second, v1::FORMAT_STATUS_OK);
}

TEST(ScoreParser, MetaVerifierMarkers) {
  const std::string text =
      "Here is my analysis of the \"solution evaluation\":\nThe issue is real.\n\n"
      "Based on my analysis, I will rate the \"solution evaluation\" as:\n\\boxed{0.5}";
  v1::Score s = ParseScore(text, MetaVerifierMarkers());
  EXPECT_EQ(s.format(), v1::FORMAT_STATUS_OK);
  EXPECT_EQ(s.value(), 0.5);
  // Verifier markers do not fit a meta-analysis.
  EXPECT_EQ(ParseScore(text, kMarkers).format(), v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
}

TEST(GeneratorOutput, SplitsProofAndSelfEvaluation) {
  const std::string text = "<think>plan</think>Intro.\n## Solution\nBy induction, $\\{a_n\\}$ ...\n\n"
                           "## Self Evaluation\n" + Analysis("My step 2 is loose.", "\\boxed{0.5}") + "\n";
  GeneratorOutput out = SplitGeneratorOutput(text, kMarkers);
  EXPECT_TRUE(out.has_solution_header);
  EXPECT_TRUE(out.has_self_evaluation_header);
  EXPECT_EQ(out.proof, "By induction, $\\{a_n\\}$ ...");
  EXPECT_EQ(out.self_analysis, Analysis("My step 2 is loose.", "\\boxed{0.5}"));
  EXPECT_EQ(out.self_score.format(), v1::FORMAT_STATUS_OK);
  EXPECT_EQ(out.self_score.value(), 0.5);
}

TEST(GeneratorOutput, WithoutSolutionHeaderTheProofStartsAtTheTop) {
  GeneratorOutput out = SplitGeneratorOutput("Proof text.\n## Self Evaluation\nnothing", kMarkers);
  EXPECT_FALSE(out.has_solution_header);
  EXPECT_EQ(out.proof, "Proof text.");
  EXPECT_EQ(out.self_analysis, "nothing");
  EXPECT_EQ(out.self_score.format(), v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
}

TEST(GeneratorOutput, WithoutSelfEvaluationTheWholeTextIsTheProof) {
  GeneratorOutput out = SplitGeneratorOutput("## Solution\nAll of it.", kMarkers);
  EXPECT_FALSE(out.has_self_evaluation_header);
  EXPECT_EQ(out.proof, "All of it.");
  EXPECT_EQ(out.self_analysis, "");
  EXPECT_FALSE(out.self_score.has_value());
  EXPECT_EQ(out.self_score.format(), v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
  EXPECT_EQ(SplitGeneratorOutput("## Solution\nAll of", kMarkers, v1::FINISH_REASON_LENGTH).self_score.format(),
            v1::FORMAT_STATUS_TRUNCATED);
}

}  // namespace
}  // namespace dsm
