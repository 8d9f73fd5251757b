// Prompt templates (services/scoring/prompt_template.h): header and
// placeholder errors, brace-safe rendering, the shipped configs/prompts files.
#include "services/scoring/prompt_template.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsm {
namespace {

using ::testing::HasSubstr;

const char kHeader[] =
    "# a comment\n"
    "role: verifier\n"
    "evaluation_marker: Here is my evaluation of the solution:\n"
    "score_marker: Based on my evaluation, the final overall score should be:\n"
    "---\n";

std::string Error(const std::string& text) {
  absl::StatusOr<PromptTemplate> t = PromptTemplate::Parse(text, "t.txt");
  return t.ok() ? "OK" : std::string(t.status().message());
}

TEST(PromptTemplate, ParsesHeaderAndBody) {
  auto t = PromptTemplate::Parse(std::string(kHeader) + "P: {problem}\nY: {proof}\n", "t.txt");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->role(), PromptRole::kVerifier);
  EXPECT_EQ(t->markers().evaluation, "Here is my evaluation of the solution:");
  EXPECT_EQ(t->markers().score, "Based on my evaluation, the final overall score should be:");
  EXPECT_EQ(t->Render({"x", "y", "unused"}), "P: x\nY: y");  // the file's final newline is dropped
}

TEST(PromptTemplate, StopStringsEndTheOutputAndStayInIt) {
  auto none = PromptTemplate::Parse(std::string(kHeader) + "{problem} {proof}", "t.txt");
  ASSERT_TRUE(none.ok()) << none.status();
  v1::SamplingParams params;
  params.add_stop("END");
  none->AddStopsTo(&params);  // no stop lines: the caller's params unchanged
  EXPECT_THAT(params.stop(), ::testing::ElementsAre("END"));
  EXPECT_FALSE(params.include_stop_str_in_output());

  auto t = PromptTemplate::Parse(
      "role: verifier\nstop: \\boxed{0}\nevaluation_marker: a\nstop: \\boxed{1}\nscore_marker: b\n"
      "stop:   END  \n---\n{problem} {proof}",
      "t.txt");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->stop(), ::testing::ElementsAre("\\boxed{0}", "\\boxed{1}", "END"));
  t->AddStopsTo(&params);  // appended once each, and kept in the output
  EXPECT_THAT(params.stop(), ::testing::ElementsAre("END", "\\boxed{0}", "\\boxed{1}"));
  EXPECT_TRUE(params.include_stop_str_in_output());
}

TEST(PromptTemplate, RenderingNeverInterpretsSubstitutedBraces) {
  auto t = PromptTemplate::Parse(std::string(kHeader) +
                                     "Score in \\boxed{...}, e.g. \\boxed{\\frac{1}{2}} {0, 0.5, 1} "
                                     "{{proof}} {problem} / {proof} / {problem}",
                                 "t.txt");
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string problem = "Show $\\{x\\} = {proof}$ for {problem}.";
  const std::string proof = "Let $f(x)=\\frac{1}{x}$; {{analysis}} {";
  EXPECT_EQ(t->Render({problem, proof, ""}),
            "Score in \\boxed{...}, e.g. \\boxed{\\frac{1}{2}} {0, 0.5, 1} {proof} " + problem + " / " + proof +
                " / " + problem);
}

TEST(PromptTemplate, LoadErrorsNameTheFileAndWhatIsWrong) {
  const std::string h(kHeader);
  EXPECT_EQ(Error(h + "{problem}"), "t.txt: missing placeholder {proof} (required for role verifier)");
  EXPECT_EQ(Error(h + "{problem} {proof}\n\n{analysis}"),
            "t.txt: line 8: unknown placeholder {analysis} for role verifier (allowed: {problem}, {proof})");
  EXPECT_EQ(Error(h + "{Problem} {problem} {proof}"),
            "t.txt: line 6: unknown placeholder {Problem} for role verifier (allowed: {problem}, {proof})");
  EXPECT_EQ(Error("role: verifier\n{problem} {proof}\n"),
            "t.txt: line 2: expected \"key: value\" or \"---\" in the header, got \"{problem} {proof}\"");
  EXPECT_EQ(Error("role: verifier\nevaluation_marker: a\nscore_marker: b\n"),
            "t.txt: no \"---\" line ends the header");
  EXPECT_EQ(Error("role: verifier\nevaluation_marker: a\n---\n{problem}{proof}"),
            "t.txt: missing header key \"score_marker\"");
  EXPECT_EQ(Error("role: verifier\nrole: verifier\n---\n"), "t.txt: line 2: header key \"role\" repeated");
  EXPECT_EQ(Error("role: verifier\nscore_marker:\n---\n"), "t.txt: line 2: header key \"score_marker\" is empty");
  EXPECT_EQ(Error("role: grader\nevaluation_marker: a\nscore_marker: b\n---\n"),
            "t.txt: role: \"grader\" is not one of generator, verifier, meta_verifier, refiner");
  EXPECT_EQ(Error("rol: verifier\n---\n"),
            "t.txt: line 1: unknown header key \"rol\" (allowed: role, evaluation_marker, score_marker, stop)");
  EXPECT_EQ(Error("role: verifier\nstop: \\boxed{1}\nstop: \\boxed{1}\n---\n"),
            "t.txt: line 3: stop \"\\boxed{1}\" repeated");
  EXPECT_EQ(Error("role: verifier\nstop:  \n---\n"), "t.txt: line 2: header key \"stop\" is empty");
  EXPECT_EQ(Error("role: generator\nevaluation_marker: a\nscore_marker: b\n---\n{problem} {proof}"),
            "t.txt: line 5: unknown placeholder {proof} for role generator (allowed: {problem})");
  EXPECT_EQ(Error("role: meta_verifier\nevaluation_marker: a\nscore_marker: b\n---\n{problem} {proof}"),
            "t.txt: missing placeholder {analysis} (required for role meta_verifier)");
}

