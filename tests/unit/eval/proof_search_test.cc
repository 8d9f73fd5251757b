// Test-time scaling over a scripted backend: refinement stops on a self-score of 1 or at the
// limit and feeds the previous proof and self-evaluation back; best-of-n keeps the best mean
// verification score (ties: self-score, then order); EvaluateProofs grades and summarises.
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/eval/proof_eval.h"
#include "services/eval/proof_search.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

constexpr char kEval[] = "Here is my evaluation of the solution:";
constexpr char kScore[] = "Based on my evaluation, the final overall score should be:";

PromptTemplate Template(const std::string& role, const std::string& body, const std::string& header = "") {
  auto t = PromptTemplate::Parse(std::string("role: ") + role + "\nevaluation_marker: " + kEval +
                                     "\nscore_marker: " + kScore + "\n" + header + "---\n" + body,
                                 role + ".txt");
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

PromptTemplate Generator() { return Template("generator", "PROVE {problem}"); }
PromptTemplate Refiner() { return Template("refiner", "REFINE {problem} | {proof} | {analysis}"); }

// A generator answer with a proof and a self-score ("" = no self-evaluation).
std::string Answer(const std::string& proof, const std::string& self_score) {
  std::string text = "## Solution\n" + proof + "\n";
  if (!self_score.empty()) {
    text += "## Self Evaluation\n" + std::string(kEval) + " ok\n" + kScore + " \\boxed{" + self_score + "}";
  }
  return text;
}

ProofAttempt Split(const std::string& text) {
  return SplitGeneratorOutput(text, OutputMarkers{kEval, kScore}, v1::FINISH_REASON_STOP_TOKEN);
}

// Answers scripted per prompt (in order of calls), verification scores per proof.
class ScriptedBackend : public ProofBackend {
 public:
  std::map<std::string, std::vector<std::string>> answers;  // prompt -> answers, consumed in order
  std::map<std::string, std::vector<std::string>> verdicts;  // proof -> boxed scores ("x" = malformed)
  std::vector<std::string> prompts;
  std::vector<std::vector<std::string>> stops;  // each Generate call's stop strings
  absl::Status fail_verify = absl::OkStatus();

  absl::StatusOr<std::vector<ProofAttempt>> Generate(const std::string& prompt, uint32_t n,
                                                     const v1::SamplingParams& params) override {
    std::lock_guard<std::mutex> lock(mu_);
    prompts.push_back(prompt);
    stops.emplace_back(params.stop().begin(), params.stop().end());
    std::vector<std::string>& queue = answers[prompt];
    if (queue.size() < n) return absl::InternalError("unscripted prompt: " + prompt);
    std::vector<ProofAttempt> out;
    for (uint32_t i = 0; i < n; ++i) out.push_back(Split(queue[i]));
    queue.erase(queue.begin(), queue.begin() + n);
    return out;
  }
  absl::StatusOr<v1::VerifyResponse> Verify(const std::string&, const std::string& proof, uint32_t n,
                                            const v1::SamplingParams&) override {
    if (!fail_verify.ok()) return fail_verify;
    std::lock_guard<std::mutex> lock(mu_);
    v1::VerifyResponse r;
    const std::vector<std::string>& scores = verdicts.at(proof);
    for (uint32_t i = 0; i < n; ++i) {
      v1::Analysis* a = r.add_analyses();
      const std::string& s = scores[i % scores.size()];
      if (s == "x") {
        a->mutable_score()->set_format(v1::FORMAT_STATUS_NO_BOXED_SCORE);
      } else {
        a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
        a->mutable_score()->set_value(std::stod(s));
      }
    }
    return r;
  }

 private:
  std::mutex mu_;
};

TEST(RefineProof, StopsOnceTheProofGivesItselfOneAndFeedsTheLastAttemptBack) {
  ScriptedBackend b;
  b.answers["PROVE P"] = {Answer("step A", "0")};
  const std::string first_analysis = Split(Answer("step A", "0")).self_analysis;
  b.answers["REFINE P | step A | " + first_analysis] = {Answer("step B", "1")};
  auto attempts = RefineProof(b, Generator(), Refiner(), "P", RefineOptions{4, {}});
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].proof, "step A");
  EXPECT_EQ((*attempts)[1].proof, "step B");
  EXPECT_EQ(b.prompts.size(), 2u);
}

