// The exact checker (tasks/chain_checker.h): each rule with its exact reason, garbage and
// fuzzed input, and the assessment of analyses (meta-labels, hallucinated issues).
#include "tasks/chain_checker.h"

#include <gtest/gtest.h>

#include <string>

#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

constexpr char kStatement[] = "Given: c=d, a=b, e=b, c=b. Prove: a=d.";
constexpr char kCorrect[] = "1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d\nThus a=d.";

ChainVerdict Check(const std::string& proof) {
  auto verdict = CheckChainProof(kStatement, proof);
  EXPECT_TRUE(verdict.ok()) << verdict.status();
  return *verdict;
}

// score, first faulty line, its reason.
struct Summary {
  double score;
  int line;
  std::string reason;
  bool operator==(const Summary& o) const {
    return score == o.score && line == o.line && reason == o.reason;
  }
};
std::ostream& operator<<(std::ostream& os, const Summary& s) {
  return os << "{" << s.score << ", " << s.line << ", \"" << s.reason << "\"}";
}
Summary Summarize(const std::string& proof) {
  const ChainVerdict v = Check(proof);
  return {v.score, v.first_faulty_line(), v.first_fault() ? v.first_fault()->reason : ""};
}

TEST(ChainChecker, CorrectProofsScoreOne) {
  EXPECT_EQ(Summarize(kCorrect), (Summary{1.0, 0, ""}));
  // Blanks, blank lines and final periods do not matter.
  EXPECT_EQ(Summarize("\n 1.a=b,so a=b \r\n\n2. c=b , so a=c.\n3. c=d, so a=d\n  Thus a=d\n"),
            (Summary{1.0, 0, ""}));
  const ChainVerdict v = Check(kCorrect);
  EXPECT_EQ(v.steps, 3);
  EXPECT_EQ(v.final_line, 4);
}

// A proof that is all steps numbered in order (and, last, a final line) reads back as the
// ChainProof whose text it is, faulty or not; anything else does not read back.
TEST(ChainChecker, ReadsBackProofsThatAreAllStepsAndAFinalLine) {
  for (const std::string& proof :
       {std::string(kCorrect), std::string("1. a=b, so a=c\n2. e=c, so a=d\nThus a=b."),
        std::string("1. a=b, so a=b"), std::string("Thus a=d.")}) {
    const std::optional<ChainProof> parsed = ParseChainProof(proof);
    ASSERT_TRUE(parsed.has_value()) << proof;
    EXPECT_EQ(parsed->Text(), proof);
  }
  // Blanks, blank lines and final periods as the checker allows them.
  const std::optional<ChainProof> loose = ParseChainProof("\n 1.a=b,so a=b. \r\n\n2. c=b , so a=c\n  Thus a=c\n");
  ASSERT_TRUE(loose.has_value());
  EXPECT_EQ(loose->Text(), "1. a=b, so a=b\n2. c=b, so a=c\nThus a=c.");
  ASSERT_EQ(loose->steps.size(), 2u);
  EXPECT_EQ(loose->steps[1].cited, (ChainFact{'c', 'b'}));
  EXPECT_EQ(loose->steps[1].conclusion, (ChainFact{'a', 'c'}));
  for (const std::string& proof : {std::string(), std::string(" \n"), std::string("hello"),
                                  std::string("1. a=b, so a=b\nhello\nThus a=b."),
                                  std::string("2. a=b, so a=b\nThus a=b."),
                                  std::string("1. a=b, so a=b\n1. b=c, so a=c"),
                                  std::string("1. a=b, so a=b\nThus a=b.\n2. b=c, so a=c")}) {
    EXPECT_FALSE(ParseChainProof(proof).has_value()) << proof;
  }
}

// Every line read as a step gets its citation's standing, misnumbered and faulty ones too;
// the final line and unreadable lines get none.
TEST(ChainChecker, RecordsEachStepsCitation) {
  const ChainVerdict v = Check("1. a=b, so a=b\n3. b=c, so a=c\nhello\n3. c=f, so a=f\nThus a=d.");
  ASSERT_EQ(v.citations.size(), 3u);
  EXPECT_EQ(v.steps, 3);
  EXPECT_EQ(v.citations[0].line, 1);
  EXPECT_EQ(v.citations[2].line, 4);  // the number written is 3: the checker's line numbering
  EXPECT_EQ(v.citations[0].cited, (ChainFact{'a', 'b'}));
  EXPECT_EQ(v.citations[0].status, ChainCitationStatus::kGiven);
  EXPECT_EQ(v.citations[1].cited, (ChainFact{'b', 'c'}));
  EXPECT_EQ(v.citations[1].status, ChainCitationStatus::kReversed);
  EXPECT_EQ(v.citations[2].cited, (ChainFact{'c', 'f'}));
  EXPECT_EQ(v.citations[2].status, ChainCitationStatus::kNotGiven);
  EXPECT_EQ(v.final_claim, (ChainFact{'a', 'd'}));
  EXPECT_EQ(v.goal, (ChainFact{'a', 'd'}));
  EXPECT_FALSE(Check("1. a=b, so a=b").final_claim.has_value());
  EXPECT_EQ(Check("1. a=b, so a=b\nThus a=c").final_claim, (ChainFact{'a', 'c'}));
  EXPECT_TRUE(Check("").citations.empty());
}