TEST(PromptTemplate, LoadRoleChecksTheFileAndTheRole) {
  const std::string dir = ::testing::TempDir() + "/prompt_template_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/verifier.txt") << "role: generator\nevaluation_marker: a\nscore_marker: b\n---\n{problem}\n";
  auto wrong = PromptTemplate::LoadRole(dir, PromptRole::kVerifier);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(std::string(wrong.status().message()),
            dir + "/verifier.txt: role: \"generator\" but this file must be the verifier template");
  auto missing = PromptTemplate::LoadRole(dir, PromptRole::kMetaVerifier);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(std::string(missing.status().message()), dir + "/meta_verifier.txt: cannot open prompt template");
}

std::string PromptsDir() {
  const char* source = std::getenv("DSM_SOURCE_DIR");
  return std::string(source != nullptr ? source : ".") + "/configs/prompts";
}

TEST(PromptTemplate, ShippedTemplatesLoadWithTheReleasedModelsMarkers) {
  auto verifier = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kVerifier);
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  EXPECT_EQ(verifier->markers().evaluation, VerifierMarkers().evaluation);
  EXPECT_EQ(verifier->markers().score, VerifierMarkers().score);
  auto meta = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kMetaVerifier);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->markers().evaluation, MetaVerifierMarkers().evaluation);
  EXPECT_EQ(meta->markers().score, MetaVerifierMarkers().score);
  auto generator = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kGenerator);
  ASSERT_TRUE(generator.ok()) << generator.status();
  EXPECT_EQ(generator->markers().evaluation, VerifierMarkers().evaluation);
  EXPECT_EQ(generator->markers().score, VerifierMarkers().score);

  // The rendered verifier prompt ends with the task input, and the example
  // answer it shows parses with its own markers.
  const std::string prompt = verifier->Render({"PROBLEM", "PROOF", ""});
  EXPECT_THAT(prompt, ::testing::EndsWith("## Problem\nPROBLEM\n\n## Solution\nPROOF"));
  EXPECT_THAT(prompt, HasSubstr(VerifierMarkers().score + "\n\\boxed{...}"));
  EXPECT_THAT(meta->Render({"P", "Y", "ANALYSIS"}), ::testing::EndsWith("## Solution Evaluation\nANALYSIS"));
  EXPECT_THAT(generator->Render({"P", "", ""}), ::testing::EndsWith("## Problem\nP"));
}

TEST(PromptTemplate, TheRefinerGetsTheProblemThePreviousProofAndItsSelfEvaluation) {
  const std::string header =
      "role: refiner\nevaluation_marker: Here is my evaluation of the solution:\n"
      "score_marker: Based on my evaluation, the final overall score should be:\n---\n";
  EXPECT_EQ(Error(header + "{problem} {proof}"), "t.txt: missing placeholder {analysis} (required for role refiner)");
  // Both shipped refiners (full and tiny) load, answer in the generator's markers and end with
  // the previous self-evaluation.
  for (const std::string& dir : {PromptsDir(), PromptsDir() + "/tiny"}) {
    auto refiner = PromptTemplate::LoadRole(dir, PromptRole::kRefiner);
    ASSERT_TRUE(refiner.ok()) << refiner.status();
    EXPECT_EQ(refiner->markers().evaluation, VerifierMarkers().evaluation);
    EXPECT_EQ(refiner->markers().score, VerifierMarkers().score);
    const std::string prompt = refiner->Render({"PROBLEM", "OLD PROOF", "OLD ANALYSIS"});
    EXPECT_THAT(prompt, HasSubstr("PROBLEM"));
    EXPECT_THAT(prompt, HasSubstr("OLD PROOF"));
    EXPECT_THAT(prompt, ::testing::EndsWith("OLD ANALYSIS"));
  }
}

TEST(PromptTemplate, TheTinyGeneratorEndsAtItsSelfScore) {
  // Each of the three scores ends the tiny generator's and refiner's answer (phase 4 would
  // otherwise teach the generator to write on past a self-score of 0); the full templates,
  // whose proofs may box an answer, end at EOS.
  for (PromptRole role : {PromptRole::kGenerator, PromptRole::kRefiner}) {
    auto tiny = PromptTemplate::LoadRole(PromptsDir() + "/tiny", role);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    EXPECT_THAT(tiny->stop(), ::testing::UnorderedElementsAre("\\boxed{0}", "\\boxed{0.5}", "\\boxed{1}"));
    auto full = PromptTemplate::LoadRole(PromptsDir(), role);
    ASSERT_TRUE(full.ok()) << full.status();
    EXPECT_THAT(full->stop(), ::testing::IsEmpty());
  }
}

}  // namespace
}  // namespace dsm