TEST(ProofSearch, EachPromptEndsAtItsTemplatesStopStrings) {
  ScriptedBackend b;
  b.answers["PROVE P"] = {Answer("a", "0"), Answer("b", "1")};
  b.answers["REFINE P | a | " + Split(Answer("a", "0")).self_analysis] = {Answer("c", "1")};
  b.verdicts["b"] = {"1"};
  const PromptTemplate generator = Template("generator", "PROVE {problem}", "stop: G\n");
  const PromptTemplate refiner = Template("refiner", "REFINE {problem} | {proof} | {analysis}", "stop: R\n");
  v1::SamplingParams params;
  params.add_stop("USER");  // the caller's own stop strings stay
  ASSERT_TRUE(RefineProof(b, generator, refiner, "P", RefineOptions{4, params}).ok());
  BestOfNOptions best;
  best.n = 1;
  best.verifications = 1;
  best.params = params;
  ASSERT_TRUE(SelectBestOfN(b, generator, "P", best).ok());
  EXPECT_EQ(b.stops, (std::vector<std::vector<std::string>>{{"USER", "G"}, {"USER", "R"}, {"USER", "G"}}));
}

TEST(RefineProof, GoesOnToTheLimitWhileTheSelfScoreStaysBelowOneOrIsMalformed) {
  ScriptedBackend b;
  b.answers["PROVE P"] = {Answer("a", "0.5")};
  b.answers["REFINE P | a | " + Split(Answer("a", "0.5")).self_analysis] = {Answer("b", "")};
  b.answers["REFINE P | b | "] = {Answer("c", "0")};
  auto attempts = RefineProof(b, Generator(), Refiner(), "P", RefineOptions{3, {}});
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 3u);
  EXPECT_EQ(attempts->back().proof, "c");
  // max_iterations 1: the first proof only, whatever its self-score.
  b.answers["PROVE P"] = {Answer("a", "0")};
  attempts = RefineProof(b, Generator(), Refiner(), "P", RefineOptions{1, {}});
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  EXPECT_EQ(attempts->size(), 1u);
}

// Refuses every prompt that holds "long" as INVALID_ARGUMENT (as a too-long prompt is).
class RefusingBackend : public ScriptedBackend {
 public:
  absl::StatusOr<std::vector<ProofAttempt>> Generate(const std::string& prompt, uint32_t n,
                                                     const v1::SamplingParams& params) override {
    if (prompt.find("long") != std::string::npos) return absl::InvalidArgumentError("prompt: too many tokens");
    return ScriptedBackend::Generate(prompt, n, params);
  }
};

