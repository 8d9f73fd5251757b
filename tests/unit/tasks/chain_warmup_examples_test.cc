// The warm-up's examples (tasks/chain_warmup_examples.h) with the built-in tiny templates
// (configs/prompts/tiny): prompts are the templates rendered the way the pipeline renders them,
// and every target completion parses with the scoring services' parser to the checker's label.
#include "tasks/chain_warmup_examples.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "services/scoring/score_parser.h"
#include "tasks/chain_analysis.h"
#include "tasks/chain_checker.h"

namespace dsm {
namespace {

std::string TinyPromptsDir() {
  const char* source = std::getenv("DSM_SOURCE_DIR");
  return absl::StrCat(source != nullptr ? source : ".", "/configs/prompts/tiny");
}

class ChainWarmupExamples : public testing::Test {
 protected:
  void SetUp() override {
    auto loaded = ChainWarmupTemplates::Load(TinyPromptsDir());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    templates_ = std::make_unique<ChainWarmupTemplates>(*std::move(loaded));
  }
  // A verifier's and a meta-verifier's drill completion on one scrambled proof.
  void DrillCompletions(std::string* verifier, std::string* meta) {
    auto problem = GenerateChainProblem({}, ChainSplit::kTrain, 4);
    ASSERT_TRUE(problem.ok());
    const ChainProof scrambled = ScrambledChainProof(*problem, 4);
    *verifier = MakeChainVerifierExample(*templates_, *problem, scrambled.Text()).completion;
    *meta = MakeChainMetaVerifierExample(*templates_, *problem, scrambled, 4).completion;
  }
  std::unique_ptr<ChainWarmupTemplates> templates_;
};

TEST_F(ChainWarmupExamples, TinyTemplatesUseTheReleasedModelsMarkers) {
  EXPECT_EQ(templates_->generator.markers().evaluation, VerifierMarkers().evaluation);
  EXPECT_EQ(templates_->generator.markers().score, VerifierMarkers().score);
  EXPECT_EQ(templates_->verifier.markers().evaluation, VerifierMarkers().evaluation);
  EXPECT_EQ(templates_->verifier.markers().score, VerifierMarkers().score);
  EXPECT_EQ(templates_->meta_verifier.markers().evaluation, MetaVerifierMarkers().evaluation);
  EXPECT_EQ(templates_->meta_verifier.markers().score, MetaVerifierMarkers().score);
}

TEST_F(ChainWarmupExamples, PromptsAreTheRenderedTemplatesAndTargetsParseToTheLabels) {
  std::map<double, int> verifier_labels;
  std::map<double, int> meta_labels;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
    ASSERT_TRUE(problem.ok());
    const std::string statement = problem->statement.Text();

    const ChainWarmupExample gen =
        MakeChainWarmupExample(*templates_, PromptRole::kGenerator, *problem, 0.3, seed);
    EXPECT_EQ(gen.prompt, templates_->generator.Render(PromptFields{statement, "", ""}));
    const GeneratorOutput out = SplitGeneratorOutput(gen.completion, templates_->generator.markers());
    EXPECT_TRUE(out.has_solution_header);
    ASSERT_EQ(out.self_score.format(), v1::FORMAT_STATUS_OK) << gen.completion;
    EXPECT_EQ(CheckChainProof(problem->statement, out.proof).score, 1.0) << gen.completion;
    EXPECT_EQ(out.self_score.value(), 1.0);

    const ChainWarmupExample ver =
        MakeChainWarmupExample(*templates_, PromptRole::kVerifier, *problem, 0.3, seed);
    EXPECT_EQ(ver.prompt, templates_->verifier.Render(PromptFields{statement, ver.proof, ""}));
    EXPECT_EQ(ver.proof_score, CheckChainProof(problem->statement, ver.proof).score);
    const v1::Score ver_score = ParseScore(ver.completion, templates_->verifier.markers());
    ASSERT_EQ(ver_score.format(), v1::FORMAT_STATUS_OK) << ver.completion;
    EXPECT_EQ(ver_score.value(), ver.proof_score);
    ++verifier_labels[ver.proof_score];

    const ChainWarmupExample meta =
        MakeChainWarmupExample(*templates_, PromptRole::kMetaVerifier, *problem, 0.3, seed);
    EXPECT_EQ(meta.prompt,
              templates_->meta_verifier.Render(PromptFields{statement, meta.proof, meta.analysis}));
    const v1::Score meta_score = ParseScore(meta.completion, templates_->meta_verifier.markers());
    ASSERT_EQ(meta_score.format(), v1::FORMAT_STATUS_OK) << meta.completion;
    EXPECT_EQ(meta_score.value(), meta.meta_score);
    EXPECT_EQ(meta.meta_score, AssessChainAnalysis(CheckChainProof(problem->statement, meta.proof), meta.analysis)
                                   .meta_score);
    ++meta_labels[meta.meta_score];
  }
  // Every label turns up: the data teaches all three scores.
  EXPECT_EQ(verifier_labels.size(), 3u);
  EXPECT_EQ(meta_labels.size(), 3u);
}

// A model's own proof, whatever it holds, becomes a verifier example graded by the checker: the
// kind of mistake a generator makes (an extra step, a fact cited twice) that no made-up flaw has.
TEST_F(ChainWarmupExamples, AnyProofTextBecomesAVerifierExampleWithTheCheckersAnalysis) {
  auto problem = GenerateChainProblem({}, ChainSplit::kTrain, 3);
  ASSERT_TRUE(problem.ok());
  const std::string canonical = CanonicalChainProof(*problem).Text();
  const std::string reached = problem->statement.goal.Text();
  const std::string extra_step = absl::StrCat(canonical.substr(0, canonical.rfind("\nThus")), "\n",
                                              problem->chain.size() + 1, ". ", reached, ", so ", reached,
                                              "\nThus ", reached, ".");
  for (const std::string& proof : {canonical, extra_step, std::string("garbage"), std::string()}) {
    const ChainVerdict verdict = CheckChainProof(problem->statement, proof);
    const ChainWarmupExample ex = MakeChainVerifierExample(*templates_, *problem, proof);
    EXPECT_EQ(ex.role, PromptRole::kVerifier);
    EXPECT_EQ(ex.proof, proof);
    EXPECT_EQ(ex.proof_score, verdict.score) << proof;
    EXPECT_EQ(ex.prompt, templates_->verifier.Render(PromptFields{problem->statement.Text(), proof, ""}));
    const v1::Score score = ParseScore(ex.completion, templates_->verifier.markers());
    ASSERT_EQ(score.format(), v1::FORMAT_STATUS_OK) << ex.completion;
    EXPECT_EQ(score.value(), verdict.score) << ex.completion;
    if (verdict.score < 1) {
      EXPECT_NE(ex.completion.find(verdict.first_fault()->reason), std::string::npos) << ex.completion;
    }
  }
  EXPECT_LT(CheckChainProof(problem->statement, extra_step).score, 1.0) << extra_step;
  // The made-up flaws' verifier examples are the same function of their proof.
  const ChainWarmupExample made_up = MakeChainWarmupExample(*templates_, PromptRole::kVerifier, *problem, 0.3, 5);
  EXPECT_EQ(MakeChainVerifierExample(*templates_, *problem, made_up.proof).completion, made_up.completion);
}

// Any proof (an own proof read back, a scrambled one) becomes a meta-verifier example: a labelled
// analysis of that proof, every kind turning up, and the expert meta-score as the target; the
// made-up proofs' meta-verifier examples are the same function of their proof.
TEST_F(ChainWarmupExamples, AnyProofBecomesAMetaVerifierExampleWithTheExpertMetaScore) {
  auto problem = GenerateChainProblem({}, ChainSplit::kTrain, 3);
  ASSERT_TRUE(problem.ok());
  std::map<double, int> meta_labels;
  std::map<bool, int> flawed;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const ChainProof proof = ScrambledChainProof(*problem, seed);
    const ChainWarmupExample ex = MakeChainMetaVerifierExample(*templates_, *problem, proof, seed);
    EXPECT_EQ(ex.role, PromptRole::kMetaVerifier);
    EXPECT_EQ(ex.proof, proof.Text());
    const ChainVerdict verdict = CheckChainProof(problem->statement, ex.proof);
    EXPECT_EQ(ex.proof_score, verdict.score);
    EXPECT_EQ(ex.prompt, templates_->meta_verifier.Render(PromptFields{problem->statement.Text(), ex.proof, ex.analysis}));
    const ChainAnalysisAssessment assessment = AssessChainAnalysis(verdict, ex.analysis);
    EXPECT_EQ(ex.meta_score, assessment.meta_score) << ex.analysis;
    // It opens with the true citations of the lines the analysis names, then the reason.
    EXPECT_NE(ex.completion.find(absl::StrCat(":\n", ChainMetaCheckNote(verdict, assessment.claims.lines), "\n",
                                              assessment.reason, "\n")),
              std::string::npos)
        << ex.completion;
    const v1::Score score = ParseScore(ex.completion, templates_->meta_verifier.markers());
    ASSERT_EQ(score.format(), v1::FORMAT_STATUS_OK) << ex.completion;
    EXPECT_EQ(score.value(), ex.meta_score) << ex.completion;
    ++meta_labels[ex.meta_score];
    ++flawed[verdict.score < 1];
  }
  EXPECT_EQ(meta_labels.size(), 3u);
  EXPECT_GT(flawed[true], 120);  // 148 of 200: each citation scrambled with probability 1/2
  const ChainWarmupExample made_up = MakeChainWarmupExample(*templates_, PromptRole::kMetaVerifier, *problem, 0.3, 5);
  const std::optional<ChainProof> read_back = ParseChainProof(made_up.proof);
  ASSERT_TRUE(read_back.has_value());
  const ChainWarmupExample again = MakeChainMetaVerifierExample(*templates_, *problem, *read_back, 5);
  EXPECT_EQ(again.prompt, made_up.prompt);
  EXPECT_EQ(again.completion, made_up.completion);
}

