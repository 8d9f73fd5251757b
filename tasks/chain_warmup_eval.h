// Held-out skill of a model on the chain domain's three output formats, graded by the exact
// checker: the yardstick of the phase-0 warm-up (chain_warmup.h), usable on any model.
//
// On `problems` distinct problems of the domain's EVAL split (never trained on), with prompts
// from chain_warmup_examples.h:
//   generator:     one greedy output per problem, cut with SplitGeneratorOutput; the checker
//                  scores the proof; plus `temperature_samples` outputs at temperature 1;
//   verifier:      one greedy analysis of a labelled proof per problem (flawless with
//                  probability correct_fraction), read with ParseScore;
//   meta-verifier: one greedy meta-analysis of a labelled analysis per problem;
//   look-up:       one greedy analysis of a ScrambledChainProof per problem.
// Metrics (all shares in [0, 1]):
//   generator_score1_rate        greedy proofs the checker scores 1
//   generator_mean_score         their mean checker score
//   generator_format_ok          outputs with "## Solution" and a self-evaluation ParseScore accepts
//   generator_self_agreement     outputs whose self-score equals the checker's score
//   generator_t1_score1_rate     temperature-1 proofs scored 1
//   generator_t1_varied_rate     problems whose temperature-1 proofs got different scores
//                                (GRPO groups with a learning signal)
//   verifier_agreement           analyses in format whose score equals the proof's true score
//   verifier_format_ok           analyses ParseScore accepts
//   verifier_majority_baseline   share of the most common true score ("always say x")
//   verifier_meta_score          mean expert meta-score of the analyses (AssessChainAnalysis)
//   meta_agreement               meta-analyses in format whose score equals the expert meta-score
//   meta_format_ok               meta-analyses ParseScore accepts
//   meta_majority_baseline       share of the most common expert meta-score
//   verifier_own_agreement       greedy analyses of the model's own proofs (each problem's first
//                                temperature-1 output) whose score equals the checker's: the
//                                proofs phase 5 labels (only with temperature_samples > 0)
//   verifier_own_majority_baseline  share of the most common checker score of those proofs
//   meta_own_agreement           greedy meta-analyses, in format, whose score equals the expert
//                                meta-score, of a labelled analysis (MakeChainMetaVerifierExample)
//                                of each of those proofs that ParseChainProof reads back: what
//                                phase 5 asks the meta-verifier (only when one reads back)
//   meta_own_majority_baseline   share of the most common expert meta-score among them
//   meta_sampled_agreement       greedy meta-analyses, in format, whose score equals the expert
//                                meta-score (AssessChainAnalysis), of the verifier's own analyses
//                                (`sampled_analyses` per problem at temperature 1, of the
//                                verifier prompt's labelled proof, those in format): what phase 3
//                                asks the meta-verifier for R_meta (only with temperature_samples > 0)
//   meta_sampled_majority_baseline  share of the most common expert meta-score among them
//   meta_sampled_bogus_mean      the meta-verifier's mean score (0 when malformed) of those
//                                analyses that name only lines that are not faulty: phase 3's
//                                R_meta for a hallucinated issue (absent when none)
//   meta_sampled_real_mean       the same for those that name only faulty lines: a gap between
//                                the two is R_meta's signal against hallucinated issues
//   meta_sampled_note_right      of those analyses that name any line, the share whose
//                                meta-analysis opens with the expert's "Checked:" note (the true
//                                citations of the lines named): the look-up a fair meta-score
//                                stands on (absent when none names a line)
//   verifier_lookup_accuracy     citations of a ScrambledChainProof per problem (about half of
//                                them not given as written or gaps; half the not-given ones
//                                leading on, so only the look-up shows them) whose item (variable reached,
//                                fact, status) the greedy analysis's "Cited:" note gives right
//   verifier_lookup_recall       the same over its faulty citations only: 0 for a verifier that
//                                calls every citation given, whatever its scores
//
// Deterministic for a model, options and thread count. Thread-compatible (runs the model).
#ifndef DSM_TASKS_CHAIN_WARMUP_EVAL_H_
#define DSM_TASKS_CHAIN_WARMUP_EVAL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"
#include "tasks/chain_checker.h"
#include "tasks/chain_domain.h"
#include "tasks/chain_warmup_examples.h"

namespace dsm {

struct ChainWarmupEvalOptions {
  ChainDomainOptions domain;
  int problems = 64;             // 1..10000
  int temperature_samples = 4;   // temperature-1 generator outputs per problem: 0..64
  int sampled_analyses = 2;      // temperature-1 verifier analyses per problem the meta-verifier judges: 0..64
  double correct_fraction = 0.4; // share of flawless proofs shown to the verifier: [0, 1]
  uint64_t seed = 0;             // problems, flaws, analyses and sampling seeds
  int max_batch = 64;            // sequences decoded together
  int max_new_tokens = 192;      // per output

  absl::Status Validate() const;
};

// One of the verifier's own analyses as the meta-verifier judged it.
struct MetaJudgement {
  ChainAnalysisAssessment truth;  // the checker's assessment of the analysis
  std::optional<double> score;    // the meta-verifier's score; nullopt: its meta-analysis was malformed
  bool note_right = false;        // its meta-analysis opens with the expert's "Checked:" note
};

// The meta_sampled_* metrics above; empty when nothing was judged.
std::map<std::string, double> MetaJudgementMetrics(const std::vector<MetaJudgement>& judged);

// Errors: invalid options, a domain that cannot give the eval problems, sampler errors.
absl::StatusOr<std::map<std::string, double>> EvaluateChainSkills(const LlamaModel& model,
                                                                   const Tokenizer& tokenizer,
                                                                   const ChainWarmupTemplates& templates,
                                                                   const ChainWarmupEvalOptions& options);

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_WARMUP_EVAL_H_