TEST(RefineProof, ARefusedRefinementPromptEndsTheRefinementButARefusedFirstPromptFails) {
  RefusingBackend b;
  b.answers["PROVE P"] = {Answer("a long proof", "0")};
  auto attempts = RefineProof(b, Generator(), Refiner(), "P", RefineOptions{4, {}});
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->front().proof, "a long proof");
  EXPECT_EQ(RefineProof(b, Generator(), Refiner(), "long P", RefineOptions{4, {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RefineProof, BadOptionsAndTemplatesAreInvalidArgument) {
  ScriptedBackend b;
  EXPECT_EQ(RefineProof(b, Generator(), Refiner(), "P", RefineOptions{0, {}}).status().message(),
            "max_iterations: 0 is not in [1, 64]");
  EXPECT_EQ(RefineProof(b, Generator(), Generator(), "P", RefineOptions{2, {}}).status().message(),
            "generator.txt: not a refiner template");
  EXPECT_TRUE(b.prompts.empty());
  // A backend failure is the caller's error, not a partial result.
  EXPECT_EQ(RefineProof(b, Generator(), Refiner(), "P", RefineOptions{2, {}}).status().code(),
            absl::StatusCode::kInternal);
}

TEST(SelectBestOfN, KeepsTheBestMeanVerificationScore) {
  ScriptedBackend b;
  b.answers["PROVE P"] = {Answer("p0", "1"), Answer("p1", "0"), Answer("p2", "1"), Answer("", "1")};
  b.verdicts["p0"] = {"0", "1"};    // 0.5
  b.verdicts["p1"] = {"1", "1"};    // 1
  b.verdicts["p2"] = {"1", "0.5"};  // 0.75
  auto best = SelectBestOfN(b, Generator(), "P", BestOfNOptions{4, 2, {}, {}});
  ASSERT_TRUE(best.ok()) << best.status();
  ASSERT_EQ(best->candidates.size(), 4u);
  EXPECT_EQ(best->chosen, 1);
  EXPECT_DOUBLE_EQ(best->candidates[0].verification_score, 0.5);
  EXPECT_DOUBLE_EQ(best->candidates[2].verification_score, 0.75);
  EXPECT_EQ(best->candidates[3].valid_verifications, 0u);  // no proof: never verified
}

TEST(SelectBestOfN, TiesGoToTheHigherSelfScoreThenTheEarlierProof) {
  ScriptedBackend b;
  b.answers["PROVE P"] = {Answer("p0", "0.5"), Answer("p1", "1"), Answer("p2", "1")};
  b.verdicts["p0"] = {"1"};
  b.verdicts["p1"] = {"1"};
  b.verdicts["p2"] = {"1"};
  auto best = SelectBestOfN(b, Generator(), "P", BestOfNOptions{3, 1, {}, {}});
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->chosen, 1);
}

TEST(SelectBestOfN, AProofWithNoValidVerificationLosesToAVerifiedZero) {
  ScriptedBackend b;
  b.answers["PROVE P"] = {Answer("p0", "1"), Answer("p1", "0")};
  b.verdicts["p0"] = {"x"};
  b.verdicts["p1"] = {"0", "x"};
  auto best = SelectBestOfN(b, Generator(), "P", BestOfNOptions{2, 2, {}, {}});
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->chosen, 1);
  EXPECT_EQ(best->candidates[1].valid_verifications, 1u);
}

TEST(SelectBestOfN, ErrorsAreReturned) {
  ScriptedBackend b;
  EXPECT_EQ(SelectBestOfN(b, Generator(), "P", BestOfNOptions{0, 1, {}, {}}).status().message(),
            "n: 0 is not in [1, 1024]");
  EXPECT_EQ(SelectBestOfN(b, Generator(), "P", BestOfNOptions{1, 0, {}, {}}).status().message(),
            "verifications: 0 is not in [1, 1024]");
  b.answers["PROVE P"] = {Answer("p0", "1")};
  b.fail_verify = absl::UnavailableError("verifier down");
  EXPECT_EQ(SelectBestOfN(b, Generator(), "P", BestOfNOptions{1, 1, {}, {}}).status().message(), "verifier down");
}

// True score: 1 for a proof that contains "good", 0.5 for "half", else 0.
class FakeGrader : public Grader {
 public:
  absl::StatusOr<GradedProof> GradeProof(const std::string&, const std::string& proof) const override {
    GradedProof g;
    g.score = proof.find("good") != std::string::npos ? 1.0 : proof.find("half") != std::string::npos ? 0.5 : 0.0;
    return g;
  }
  absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string&, const std::string&,
                                               const std::string&) const override {
    return GradedAnalysis{};
  }
};

