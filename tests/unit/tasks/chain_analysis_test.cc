// Analyses of the chain domain (tasks/chain_analysis.h): every rendered analysis parses with
// dsm's score parser to the intended score, and labelled analyses get the meta-labels their
// kind calls for.
#include "tasks/chain_analysis.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "services/scoring/score_parser.h"

namespace dsm {
namespace {

TEST(ChainAnalysis, RendersTheVerifierFormat) {
  EXPECT_EQ(RenderChainAnalysis(0.5, {"The final line is missing."}),
            "Here is my evaluation of the solution:\nThe final line is missing.\n"
            "Based on my evaluation, the final overall score should be:\n\\boxed{0.5}");
  EXPECT_EQ(RenderChainAnalysis(1, {}),
            "Here is my evaluation of the solution:\nAll steps are correct.\n"
            "Based on my evaluation, the final overall score should be:\n\\boxed{1}");
  EXPECT_EQ(RenderChainGeneratorOutput("1. a=b, so a=b\nThus a=b.", "X"),
            "## Solution\n1. a=b, so a=b\nThus a=b.\n\n## Self Evaluation\n\nX");
}

TEST(ChainAnalysis, EveryAnalysisParsesWithTheScoreParserToItsScore) {
  std::map<ChainAnalysisKind, int> made;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
    ASSERT_TRUE(problem.ok());
    for (ChainFlaw flaw : AllChainFlaws()) {
      const LabelledChainProof proof = MakeLabelledChainProof(*problem, flaw, seed);
      for (ChainAnalysisKind kind : AllChainAnalysisKinds()) {
        auto analysis = MakeLabelledChainAnalysis(problem->statement, proof, kind, seed);
        if (!analysis) {
          // Only these kinds may be missing, and only for these proofs.
          EXPECT_TRUE(kind == ChainAnalysisKind::kMissedIssue ||
                      kind == ChainAnalysisKind::kMixedIssues ||
                      kind == ChainAnalysisKind::kBogusIssue);
          if (kind == ChainAnalysisKind::kMissedIssue) {
            EXPECT_EQ(flaw, ChainFlaw::kNone);
          }
          continue;
        }
        ++made[kind];
        const v1::Score score = ParseScore(analysis->text, VerifierMarkers());
        ASSERT_EQ(score.format(), v1::FORMAT_STATUS_OK) << analysis->text;
        ASSERT_TRUE(analysis->assessment.claims.score.has_value());
        EXPECT_EQ(score.value(), *analysis->assessment.claims.score) << analysis->text;
        const double expected_meta =
            kind == ChainAnalysisKind::kFaithful || kind == ChainAnalysisKind::kMissedIssue ? 1.0
            : kind == ChainAnalysisKind::kBogusIssue                                        ? 0.0
                                                                                            : 0.5;
        EXPECT_EQ(analysis->assessment.meta_score, expected_meta)
            << ChainAnalysisKindName(kind) << " " << ChainFlawName(flaw) << "\n"
            << proof.text << "\n"
            << analysis->text;
        const bool hallucinates =
            kind == ChainAnalysisKind::kBogusIssue || kind == ChainAnalysisKind::kMixedIssues ||
            (kind == ChainAnalysisKind::kWrongScore && flaw == ChainFlaw::kNone);
        EXPECT_EQ(analysis->assessment.hallucinated, hallucinates) << analysis->text;
        if (kind == ChainAnalysisKind::kFaithful || kind == ChainAnalysisKind::kMixedIssues) {
          EXPECT_TRUE(analysis->assessment.score_agrees) << analysis->text;
        }
        if (kind == ChainAnalysisKind::kMissedIssue || kind == ChainAnalysisKind::kWrongScore) {
          EXPECT_FALSE(analysis->assessment.score_agrees) << analysis->text;
        }
        if (kind == ChainAnalysisKind::kFaithful) {
          EXPECT_EQ(score.value(), proof.score);
        }

        // The generator's output splits back into the proof and a self-evaluation that parses.
        const GeneratorOutput out = SplitGeneratorOutput(
            RenderChainGeneratorOutput(proof.text, analysis->text), VerifierMarkers());
        EXPECT_EQ(out.proof, proof.text);
        EXPECT_EQ(out.self_score.format(), v1::FORMAT_STATUS_OK);
        EXPECT_EQ(out.self_score.value(), score.value());

        // The meta-analysis parses with the meta-verifier's markers to the meta-label.
        const v1::Score meta =
            ParseScore(RenderChainMetaAnalysis(analysis->assessment), MetaVerifierMarkers());
        ASSERT_EQ(meta.format(), v1::FORMAT_STATUS_OK);
        EXPECT_EQ(meta.value(), analysis->assessment.meta_score);
      }
    }
  }
  EXPECT_EQ(made.size(), AllChainAnalysisKinds().size());
  for (const auto& [kind, n] : made) EXPECT_GT(n, 300) << ChainAnalysisKindName(kind);
}

TEST(ChainAnalysis, MarkersMatchTheScoringServices) {
  const ChainAnalysisMarkers verifier;
  EXPECT_EQ(verifier.evaluation, VerifierMarkers().evaluation);
  EXPECT_EQ(verifier.score, VerifierMarkers().score);
  EXPECT_EQ(ChainMetaAnalysisMarkers().evaluation, MetaVerifierMarkers().evaluation);
  EXPECT_EQ(ChainMetaAnalysisMarkers().score, MetaVerifierMarkers().score);
}

}  // namespace
}  // namespace dsm