TEST_F(ChainWarmupExamples, AnAnalysisSomeoneWroteBecomesAMetaVerifierExampleGradedByTheChecker) {
  auto problem = GenerateChainProblem({}, ChainSplit::kTrain, 3);
  ASSERT_TRUE(problem.ok());
  // A faulty proof (a scrambled citation) and, as the verifier might write them: its faithful
  // analysis; one with the right score naming a step that is not faulty (the commonest
  // hallucination of the model's own analyses); one with no score at all.
  ChainProof scrambled;
  ChainVerdict verdict;
  for (uint64_t seed = 0;; ++seed) {
    scrambled = ScrambledChainProof(*problem, seed);
    verdict = CheckChainProof(problem->statement, scrambled.Text());
    if (verdict.score == 0 && verdict.faults.size() == 1) break;
  }
  const std::string proof = scrambled.Text();
  const ChainAnalysisMarkers markers{templates_->verifier.markers().evaluation, templates_->verifier.markers().score};
  const std::string faithful = RenderFaithfulChainAnalysis(verdict, markers);
  const int faulty_line = verdict.faults.front().line;
  const int sound_line = faulty_line == 1 ? 2 : 1;
  ASSERT_NE(faithful.find(verdict.faults.front().reason), std::string::npos) << faithful;
  const std::string wrong_step =
      absl::StrReplaceAll(faithful, {{verdict.faults.front().reason, absl::StrCat("Step ", sound_line, " is faulty.")}});

  const std::optional<ChainWarmupExample> right = MakeChainMetaVerifierExampleOn(*templates_, *problem, proof, faithful);
  ASSERT_TRUE(right.has_value());
  EXPECT_EQ(right->role, PromptRole::kMetaVerifier);
  EXPECT_EQ(right->prompt, templates_->meta_verifier.Render(PromptFields{problem->statement.Text(), proof, faithful}));
  EXPECT_EQ(right->meta_score, 1);
  EXPECT_EQ(right->assessment.real_lines, std::vector<int>{faulty_line});
  v1::Score score = ParseScore(right->completion, templates_->meta_verifier.markers());
  ASSERT_EQ(score.format(), v1::FORMAT_STATUS_OK) << right->completion;
  EXPECT_EQ(score.value(), 1);

  const std::optional<ChainWarmupExample> wrong = MakeChainMetaVerifierExampleOn(*templates_, *problem, proof, wrong_step);
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->meta_score, 0) << wrong->completion;
  EXPECT_TRUE(wrong->assessment.hallucinated);
  EXPECT_EQ(wrong->assessment.bogus_lines, std::vector<int>{sound_line});
  // Its target checks the named step's true citation, then says why it pays nothing.
  EXPECT_NE(wrong->completion.find(ChainMetaCheckNote(verdict, {sound_line})), std::string::npos) << wrong->completion;
  score = ParseScore(wrong->completion, templates_->meta_verifier.markers());
  ASSERT_EQ(score.format(), v1::FORMAT_STATUS_OK) << wrong->completion;
  EXPECT_EQ(score.value(), 0);

  EXPECT_FALSE(MakeChainMetaVerifierExampleOn(*templates_, *problem, proof, "Step 1 is faulty.").has_value());
}

