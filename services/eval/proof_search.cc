#include "services/eval/proof_search.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/concurrent_calls.h"

namespace dsm {
namespace {

bool WellFormed(const ProofAttempt& a) {
  return a.has_self_evaluation_header && a.self_score.format() == v1::FORMAT_STATUS_OK;
}

// A well-formed self-score, or -1 (below every valid score) when there is none.
double SelfScoreOrLow(const ProofAttempt& a) { return WellFormed(a) ? a.self_score.value() : -1.0; }

}  // namespace

absl::StatusOr<std::vector<ProofAttempt>> RefineProof(ProofBackend& backend, const PromptTemplate& generator,
                                                      const PromptTemplate& refiner, const std::string& problem,
                                                      const RefineOptions& options) {
  if (generator.role() != PromptRole::kGenerator) {
    return absl::InvalidArgumentError(absl::StrCat(generator.source(), ": not a generator template"));
  }
  if (refiner.role() != PromptRole::kRefiner) {
    return absl::InvalidArgumentError(absl::StrCat(refiner.source(), ": not a refiner template"));
  }
  if (options.max_iterations < 1 || options.max_iterations > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_iterations: ", options.max_iterations, " is not in [1, 64]"));
  }
  std::vector<ProofAttempt> attempts;
  std::string prompt = generator.Render(PromptFields{problem, "", ""});
  v1::SamplingParams first = options.params, again = options.params;
  generator.AddStopsTo(&first);
  refiner.AddStopsTo(&again);
  while (attempts.size() < options.max_iterations) {
    absl::StatusOr<std::vector<ProofAttempt>> out =
        backend.Generate(prompt, 1, attempts.empty() ? first : again);
    // A refinement prompt the generator refuses (e.g. longer than its context, with a long
    // previous proof in it) ends the refinement: the last proof stands.
    if (!out.ok() && !attempts.empty() && absl::IsInvalidArgument(out.status())) break;
    if (!out.ok()) return out.status();
    if (out->size() != 1) {
      return absl::InternalError(absl::StrCat("refinement: the generator gave ", out->size(), " answers, not 1"));
    }
    attempts.push_back(std::move(out->front()));
    const ProofAttempt& last = attempts.back();
    if (WellFormed(last) && last.self_score.value() == 1.0) break;
    prompt = refiner.Render(PromptFields{problem, last.proof, last.self_analysis});
  }
  return attempts;
}

absl::StatusOr<BestOfN> SelectBestOfN(ProofBackend& backend, const PromptTemplate& generator,
                                      const std::string& problem, const BestOfNOptions& options) {
  if (generator.role() != PromptRole::kGenerator) {
    return absl::InvalidArgumentError(absl::StrCat(generator.source(), ": not a generator template"));
  }
  if (options.n < 1 || options.n > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("n: ", options.n, " is not in [1, 1024]"));
  }
  if (options.verifications < 1 || options.verifications > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("verifications: ", options.verifications, " is not in [1, 1024]"));
  }
  v1::SamplingParams params = options.params;
  generator.AddStopsTo(&params);
  absl::StatusOr<std::vector<ProofAttempt>> proofs =
      backend.Generate(generator.Render(PromptFields{problem, "", ""}), options.n, params);
  if (!proofs.ok()) return proofs.status();
  if (proofs->size() != options.n) {
    return absl::InternalError(
        absl::StrCat("best-of-n: the generator gave ", proofs->size(), " answers, not ", options.n));
  }
  // Every proof's verifications requested side by side: the backend batches them.
  BestOfN out;
  out.candidates.resize(proofs->size());
  std::vector<absl::Status> failed(proofs->size());
  RunConcurrently(proofs->size(), proofs->size(), [&](size_t i) {
    ScoredCandidate& c = out.candidates[i];
    c.attempt = std::move((*proofs)[i]);
    if (c.attempt.proof.empty()) return;
    absl::StatusOr<v1::VerifyResponse> verified =
        backend.Verify(problem, c.attempt.proof, options.verifications, options.verify_params);
    if (!verified.ok()) {
      failed[i] = verified.status();
      return;
    }
    double sum = 0;
    for (const v1::Analysis& a : verified->analyses()) {
      if (a.score().format() != v1::FORMAT_STATUS_OK) continue;
      sum += a.score().value();
      ++c.valid_verifications;
    }
    if (c.valid_verifications > 0) c.verification_score = sum / c.valid_verifications;
  });
  for (const absl::Status& s : failed) {
    if (!s.ok()) return s;
  }
  auto better = [](const ScoredCandidate& a, const ScoredCandidate& b) {
    const bool a_valid = a.valid_verifications > 0, b_valid = b.valid_verifications > 0;
    if (a_valid != b_valid) return a_valid;
    if (a.verification_score != b.verification_score) return a.verification_score > b.verification_score;
    return SelfScoreOrLow(a.attempt) > SelfScoreOrLow(b.attempt);
  };
  for (size_t i = 1; i < out.candidates.size(); ++i) {
    if (better(out.candidates[i], out.candidates[static_cast<size_t>(out.chosen)])) out.chosen = static_cast<int>(i);
  }
  return out;
}

}  // namespace dsm
