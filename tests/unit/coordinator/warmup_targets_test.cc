// Phase 0's targets for imported data parse as the scorers parse the model's outputs: the
// meta-verifier's assessment gives the analysis its meta-label, the generator's output splits
// into the proof and a self-evaluation that gives the proof its label.
#include "services/coordinator/warmup_targets.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace dsm {
namespace {

TEST(WarmupTargets, TheMetaVerifiersAssessmentCarriesTheMetaLabel) {
  for (double ms : {0.0, 0.5, 1.0}) {
    v1::LabelledAnalysis a;
    a.set_analysis("Step 2 is wrong.\n\\boxed{0}");
    a.set_meta_score(ms);
    const std::string target = MetaVerifierTarget(a, MetaVerifierMarkers());
    const v1::Score score = ParseScore(target, MetaVerifierMarkers());
    EXPECT_EQ(score.format(), v1::FORMAT_STATUS_OK) << target;
    EXPECT_DOUBLE_EQ(score.value(), ms) << target;
  }
  v1::LabelledAnalysis bogus;
  bogus.set_meta_score(0);
  bogus.set_issue("Step 2 is correct: b=c is given.");
  EXPECT_TRUE(absl::StrContains(MetaVerifierTarget(bogus, MetaVerifierMarkers()), "Step 2 is correct: b=c is given."));
}

TEST(WarmupTargets, TheGeneratorsOutputSplitsIntoTheProofAndItsLabel) {
  v1::LabelledProof p;
  p.set_proof("1. a=b, so a=b\nThus a=b.");
  p.set_score(1);
  const GeneratorOutput out = SplitGeneratorOutput(GeneratorTarget(p, VerifierMarkers()), VerifierMarkers());
  EXPECT_TRUE(out.has_solution_header);
  EXPECT_TRUE(out.has_self_evaluation_header);
  EXPECT_EQ(out.proof, p.proof());
  EXPECT_EQ(out.self_score.format(), v1::FORMAT_STATUS_OK);
  EXPECT_DOUBLE_EQ(out.self_score.value(), 1.0);

  p.set_score(0.5);
  p.set_issue("The final line is missing.");
  const GeneratorOutput flawed = SplitGeneratorOutput(GeneratorTarget(p, VerifierMarkers()), VerifierMarkers());
  EXPECT_DOUBLE_EQ(flawed.self_score.value(), 0.5);
  EXPECT_TRUE(absl::StrContains(flawed.self_analysis, "The final line is missing."));
}

}  // namespace
}  // namespace dsm
