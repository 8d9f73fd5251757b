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

// A verifier-style analysis opens with one check per cited fact; the note names no step, so
// the claims read from the analysis are its issue lines alone.
TEST(ChainAnalysis, FaithfulAnalysesOpenWithTheCitationNote) {
  const ChainStatement statement = *ParseChainStatement("Given: c=d, a=b, e=b, c=b. Prove: a=d.");
  const ChainVerdict verdict = CheckChainProof(statement, "1. a=b, so a=b\n2. b=c, so a=c\n3. c=f, so a=f\nThus a=d.");
  EXPECT_EQ(RenderFaithfulChainAnalysis(verdict),
            "Here is my evaluation of the solution:\n"
            "Cited: 1. a: a=b given, 2. b: b=c reversed, 3. c: c=f not given, end f: a=d not reached.\n"
            "Step 2 cites b=c, but the given fact is c=b.\n"
            "Step 3 cites c=f, which is not given.\n"
            "Based on my evaluation, the final overall score should be:\n\\boxed{0}");
  const ChainAnalysisClaims claims = ReadChainAnalysis(RenderFaithfulChainAnalysis(verdict), verdict.final_line);
  EXPECT_EQ(claims.lines, (std::vector<int>{2, 3}));
  EXPECT_EQ(RenderFaithfulChainAnalysis(CheckChainProof(statement, "1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d\nThus a=d.")),
            "Here is my evaluation of the solution:\nCited: 1. a: a=b given, 2. b: c=b given, 3. c: c=d given, end d: a=d goal.\n"
            "All steps are correct.\nBased on my evaluation, the final overall score should be:\n\\boxed{1}");
  EXPECT_EQ(ChainCitationNote({}), "Cited: none.");
  // The final line is looked up too: a wrong one is "not goal" (and named by the issue line).
  const ChainVerdict wrong_final =
      CheckChainProof(statement, "1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d\nThus a=c.");
  EXPECT_EQ(ChainCitationNote(wrong_final.citations, wrong_final.final_claim, wrong_final.goal),
            "Cited: 1. a: a=b given, 2. b: c=b given, 3. c: c=d given, end d: a=c not goal.");
  EXPECT_EQ(ReadChainAnalysis(RenderFaithfulChainAnalysis(wrong_final), wrong_final.final_line).lines,
            (std::vector<int>{4}));
  EXPECT_EQ(ChainCitationNote({}, ChainFact{'a', 'd'}, ChainFact{'a', 'd'}), "Cited: end a: a=d not reached.");
  // The final item says where the cited facts take the chain: a last step that claims the goal
  // through a fact leading elsewhere, or a chain that stops short, has not reached it.
  const ChainVerdict early = CheckChainProof(statement, "1. a=b, so a=b\n2. c=b, so a=c\n3. c=b, so a=d\nThus a=d.");
  EXPECT_EQ(ChainCitationNote(early.citations, early.final_claim, early.goal),
            "Cited: 1. a: a=b given, 2. b: c=b given, 3. c: c=b given, end b: a=d not reached.");
  const ChainVerdict short_chain = CheckChainProof(statement, "1. a=b, so a=b\n2. c=b, so a=c\nThus a=d.");
  EXPECT_EQ(ChainCitationNote(short_chain.citations, short_chain.final_claim, short_chain.goal),
            "Cited: 1. a: a=b given, 2. b: c=b given, end c: a=d not reached.");
  EXPECT_EQ(ChainCitedEnd(short_chain.citations, 'a'), 'c');
  EXPECT_EQ(ChainCitedEnd({}, 'a'), 'a');
  // A gap does not move it.
  EXPECT_EQ(ChainCitedEnd(CheckChainProof(statement, "1. a=b, so a=b\n2. c=d, so a=d").citations, 'a'), 'b');
  // Each item names the variable the chain has reached; a given fact without it is a gap,
  // written given or reversed; a fact not given either way is "not given" first.
  EXPECT_EQ(ChainCitationNote(CheckChainProof(statement, "1. a=b, so a=b\n2. c=d, so a=d\nThus a=d.").citations),
            "Cited: 1. a: a=b given, 2. b: c=d gap.");
  EXPECT_EQ(ChainCitationNote(CheckChainProof(statement, "1. a=b, so a=b\n2. d=c, so a=d\nThus a=d.").citations),
            "Cited: 1. a: a=b given, 2. b: d=c gap.");
  EXPECT_EQ(ChainCitationNote(CheckChainProof(statement, "1. a=b, so a=b\n2. e=d, so a=d\nThus a=d.").citations),
            "Cited: 1. a: a=b given, 2. b: e=d not given.");
  // After a step the chain is where that step's conclusion says, right or wrong.
  EXPECT_EQ(ChainCitationNote(CheckChainProof(statement, "1. a=b, so a=e\n2. e=b, so a=b\n3. c=b, so a=c").citations),
            "Cited: 1. a: a=b given, 2. e: e=b given, 3. b: c=b given.");
  // No final line, no item.
  const ChainVerdict no_final = CheckChainProof(statement, "1. a=b, so a=b");
  EXPECT_EQ(ChainCitationNote(no_final.citations, no_final.final_claim, no_final.goal), "Cited: 1. a: a=b given.");
}

