#include "services/eval/proof_eval.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/concurrent_calls.h"

namespace dsm {
namespace {

// A well-formed self-score, or 0.
double SelfScore(const ProofAttempt& a) {
  return a.has_self_evaluation_header && a.self_score.format() == v1::FORMAT_STATUS_OK ? a.self_score.value() : 0.0;
}

absl::StatusOr<double> TrueScore(const Grader& grader, const std::string& statement, const ProofAttempt& a) {
  if (a.proof.empty()) return 0.0;  // no proof scores 0
  absl::StatusOr<GradedProof> graded = grader.GradeProof(statement, a.proof);
  if (!graded.ok()) return graded.status();
  return graded->score;
}

absl::Status RunProblem(ProofBackend& backend, const PromptTemplate& generator, const PromptTemplate* refiner,
                        const Grader* grader, const ProofEvalOptions& options, ProblemResult& result) {
  const std::string& statement = result.problem.statement;
  auto context = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("problem ", result.problem.problem_id, ": ", s.message()));
  };
  if (options.refine.has_value()) {
    absl::StatusOr<std::vector<ProofAttempt>> attempts =
        RefineProof(backend, generator, *refiner, statement, *options.refine);
    if (!attempts.ok()) return context(attempts.status());
    result.refinement = *std::move(attempts);
    if (grader != nullptr) {
      for (const ProofAttempt& a : result.refinement) {
        absl::StatusOr<double> truth = TrueScore(*grader, statement, a);
        if (!truth.ok()) return context(truth.status());
        result.refinement_truth.push_back(*truth);
      }
    }
  }
  if (options.best_of_n.has_value()) {
    absl::StatusOr<BestOfN> best = SelectBestOfN(backend, generator, statement, *options.best_of_n);
    if (!best.ok()) return context(best.status());
    result.best_of_n = *std::move(best);
    if (grader != nullptr) {
      for (const ScoredCandidate& c : result.best_of_n->candidates) {
        absl::StatusOr<double> truth = TrueScore(*grader, statement, c.attempt);
        if (!truth.ok()) return context(truth.status());
        result.candidate_truth.push_back(*truth);
      }
    }
  }
  return absl::OkStatus();
}

RefineSummary SummariseRefinement(const std::vector<ProblemResult>& results, uint32_t max_iterations, bool graded) {
  RefineSummary s;
  if (graded) s.score_at.assign(max_iterations, 0.0);
  s.self_score_at.assign(max_iterations, 0.0);
  for (const ProblemResult& r : results) {
    const size_t n = r.refinement.size();
    for (size_t t = 0; t < max_iterations; ++t) {
      const size_t held = std::min(t, n - 1);  // stopped early: the last proof stays
      if (graded) s.score_at[t] += r.refinement_truth[held];
      s.self_score_at[t] += SelfScore(r.refinement[held]);
    }
    s.mean_attempts += static_cast<double>(n);
    s.self_confirmed_rate += SelfScore(r.refinement.back()) == 1.0 ? 1.0 : 0.0;
  }
  const double count = static_cast<double>(results.size());
  for (double& v : s.score_at) v /= count;
  for (double& v : s.self_score_at) v /= count;
  s.mean_attempts /= count;
  s.self_confirmed_rate /= count;
  return s;
}

BestOfNSummary SummariseBestOfN(const std::vector<ProblemResult>& results, bool graded) {
  BestOfNSummary s;
  for (const ProblemResult& r : results) {
    const BestOfN& b = *r.best_of_n;
    const size_t chosen = static_cast<size_t>(b.chosen);
    s.selected_verification += b.candidates[chosen].verification_score;
    if (!graded) continue;
    double sum = 0;
    for (double t : r.candidate_truth) sum += t;
    s.sample_score += sum / static_cast<double>(r.candidate_truth.size());
    s.first_score += r.candidate_truth.front();
    s.selected_score += r.candidate_truth[chosen];
    s.oracle_score += *std::max_element(r.candidate_truth.begin(), r.candidate_truth.end());
  }
  const double count = static_cast<double>(results.size());
  s.selected_verification /= count;
  s.sample_score /= count;
  s.first_score /= count;
  s.selected_score /= count;
  s.oracle_score /= count;
  return s;
}

nlohmann::json AttemptJson(const ProofAttempt& a) {
  nlohmann::json j;
  j["proof"] = a.proof;
  j["self_evaluation"] = a.self_analysis;
  j["self_score_format"] = v1::FormatStatus_Name(a.self_score.format());
  if (a.self_score.has_value()) j["self_score"] = a.self_score.value();
  return j;
}

}  // namespace

