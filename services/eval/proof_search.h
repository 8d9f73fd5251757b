// Test-time scaling (../shared/METHOD.md, "Test-time scaling"): the two ways
// `dsm eval` spends more samples on one problem.
//
// - Sequential refinement (RefineProof): the generator writes a proof with
//   its self-evaluation; while the self-score is below 1 and fewer than
//   max_iterations attempts were made, the refiner prompt gives it the
//   previous proof and that self-evaluation and it writes the proof again.
// - Best-of-n selection (SelectBestOfN): n proofs, each graded by the verifier
//   `verifications` times; the proof with the highest mean verification score
//   is kept (ties: the higher self-score, then the earlier proof).
//
// Both run over a ProofBackend (the generator and the verifier, whatever
// serves them: the in-process model of local_proof_backend.h, or a fake in
// tests). Nothing here knows the true score of a proof: eval_report.h grades
// the results.
//
// Thread-safe when the backend is: `dsm eval` runs many problems at once.
#ifndef DSM_SERVICES_EVAL_PROOF_SEARCH_H_
#define DSM_SERVICES_EVAL_PROOF_SEARCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dsm/v1/scoring.pb.h"
#include "services/scoring/prompt_template.h"
#include "services/scoring/score_parser.h"

namespace dsm {

// One generator answer, split (score_parser.h): the proof (empty when the
// answer holds none) and its self-evaluation.
using ProofAttempt = GeneratorOutput;

class ProofBackend {
 public:
  virtual ~ProofBackend() = default;
  // `n` generator completions of `prompt` (already rendered), in order.
  virtual absl::StatusOr<std::vector<ProofAttempt>> Generate(const std::string& prompt, uint32_t n,
                                                             const v1::SamplingParams& params) = 0;
  // `n` verifier analyses of `proof` (VerifyResponse.analyses, each with its
  // parsed score; format failures included).
  virtual absl::StatusOr<v1::VerifyResponse> Verify(const std::string& problem, const std::string& proof,
                                                    uint32_t n, const v1::SamplingParams& params) = 0;
};

struct RefineOptions {
  uint32_t max_iterations = 4;  // attempts at most, the first included (1..64)
  v1::SamplingParams params;
};

// The attempts in order; the last one is the refined proof. Stops after an
// attempt whose self-score is 1 (well formed), after max_iterations, or when
// the backend refuses a refinement prompt as INVALID_ARGUMENT (e.g. too long
// for the context); any other failure, or a refused first prompt, is returned.
// INVALID_ARGUMENT for a refiner template of another role or a bad option.
absl::StatusOr<std::vector<ProofAttempt>> RefineProof(ProofBackend& backend, const PromptTemplate& generator,
                                                      const PromptTemplate& refiner, const std::string& problem,
                                                      const RefineOptions& options);

struct BestOfNOptions {
  uint32_t n = 8;              // proofs (1..1024)
  uint32_t verifications = 4;  // verifier analyses per proof (1..1024)
  v1::SamplingParams params;         // the generator's
  v1::SamplingParams verify_params;  // the verifier's
};

struct ScoredCandidate {
  ProofAttempt attempt;
  double verification_score = 0;  // mean of the valid verification scores
  uint32_t valid_verifications = 0;
};

struct BestOfN {
  std::vector<ScoredCandidate> candidates;  // in generation order
  int chosen = 0;                           // index into candidates
};

// A proof with no valid verification (or no proof text) is never preferred
// to one that has a valid verification.
absl::StatusOr<BestOfN> SelectBestOfN(ProofBackend& backend, const PromptTemplate& generator,
                                      const std::string& problem, const BestOfNOptions& options);

}  // namespace dsm

#endif  // DSM_SERVICES_EVAL_PROOF_SEARCH_H_