// The meta-analysis's note: the true citation of each named step line, as the verifier's note
// writes it, whatever the analysis claims about it; the final line and missing lines add none.
TEST(ChainAnalysis, TheMetaCheckNoteLooksUpTheNamedLines) {
  const ChainStatement statement = *ParseChainStatement("Given: c=d, a=b, e=b, c=b. Prove: a=d.");
  const ChainVerdict verdict = CheckChainProof(statement, "1. a=b, so a=b\n2. b=c, so a=c\n3. c=f, so a=f\nThus a=d.");
  EXPECT_EQ(ChainMetaCheckNote(verdict, {3}), "Checked: 3. c: c=f not given.");
  EXPECT_EQ(ChainMetaCheckNote(verdict, {1, 2}), "Checked: 1. a: a=b given, 2. b: b=c reversed.");
  EXPECT_EQ(ChainMetaCheckNote(verdict, {1, 4}), "Checked: 1. a: a=b given.");
  EXPECT_EQ(ChainMetaCheckNote(verdict, {}), "Checked: none.");
  EXPECT_EQ(ChainMetaCheckNote(verdict, {4, 9}), "Checked: none.");
}

TEST(ChainAnalysis, TalliesTheLookUpItemByItem) {
  const ChainStatement statement = *ParseChainStatement("Given: c=d, a=b, e=b, c=b. Prove: a=d.");
  const ChainVerdict verdict = CheckChainProof(statement, "1. a=b, so a=b\n2. b=c, so a=c\n3. c=f, so a=f\nThus a=d.");
  auto tally = [&](const std::string& analysis) {
    const ChainLookupTally t = TallyChainLookup(verdict.citations, analysis);
    return std::vector<int>{t.citations, t.right, t.faulty, t.faulty_right, t.reversed, t.reversed_right};
  };
  EXPECT_EQ(tally(RenderFaithfulChainAnalysis(verdict)), (std::vector<int>{3, 3, 2, 2, 1, 1}));
  // "Always given": the right fact, the wrong status for both faulty citations.
  EXPECT_EQ(tally("Here is my evaluation of the solution:\nCited: 1. a: a=b given, 2. b: b=c given, 3. c: c=f given.\n"),
            (std::vector<int>{3, 1, 2, 0, 1, 0}));
  // A fact written wrong is a miss even with the right status; a short note misses the rest.
  EXPECT_EQ(tally("Cited: 1. a: a=b given, 2. b: c=b reversed."), (std::vector<int>{3, 1, 2, 0, 1, 0}));
  EXPECT_EQ(tally("Cited: 1. a: a=b given, 2. b: b=c reversed"), (std::vector<int>{3, 2, 2, 1, 1, 1}));
  EXPECT_EQ(tally("All steps are correct."), (std::vector<int>{3, 0, 2, 0, 1, 0}));
  EXPECT_EQ(TallyChainLookup({}, "Cited: none.").citations, 0);
  // A gap is a faulty citation too: its item must say so.
  const ChainVerdict gap = CheckChainProof(statement, "1. a=b, so a=b\n2. c=d, so a=d\nThus a=d.");
  EXPECT_EQ(TallyChainLookup(gap.citations, RenderFaithfulChainAnalysis(gap)).faulty_right, 1);
  EXPECT_EQ(TallyChainLookup(gap.citations, "Cited: 1. a: a=b given, 2. b: c=d given.").faulty_right, 0);
}

// The note of a made-up analysis goes with what it claims: a missed issue notes every citation
// as given; a made-up citation issue shows in the note too.
TEST(ChainAnalysis, MadeUpAnalysesNoteWhatTheyClaim) {
  int bogus_citations = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
    ASSERT_TRUE(problem.ok());
    const LabelledChainProof wrong = MakeLabelledChainProof(*problem, ChainFlaw::kFactNotGiven, seed);
    auto missed = MakeLabelledChainAnalysis(problem->statement, wrong, ChainAnalysisKind::kMissedIssue, seed);
    ASSERT_TRUE(missed.has_value());
    EXPECT_EQ(missed->text.find("not given"), std::string::npos) << missed->text;
    EXPECT_EQ(missed->text.find("not goal"), std::string::npos) << missed->text;
    EXPECT_EQ(missed->text.find("not reached"), std::string::npos) << missed->text;
    const LabelledChainProof right = MakeLabelledChainProof(*problem, ChainFlaw::kNone, seed);
    auto bogus = MakeLabelledChainAnalysis(problem->statement, right, ChainAnalysisKind::kBogusIssue, seed);
    ASSERT_TRUE(bogus.has_value());
    const std::string note = bogus->text.substr(0, bogus->text.find("\nStep"));
    if (bogus->text.find("which is not given") != std::string::npos) {
      EXPECT_NE(note.find("not given"), std::string::npos) << bogus->text;
      ++bogus_citations;
    } else if (bogus->text.find("but the given fact is") != std::string::npos) {
      EXPECT_NE(note.find("reversed"), std::string::npos) << bogus->text;
      ++bogus_citations;
    } else {
      EXPECT_EQ(note.find("not given"), std::string::npos) << bogus->text;
      EXPECT_EQ(note.find("reversed"), std::string::npos) << bogus->text;
    }
  }
  EXPECT_GT(bogus_citations, 50);
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