absl::StatusOr<ProofEvalReport> EvaluateProofs(ProofBackend& backend, const PromptTemplate& generator,
                                               const PromptTemplate* refiner, const std::vector<EvalProblem>& problems,
                                               const Grader* grader, const ProofEvalOptions& options,
                                               const std::function<void(size_t)>& on_problem) {
  if (problems.empty()) return absl::InvalidArgumentError("evaluation: no problems");
  if (!options.refine.has_value() && !options.best_of_n.has_value()) {
    return absl::InvalidArgumentError("evaluation: no strategy (refine, best-of-n) chosen");
  }
  if (options.refine.has_value() && refiner == nullptr) {
    return absl::InvalidArgumentError("evaluation: refinement needs a refiner template");
  }
  ProofEvalReport report;
  report.graded = grader != nullptr;
  report.problems.resize(problems.size());
  std::vector<absl::Status> statuses(problems.size());
  std::atomic<size_t> finished{0};
  std::atomic<bool> failed{false};
  RunConcurrently(problems.size(), std::max<uint32_t>(1, options.max_concurrent_problems), [&](size_t i) {
    if (failed.load()) return;  // one failure ends the evaluation: start nothing new
    report.problems[i].problem = problems[i];
    statuses[i] = RunProblem(backend, generator, refiner, grader, options, report.problems[i]);
    if (!statuses[i].ok()) failed.store(true);
    if (on_problem) on_problem(++finished);
  });
  for (const absl::Status& s : statuses) {
    if (!s.ok()) return s;
  }
  if (options.refine.has_value()) {
    report.refine = SummariseRefinement(report.problems, options.refine->max_iterations, report.graded);
  }
  if (options.best_of_n.has_value()) report.best_of_n = SummariseBestOfN(report.problems, report.graded);
  return report;
}

nlohmann::json ProofEvalReportJson(const ProofEvalReport& report) {
  nlohmann::json j;
  j["problems"] = report.problems.size();
  j["graded"] = report.graded;
  if (report.refine.has_value()) {
    const RefineSummary& r = *report.refine;
    nlohmann::json s;
    if (report.graded) s["score_at"] = r.score_at;
    s["self_score_at"] = r.self_score_at;
    s["mean_attempts"] = r.mean_attempts;
    s["self_confirmed_rate"] = r.self_confirmed_rate;
    j["refine"] = s;
  }
  if (report.best_of_n.has_value()) {
    const BestOfNSummary& b = *report.best_of_n;
    nlohmann::json s;
    s["selected_verification"] = b.selected_verification;
    if (report.graded) {
      s["sample_score"] = b.sample_score;
      s["first_score"] = b.first_score;
      s["selected_score"] = b.selected_score;
      s["oracle_score"] = b.oracle_score;
    }
    j["best_of_n"] = s;
  }
  nlohmann::json items = nlohmann::json::array();
  for (const ProblemResult& r : report.problems) {
    nlohmann::json p;
    p["problem_id"] = r.problem.problem_id;
    if (!r.refinement.empty()) {
      nlohmann::json attempts = nlohmann::json::array();
      for (size_t t = 0; t < r.refinement.size(); ++t) {
        nlohmann::json a = AttemptJson(r.refinement[t]);
        if (!r.refinement_truth.empty()) a["true_score"] = r.refinement_truth[t];
        attempts.push_back(std::move(a));
      }
      p["refinement"] = std::move(attempts);
    }
    if (r.best_of_n.has_value()) {
      nlohmann::json candidates = nlohmann::json::array();
      for (size_t c = 0; c < r.best_of_n->candidates.size(); ++c) {
        const ScoredCandidate& candidate = r.best_of_n->candidates[c];
        nlohmann::json a = AttemptJson(candidate.attempt);
        a["verification_score"] = candidate.verification_score;
        a["valid_verifications"] = candidate.valid_verifications;
        if (!r.candidate_truth.empty()) a["true_score"] = r.candidate_truth[c];
        candidates.push_back(std::move(a));
      }
      p["best_of_n"] = {{"chosen", r.best_of_n->chosen}, {"candidates", std::move(candidates)}};
    }
    items.push_back(std::move(p));
  }
  j["results"] = std::move(items);
  return j;
}

}  // namespace dsm