// The imitated writer's flaw: the generator's target is the canonical proof with that flaw put
// in, and its self-evaluation is the checker's faithful verdict on it (not the canonical 1).
TEST_F(ChainWarmupExamples, AGeneratorExampleWithAFlawSelfEvaluatesItFaithfully) {
  for (const ChainFlaw flaw : AllChainFlaws()) {
    for (uint64_t seed = 0; seed < 20; ++seed) {
      auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
      ASSERT_TRUE(problem.ok());
      const ChainWarmupExample gen = MakeChainGeneratorExample(*templates_, *problem, flaw, seed);
      EXPECT_EQ(gen.prompt, templates_->generator.Render(PromptFields{problem->statement.Text(), "", ""}));
      const GeneratorOutput out = SplitGeneratorOutput(gen.completion, templates_->generator.markers());
      ASSERT_EQ(out.self_score.format(), v1::FORMAT_STATUS_OK) << gen.completion;
      const LabelledChainProof expected = MakeLabelledChainProof(*problem, flaw, seed);
      EXPECT_EQ(out.proof, expected.text) << ChainFlawName(flaw);
      EXPECT_EQ(CheckChainProof(problem->statement, out.proof).score, expected.score) << ChainFlawName(flaw);
      EXPECT_EQ(out.self_score.value(), expected.score) << gen.completion;
      EXPECT_EQ(gen.proof_score, expected.score);
    }
  }
  auto problem = GenerateChainProblem({}, ChainSplit::kTrain, 3);
  ASSERT_TRUE(problem.ok());
  const ChainWarmupExample missing = MakeChainGeneratorExample(*templates_, *problem, ChainFlaw::kMissingFinalLine, 3);
  EXPECT_FALSE(absl::StrContains(missing.completion, "Thus")) << missing.completion;
  EXPECT_EQ(missing.proof_score, 0.5);
  // kNone is MakeChainWarmupExample's generator example.
  EXPECT_EQ(MakeChainGeneratorExample(*templates_, *problem, ChainFlaw::kNone, 3).completion,
            MakeChainWarmupExample(*templates_, PromptRole::kGenerator, *problem, 0.3, 3).completion);
}