TEST(EvaluateProofs, GradesEveryAttemptAndCandidateAndSummarises) {
  ScriptedBackend b;
  // Problem A: refined from a wrong proof to a good one in 2 attempts; problem B: one attempt.
  b.answers["PROVE A"] = {Answer("bad", "0"), Answer("good a", "1"), Answer("half a", "0.5")};
  b.answers["REFINE A | bad | " + Split(Answer("bad", "0")).self_analysis] = {Answer("good", "1")};
  b.answers["PROVE B"] = {Answer("half", "1"), Answer("bad b", "1"), Answer("good b", "0")};
  b.verdicts["good a"] = {"1"};
  b.verdicts["half a"] = {"0"};
  b.verdicts["bad b"] = {"1"};
  b.verdicts["good b"] = {"0.5"};
  ProofEvalOptions options;
  options.refine = RefineOptions{3, {}};
  options.best_of_n = BestOfNOptions{2, 1, {}, {}};
  options.max_concurrent_problems = 1;  // A's calls run before B's: the script is consumed in order
  FakeGrader grader;
  const PromptTemplate generator = Generator(), refiner = Refiner();
  std::vector<size_t> progress;
  auto report = EvaluateProofs(b, generator, &refiner, {{"a", "A"}, {"b", "B"}}, &grader, options,
                               [&progress](size_t done) { progress.push_back(done); });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(progress, (std::vector<size_t>{1, 2}));
  ASSERT_TRUE(report->refine.has_value());
  // After 1 attempt: A 0, B 0.5; after 2 and 3: A 1, B 0.5 (its only proof stays).
  EXPECT_EQ(report->refine->score_at, (std::vector<double>{0.25, 0.75, 0.75}));
  EXPECT_EQ(report->refine->self_score_at, (std::vector<double>{0.5, 1.0, 1.0}));
  EXPECT_DOUBLE_EQ(report->refine->mean_attempts, 1.5);
  EXPECT_DOUBLE_EQ(report->refine->self_confirmed_rate, 1.0);
  ASSERT_TRUE(report->best_of_n.has_value());
  // A: candidates good a (v 1) and half a (v 0): selected 1. B: bad b (v 1) beats good b (v 0.5): 0.
  EXPECT_DOUBLE_EQ(report->best_of_n->selected_score, 0.5);
  EXPECT_DOUBLE_EQ(report->best_of_n->sample_score, (0.75 + 0.5) / 2);
  EXPECT_DOUBLE_EQ(report->best_of_n->first_score, 0.5);
  EXPECT_DOUBLE_EQ(report->best_of_n->oracle_score, 1.0);
  EXPECT_DOUBLE_EQ(report->best_of_n->selected_verification, 1.0);

  const nlohmann::json j = ProofEvalReportJson(*report);
  EXPECT_EQ(j["problems"], 2);
  EXPECT_EQ(j["refine"]["score_at"][1], 0.75);
  EXPECT_EQ(j["results"][0]["refinement"][1]["true_score"], 1.0);
  EXPECT_EQ(j["results"][1]["best_of_n"]["chosen"], 0);
  EXPECT_EQ(j["results"][1]["best_of_n"]["candidates"][1]["proof"], "good b");
}

TEST(EvaluateProofs, WithoutAGraderOnlyTheModelsOwnScoresAreReported) {
  ScriptedBackend b;
  b.answers["PROVE A"] = {Answer("x", "1")};
  ProofEvalOptions options;
  options.refine = RefineOptions{2, {}};
  const PromptTemplate generator = Generator(), refiner = Refiner();
  auto report = EvaluateProofs(b, generator, &refiner, {{"a", "A"}}, nullptr, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->graded);
  EXPECT_TRUE(report->refine->score_at.empty());
  EXPECT_EQ(report->refine->self_score_at, (std::vector<double>{1.0, 1.0}));
  EXPECT_FALSE(ProofEvalReportJson(*report)["refine"].contains("score_at"));
}

TEST(EvaluateProofs, AFailedCallFailsTheEvaluationNamingTheProblem) {
  ScriptedBackend b;  // nothing scripted: every Generate fails
  ProofEvalOptions options;
  options.best_of_n = BestOfNOptions{1, 1, {}, {}};
  const PromptTemplate generator = Generator();
  auto report = EvaluateProofs(b, generator, nullptr, {{"a", "A"}}, nullptr, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(report.status().message(), HasSubstr("problem a: "));
  EXPECT_EQ(EvaluateProofs(b, generator, nullptr, {}, nullptr, options).status().message(), "evaluation: no problems");
  options.refine = RefineOptions{1, {}};
  EXPECT_EQ(EvaluateProofs(b, generator, nullptr, {{"a", "A"}}, nullptr, options).status().message(),
            "evaluation: refinement needs a refiner template");
}

}  // namespace
}  // namespace dsm