TEST(ChainChecker, EachRuleGivesItsScoreLineAndReason) {
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. b=d, so a=d\nThus a=d."),
            (Summary{0.0, 2, "Step 2 cites b=d, which is not given."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. c=d, so a=d\nThus a=d."),
            (Summary{0.0, 2, "Step 2 has a gap: c=d does not contain b."}));
  EXPECT_EQ(Summarize("1. c=b, so a=c\n2. c=d, so a=d\nThus a=d."),
            (Summary{0.0, 1, "Step 1 has a gap: c=b does not contain a."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. c=b, so a=b\n3. c=d, so a=d\nThus a=d."),
            (Summary{0.0, 2, "Step 2 concludes a=b, but a=c follows."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. c=b, so a=c\nThus a=d."),
            (Summary{0.0, 3, "The final line claims a=d, but the chain ends at a=c."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d\nThus a=c."),
            (Summary{0.0, 4, "The final line states a=c, not a=d."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. b=c, so a=c\n3. c=d, so a=d\nThus a=d."),
            (Summary{0.5, 2, "Step 2 cites b=c, but the given fact is c=b."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d"),
            (Summary{0.5, 4, "The final line is missing."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n2. c=b, so a=c"),
            (Summary{0.0, 3, "The final line is missing and the chain ends at a=c."}));
  EXPECT_EQ(Summarize("Thus a=d."), (Summary{0.0, 1, "The final line claims a=d with no steps."}));
  EXPECT_EQ(Summarize(""), (Summary{0.0, 1, "Step 1 is missing: the proof is empty."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\n3. c=b, so a=c\n3. c=d, so a=d\nThus a=d."),
            (Summary{0.0, 2, "Step 2 is numbered 3."}));
  EXPECT_EQ(Summarize("1. a=b, so a=b\nhence a=c\n3. c=d, so a=d\nThus a=d."),
            (Summary{0.0, 2, "Line 2 cannot be read."}));
  EXPECT_EQ(Summarize(std::string(kCorrect) + "\n4. e=b, so a=e"),
            (Summary{0.0, 5, "Line 5 comes after the conclusion."}));
}

TEST(ChainChecker, AMinorFlawAndAFatalOneScoreZeroAndAreBothListed) {
  const ChainVerdict v = Check("1. b=a, so a=b\n2. c=b, so a=c\n3. c=d, so a=d");
  EXPECT_EQ(v.score, 0.5);
  const ChainVerdict w = Check("1. b=a, so a=b\n2. c=b, so a=c\nThus a=d.");
  EXPECT_EQ(w.score, 0.0);
  ASSERT_EQ(w.faults.size(), 2u);
  EXPECT_FALSE(w.faults[0].fatal);
  EXPECT_TRUE(w.faults[1].fatal);
  EXPECT_EQ(w.faults[1].line, 3);
}

TEST(ChainChecker, ABadStatementIsAnError) {
  EXPECT_EQ(CheckChainProof("Prove a=b", kCorrect).status().message(),
            "statement: expected 'Given:' at byte 0");
}

// Random bytes, random mixtures of the domain's own pieces, and mutated correct proofs: never
// a crash, never a 1 for something that is not a correct proof, garbage always 0.
TEST(ChainChecker, FuzzedInputNeverCrashesAndGarbageScoresZero) {
  auto statement = ParseChainStatement(kStatement);
  ASSERT_TRUE(statement.ok());
  SeededRng rng(42);
  const std::string pieces[] = {"1",
                                "2",
                                "3",
                                ". ",
                                "a",
                                "b",
                                "c",
                                "d",
                                "=",
                                ", ",
                                "so ",
                                "Thus ",
                                "\n",
                                " ",
                                ".",
                                "\\boxed{",
                                "}",
                                "\xff",
                                std::string(1, '\0'),
                                "Step",
                                "\xe2\x82",
                                "10000000000",
                                "-"};
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    const int n = rng.Uniform(60);
    if (i % 3 == 0) {
      for (int k = 0; k < n; ++k) text.push_back(static_cast<char>(rng.Uniform(256)));
      const ChainVerdict v = CheckChainProof(*statement, text);
      EXPECT_EQ(v.score, 0.0) << text;
    } else if (i % 3 == 1) {
      for (int k = 0; k < n; ++k) text += pieces[rng.Uniform(static_cast<int>(std::size(pieces)))];
      const ChainVerdict v = CheckChainProof(*statement, text);
      EXPECT_TRUE(v.score == 0.0 || v.score == 0.5 || v.score == 1.0);
      EXPECT_EQ(v.score == 1.0, v.faults.empty());
    } else {
      text = kCorrect;
      for (int k = 0; k < 1 + rng.Uniform(3); ++k) {
        text[rng.Uniform(static_cast<int>(text.size()))] = pieces[rng.Uniform(8)][0];
      }
      const ChainVerdict v = CheckChainProof(*statement, text);
      // Replacing any character by one of these breaks the proof unless it changes nothing.
      if (v.score == 1.0) {
        EXPECT_EQ(text, kCorrect);
      }
      EXPECT_EQ(v.score == 1.0, v.faults.empty());
    }
  }
  // Large inputs stay linear.
  const std::string huge(1 << 20, 'x');
  EXPECT_EQ(CheckChainProof(*statement, huge).score, 0.0);
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "1. a=b, so a=b\n";
  EXPECT_EQ(CheckChainProof(*statement, many).score, 0.0);
}

std::string Analysis(const std::string& body, const std::string& score) {
  return "Here is my evaluation of the solution:\n" + body +
         "\nBased on my evaluation, the final overall score should be:\n\\boxed{" + score + "}";
}

TEST(ChainChecker, ReadsClaimsAndScoresOfAnalyses) {
  ChainAnalysisClaims c =
      ReadChainAnalysis(Analysis("Step 2 is wrong; see step 3 and the final line.", "0"), 5);
  EXPECT_TRUE(c.format_ok());
  EXPECT_EQ(c.score, 0.0);
  EXPECT_EQ(c.lines, (std::vector<int>{2, 3, 5}));
  c = ReadChainAnalysis(Analysis("All steps are correct.", " 1.0 "), 4);
  EXPECT_EQ(c.score, 1.0);
  EXPECT_TRUE(c.lines.empty());
  // Only the last box after the score marker counts; thinking is ignored; bad values fail.
  c = ReadChainAnalysis("Step 9</think>" + Analysis("Misstep 7 outline 8", "1/2"), 4);
  EXPECT_FALSE(c.score.has_value());
  EXPECT_FALSE(c.format_ok());
  EXPECT_TRUE(c.lines.empty());
  c = ReadChainAnalysis(Analysis("none", "0.5") + " \\boxed{ } \\boxed{1}", 4);
  EXPECT_EQ(c.score, 1.0);
  c = ReadChainAnalysis(Analysis("none", "0.5") + " \\boxed{1", 4);
  EXPECT_FALSE(c.score.has_value());
  c = ReadChainAnalysis("Step 2 is wrong. \\boxed{0}", 4);
  EXPECT_FALSE(c.has_evaluation_marker);
  EXPECT_FALSE(c.has_score_marker);
  EXPECT_EQ(c.score, 0.0);
  EXPECT_EQ(c.lines, (std::vector<int>{2}));
}

TEST(ChainChecker, AssessesAnalysesWithTheMetaRubric) {
  const ChainVerdict wrong = Check("1. a=b, so a=b\n2. b=d, so a=d\nThus a=d.");  // step 2 fatal
  const ChainVerdict minor = Check("1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d");  // line 4
  const ChainVerdict right = Check(kCorrect);
  struct Case {
    const ChainVerdict* verdict;
    std::string analysis;
    double meta;
    bool hallucinated;
    std::string reason;
  };
  const Case cases[] = {
      {&wrong, Analysis("Step 2 cites b=d, which is not given.", "0"), 1, false,
       "The issue it names is real and its score fits."},
      {&wrong, Analysis("Step 2 cites b=d, which is not given.", "0.5"), 0.5, false,
       "The issue is real but the score should be 0."},
      {&wrong, Analysis("All steps are correct.", "1"), 1, false,
       "It names no issue and its score fits."},
      {&wrong, Analysis("Step 1 cites a=b, which is not given.", "0"), 0, true,
       "Step 1 is not faulty."},
      {&wrong, Analysis("Step 1 is bad.\nStep 2 is bad.", "0"), 0.5, true,
       "Step 2 is faulty, but step 1 is not."},
      {&wrong, Analysis("The final line claims a=d, but the chain ends at a=b.", "0"), 0, true,
       "The final line is not faulty."},
      {&minor, Analysis("The final line is missing.", "0.5"), 1, false,
       "The issue it names is real and its score fits."},
      {&minor, Analysis("The final line is missing.", "0"), 0.5, false,
       "The issue is real but the score should be 0.5."},
      {&right, Analysis("All steps are correct.", "0"), 0.5, true,
       "It names no issue but gives 0."},
      {&right, Analysis("All steps are correct.", "1"), 1, false,
       "It names no issue and its score fits."},
      // Without markers the format fails; any line mentioned counts as named faulty.
      {&right, "Step 2 looks fine. \\boxed{1}", 0, true, "The evaluation has no valid score."},
  };
  for (const Case& c : cases) {
    const ChainAnalysisAssessment a = AssessChainAnalysis(*c.verdict, c.analysis);
    EXPECT_EQ(a.meta_score, c.meta) << c.analysis;
    EXPECT_EQ(a.hallucinated, c.hallucinated) << c.analysis;
    EXPECT_EQ(a.reason, c.reason) << c.analysis;
  }
  EXPECT_TRUE(AssessChainAnalysis(wrong, Analysis("x", "0")).score_agrees);
  EXPECT_FALSE(AssessChainAnalysis(wrong, Analysis("x", "1")).score_agrees);
}

}  // namespace
}  // namespace dsm