TEST_F(ChainWarmupExamples, AnOverconfidentWriterSeesNothingWrongInItsFlawedProof) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
    ASSERT_TRUE(problem.ok());
    const ChainWarmupExample honest =
        MakeChainGeneratorExample(*templates_, *problem, ChainFlaw::kMissingFinalLine, seed);
    const ChainWarmupExample proud =
        MakeChainGeneratorExample(*templates_, *problem, ChainFlaw::kMissingFinalLine, seed, /*overclaims=*/true);
    const GeneratorOutput h = SplitGeneratorOutput(honest.completion, templates_->generator.markers());
    const GeneratorOutput p = SplitGeneratorOutput(proud.completion, templates_->generator.markers());
    // The same proof (score 0.5), self-scored 1 with no issue named, its citation note the same.
    EXPECT_EQ(p.proof, h.proof);
    EXPECT_EQ(proud.proof_score, 0.5);
    ASSERT_EQ(p.self_score.format(), v1::FORMAT_STATUS_OK) << proud.completion;
    EXPECT_EQ(p.self_score.value(), 1.0) << proud.completion;
    EXPECT_EQ(h.self_score.value(), 0.5) << honest.completion;
    EXPECT_TRUE(absl::StrContains(p.self_analysis, kChainNoIssue)) << proud.completion;
    auto note = [](const std::string& analysis) {
      for (absl::string_view line : absl::StrSplit(analysis, '\n')) {
        if (absl::StartsWith(line, kChainCitedPrefix)) return std::string(line);
      }
      return std::string("no note");
    };
    EXPECT_EQ(note(p.self_analysis), note(h.self_analysis));
    EXPECT_NE(note(p.self_analysis), "no note");
    // It is the missed-issue analysis the meta-verifier learns to grade, in the generator's markers.
    const ChainVerdict verdict = CheckChainProof(problem->statement, h.proof);
    ChainAnalysisMarkers markers;
    markers.evaluation = templates_->generator.markers().evaluation;
    markers.score = templates_->generator.markers().score;
    EXPECT_EQ(p.self_analysis, RenderOverlookingChainAnalysis(verdict, markers));
  }
}

