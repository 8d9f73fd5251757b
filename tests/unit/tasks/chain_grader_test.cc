// ChainGrader: the checker behind the coordinator's Grader interface.
#include "tasks/chain_grader.h"

#include <gtest/gtest.h>

#include "tasks/chain_analysis.h"
#include "tasks/chain_domain.h"

namespace dsm {
namespace {

TEST(ChainGrader, GradesProofsAndAnalyses) {
  absl::StatusOr<ChainProblem> generated = GenerateChainProblem(ChainDomainOptions{}, ChainSplit::kEval, 11);
  ASSERT_TRUE(generated.ok()) << generated.status();
  const ChainProblem& problem = *generated;
  const std::string statement = problem.statement.Text();
  const ChainGrader grader;
  const LabelledChainProof correct = MakeLabelledChainProof(problem, ChainFlaw::kNone, 1);
  auto graded = grader.GradeProof(statement, correct.text);
  ASSERT_TRUE(graded.ok()) << graded.status();
  EXPECT_EQ(graded->score, 1.0);
  EXPECT_EQ(graded->faulty_line, 0);
  for (ChainFlaw flaw : AllChainFlaws()) {
    const LabelledChainProof flawed = MakeLabelledChainProof(problem, flaw, 3);
    auto g = grader.GradeProof(statement, flawed.text);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->score, flawed.score) << ChainFlawName(flaw);
    EXPECT_EQ(g->faulty_line, flawed.faulty_line) << ChainFlawName(flaw);
  }
  // A faithful analysis of a correct proof; then one that invents an issue.
  auto faithful = grader.GradeAnalysis(statement, correct.text, RenderChainAnalysis(1, {}));
  ASSERT_TRUE(faithful.ok());
  EXPECT_FALSE(faithful->hallucinated);
  EXPECT_TRUE(faithful->score_agrees);
  auto invented = grader.GradeAnalysis(statement, correct.text, RenderChainAnalysis(0, {"Step 1 is wrong."}));
  ASSERT_TRUE(invented.ok());
  EXPECT_TRUE(invented->hallucinated);
  EXPECT_FALSE(invented->score_agrees);
  EXPECT_EQ(grader.GradeProof("not a chain problem", "x").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dsm
