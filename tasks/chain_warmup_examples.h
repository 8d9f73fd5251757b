// The phase-0 warm-up's examples for the chain domain (chain_domain.h): for each role, a prompt
// rendered with the role's prompt template (services/scoring/prompt_template.h) exactly as the
// pipeline renders its prompts (PromptTemplate::Render with the problem statement, the proof
// text and the analysis text), and the target completion:
//   generator:     the canonical proof (or one with a given flaw put in) and its faithful
//                  self-evaluation (RenderChainGeneratorOutput; the template's markers);
//   verifier:      a labelled proof (flaw drawn with SampleChainFlaw) and the checker's faithful
//                  analysis of it (RenderFaithfulChainAnalysis; the template's markers);
//   meta-verifier: a labelled proof, a labelled analysis of it (kind drawn uniformly among the
//                  kinds that exist for that proof) and the expert meta-analysis (the true
//                  citations of the lines it names (ChainMetaCheckNote), the checker's reason
//                  and meta-score in the meta-verifier template's markers).
// Pure functions of their arguments (seeds included); thread-safe.
#ifndef DSM_TASKS_CHAIN_WARMUP_EXAMPLES_H_
#define DSM_TASKS_CHAIN_WARMUP_EXAMPLES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "services/scoring/prompt_template.h"
#include "tasks/chain_checker.h"
#include "tasks/chain_domain.h"

namespace dsm {

// The three roles' templates (configs/prompts/tiny for the built-in model).
struct ChainWarmupTemplates {
  PromptTemplate generator;
  PromptTemplate verifier;
  PromptTemplate meta_verifier;

  // Loads <dir>/generator.txt, verifier.txt and meta_verifier.txt (PromptTemplate::LoadRole).
  static absl::StatusOr<ChainWarmupTemplates> Load(const std::string& dir);
  const PromptTemplate& For(PromptRole role) const;
};

struct ChainWarmupExample {
  PromptRole role = PromptRole::kGenerator;
  std::string prompt;      // the rendered template
  std::string completion;  // the target output (no EOS)
  // The proof the verifier / meta-verifier is shown (empty for the generator).
  std::string proof;
  // The true score of that proof (generator: 1, the canonical proof's).
  double proof_score = 1;
  // Meta-verifier: the analysis shown, its expert meta-score and the checker's whole assessment
  // of it (which named lines are faulty, which are not).
  std::string analysis;
  double meta_score = 1;
  ChainAnalysisAssessment assessment;
};

// The example of `role` for `problem`; flaws and analysis kinds are drawn from `seed`, a
// flawless proof with probability `correct_fraction`.
ChainWarmupExample MakeChainWarmupExample(const ChainWarmupTemplates& templates, PromptRole role,
                                          const ChainProblem& problem, double correct_fraction,
                                          uint64_t seed);

// The canonical proof of `problem` with each step's citation, independently with probability
// 1/2, swapped for: an equality of two of its letters that is not given either way (half of
// them: the generator's commonest fault); a given fact without the variable the chain has
// reached there (a gap; a quarter); or the given fact reversed (a quarter). About half the
// citations a verifier then checks are faulty, so its analysis must read each one off the
// proof, look it up in the problem's facts and check that it links. Deterministic in `seed`.
//
// With `leading_on`, half the not-given ones lead on from the variable the chain has reached,
// with the conclusion that follows (the chain goes on from there, so the next step has a gap
// unless it reached the goal), as the generator's own wrong citations do: nothing but the
// look-up tells them from given facts. Without it every not-given citation keeps the step's
// conclusion, so it also misses the reached variable or the conclusion does not follow from it,
// and a verifier can flag it without the look-up (measured: BENCHMARKS.md).
ChainProof ScrambledChainProof(const ChainProblem& problem, uint64_t seed, bool leading_on = true);

// A generator example: the rendered generator prompt and, as the target, the canonical proof
// with `flaw` put in (MakeLabelledChainProof with `seed`; kNone: the canonical proof) and its
// self-evaluation: the faithful one, or with `overclaims` the one that sees nothing wrong and
// scores the proof 1 (RenderOverlookingChainAnalysis: an overconfident writer's).
// MakeChainWarmupExample's generator example is this with kNone.
ChainWarmupExample MakeChainGeneratorExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                             ChainFlaw flaw, uint64_t seed, bool overclaims = false);

// A verifier example on any proof text (a model's own proof, say): the rendered verifier prompt
// and the checker's faithful analysis of `proof`, with its score.
ChainWarmupExample MakeChainVerifierExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                            const std::string& proof);

// A meta-verifier example on any proof (a model's own, read back with ParseChainProof, or a
// scrambled one): its text, a labelled analysis of it (kind drawn from `seed` uniformly among
// those that exist for the proof, as for the made-up proofs) and the expert meta-analysis.
ChainWarmupExample MakeChainMetaVerifierExample(const ChainWarmupTemplates& templates, const ChainProblem& problem,
                                                const ChainProof& proof, uint64_t seed);

// A meta-verifier example on an analysis of `proof` that someone wrote (the model's own, sampled
// from the verifier's prompt): the rendered meta-verifier prompt and the expert meta-analysis of
// `analysis` (AssessChainAnalysis against the checker's verdict on `proof`, read with the
// verifier template's markers), or nullopt when `analysis` is not in that format (phase 3 pays
// such an analysis nothing before a meta-verifier reads it).
std::optional<ChainWarmupExample> MakeChainMetaVerifierExampleOn(const ChainWarmupTemplates& templates,
                                                                 const ChainProblem& problem, const std::string& proof,
                                                                 const std::string& analysis);

// A verifier's or meta-verifier's completion up to and including its citation note's line (the
// first line opening with "Cited:" or "Checked:") and the `lines_after` lines after it (as many as
// there are), or the whole completion when it has no note.
std::string ChainCompletionThroughNote(const std::string& completion, int lines_after = 0);

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_WARMUP_EXAMPLES_H_