TEST_F(ChainWarmupExamples, SameSeedSameExample) {
  auto problem = GenerateChainProblem({}, ChainSplit::kTrain, 7);
  ASSERT_TRUE(problem.ok());
  const ChainWarmupExample a = MakeChainWarmupExample(*templates_, PromptRole::kMetaVerifier, *problem, 0.3, 11);
  const ChainWarmupExample b = MakeChainWarmupExample(*templates_, PromptRole::kMetaVerifier, *problem, 0.3, 11);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.completion, b.completion);
}

TEST(ScrambledChainProof, AboutHalfTheCitationsAreFaultyHalfOfThemNotGiven) {
  int citations = 0, reversed = 0, not_given = 0, leading_on = 0, gaps = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
    ASSERT_TRUE(problem.ok());
    const ChainStatement& statement = problem->statement;
    const ChainProof canonical = CanonicalChainProof(*problem);
    const ChainProof scrambled = ScrambledChainProof(*problem, seed);
    EXPECT_EQ(scrambled.Text(), ScrambledChainProof(*problem, seed).Text());
    ASSERT_EQ(scrambled.steps.size(), canonical.steps.size());
    // Without leading_on no citation leads on: the conclusions are the canonical proof's.
    const ChainProof kept = ScrambledChainProof(*problem, seed, /*leading_on=*/false);
    for (size_t i = 0; i < kept.steps.size(); ++i) EXPECT_EQ(kept.steps[i].conclusion, canonical.steps[i].conclusion);
    EXPECT_EQ(scrambled.final_claim, canonical.final_claim);
    // The checker's citation note marks each one as it is, from where the conclusions lead.
    const ChainVerdict verdict = CheckChainProof(statement, scrambled.Text());
    ASSERT_EQ(verdict.citations.size(), scrambled.steps.size());
    for (size_t i = 0; i < scrambled.steps.size(); ++i) {
      const ChainStep& step = scrambled.steps[i];
      const ChainCitation& noted = verdict.citations[i];
      EXPECT_EQ(noted.reached, i == 0 ? statement.goal.lhs : scrambled.steps[i - 1].conclusion.rhs);
      EXPECT_EQ(noted.status == ChainCitationStatus::kGiven, statement.IsGiven(step.cited));
      ++citations;
      if (step.cited == canonical.steps[i].cited) {
        EXPECT_EQ(step.conclusion, canonical.steps[i].conclusion);
      } else if (statement.IsGiven(step.cited)) {
        ++gaps;
        EXPECT_FALSE(noted.links) << step.cited.Text();
        EXPECT_EQ(step.conclusion, canonical.steps[i].conclusion);
      } else if (statement.IsGiven(step.cited.Reversed())) {
        ++reversed;
        EXPECT_EQ(step.cited, canonical.steps[i].cited.Reversed());
        EXPECT_EQ(step.conclusion, canonical.steps[i].conclusion);
      } else {
        ++not_given;
        EXPECT_NE(step.cited.lhs, step.cited.rhs);
        if (step.conclusion != canonical.steps[i].conclusion) {
          // Leading on: it links where the chain is, and the conclusion follows from it.
          ++leading_on;
          EXPECT_TRUE(noted.links) << step.cited.Text();
          EXPECT_EQ(step.conclusion, (ChainFact{statement.goal.lhs, step.cited.Across(noted.reached)}));
          // Never back to where the chain began: "so a=a" states nothing a look-up must catch.
          EXPECT_NE(step.conclusion.lhs, step.conclusion.rhs) << scrambled.Text();
        }
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(reversed + not_given + gaps) / citations, 0.5, 0.06);
  EXPECT_NEAR(static_cast<double>(not_given) / citations, 0.25, 0.05);
  EXPECT_NEAR(static_cast<double>(leading_on) / not_given, 0.5, 0.1);
  EXPECT_GT(reversed, citations / 12);
  EXPECT_GT(gaps, citations / 12);
}

// A drill step's example ends after its citation note (verifier `Cited:`, meta-verifier `Checked:`).
TEST_F(ChainWarmupExamples, ACompletionThroughItsNoteEndsAfterTheNoteLine) {
  std::string verifier, meta;
  ASSERT_NO_FATAL_FAILURE(DrillCompletions(&verifier, &meta));
  for (const std::string& whole : {verifier, meta}) {
    const std::string note = ChainCompletionThroughNote(whole);
    ASSERT_LT(note.size(), whole.size()) << whole;
    EXPECT_EQ(whole.substr(0, note.size()), note);
    ASSERT_EQ(note.back(), '\n');
    const std::string last = note.substr(note.rfind('\n', note.size() - 2) + 1);
    EXPECT_TRUE(absl::StartsWith(last, "Cited: ") || absl::StartsWith(last, "Checked: ")) << last;
  }
  EXPECT_NE(ChainCompletionThroughNote(verifier).find("Cited: "), std::string::npos);
  EXPECT_NE(ChainCompletionThroughNote(meta).find("Checked: "), std::string::npos);
  EXPECT_EQ(ChainCompletionThroughNote("no note here\n\\boxed{1}"), "no note here\n\\boxed{1}");
}

// One line past the note: the verifier's issue line ("Step 2 cites ..."), the meta-verifier's
// judgement of the line the analysis names; past the end, the whole completion.
TEST_F(ChainWarmupExamples, ACompletionThroughTheLineAfterItsNoteEndsWithTheIssue) {
  std::string verifier, meta;
  ASSERT_NO_FATAL_FAILURE(DrillCompletions(&verifier, &meta));
  for (const std::string& whole : {verifier, meta}) {
    const std::string note = ChainCompletionThroughNote(whole);
    const std::string issue = ChainCompletionThroughNote(whole, 1);
    ASSERT_GT(issue.size(), note.size()) << whole;
    ASSERT_LT(issue.size(), whole.size()) << whole;
    EXPECT_EQ(issue.substr(0, note.size()), note);
    EXPECT_EQ(issue.back(), '\n');
    EXPECT_EQ(issue.find('\n', note.size()), issue.size() - 1);  // exactly one more line
    EXPECT_EQ(ChainCompletionThroughNote(whole, 100), whole);
  }
  EXPECT_NE(ChainCompletionThroughNote(verifier, 1).find("Step "), std::string::npos) << verifier;
}

TEST(ChainWarmupTemplatesLoad, NamesTheMissingFile) {
  auto loaded = ChainWarmupTemplates::Load("/nonexistent-dsm-prompts");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(std::string(loaded.status().message()).find("generator.txt"), std::string::npos)
      << loaded.status();
}

}  // namespace
}  // namespace dsm
