// The GRPO objective (DeepSeekMath, arXiv 2402.03300) with the options that
// later work added and users expect: clip-higher (DAPO), token-level mean
// (DAPO), no std / no length normalisation (Dr.GRPO), k3 KL to the reference,
// importance correction with behaviour log-probs, dynamic sampling.
// See shared METHOD.md, "GRPO". Pure LibTorch: no gRPC here.
//
// Definitions (tests/fixtures/learner/grpo_reference.py is an independent
// Python implementation of the same; the unit tests hold the two within 1e-5):
//
//   Advantages, per group of G samples of one prompt with rewards r:
//     Â_i = (r_i − mean(r)) / (std(r) + advantage_epsilon)   scale_rewards
//     Â_i =  r_i − mean(r)                                    !scale_rewards
//   std is the unbiased (n − 1) standard deviation, as TRL. A group is
//   degenerate when max(r) − min(r) <= kDegenerateRewardSpread (every reward
//   equal, G = 1 included): its advantages are exactly 0 and, with
//   dynamic_sampling, the whole group is dropped (and counted).
//
//   Per completion token t of sample i (mask 1):
//     ρ = exp(logπθ − logπold)            π_old = behaviour log-probs, or
//                                         π_θ.detach() without importance
//                                         correction (ρ = 1, gradient Â)
//     surrogate = min(ρ·Â, clip(ρ, 1 − ε_low, 1 + ε_high)·Â)
//     KL = exp(d) − d − 1, d = logπref − logπθ   (k3, ≥ 0)
//     o = surrogate − β·KL
//   loss = −Σ o / normaliser, by aggregation:
//     kSequenceMean: Σ_i (Σ_t o_it / |o_i|) / S
//     kTokenMean:    Σ_it o_it / K
//     kConstantNorm: Σ_it o_it / (S · max_completion_tokens)
//   S = step_samples (or N), K = step_tokens (or the tokens of this batch):
//   the losses of the micro-batches of one step, each given the step's totals,
//   sum to the loss of the step as one batch (and so do their gradients).
//
//   A token is clipped when the clipped branch of the min is the one taken
//   and carries no gradient: (Â > 0 and ρ > 1 + ε_high) or (Â < 0 and
//   ρ < 1 − ε_low). clip_fraction = clipped tokens / tokens.
//
// Thread safety: free functions, no state.
#ifndef DSM_LEARNER_GRPO_LOSS_H_
#define DSM_LEARNER_GRPO_LOSS_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsm {

enum class LossAggregation {
  kSequenceMean,  // GRPO: mean over a sample's tokens, then mean over samples
  kTokenMean,     // DAPO: mean over every completion token of the batch
  kConstantNorm,  // Dr.GRPO: sum over tokens / (samples × max_completion_tokens)
};

// Rewards of a group closer than this count as all equal.
inline constexpr double kDegenerateRewardSpread = 1e-9;

struct GrpoOptions {
  double epsilon_low = 0.2;        // ratio clipped to [1 - epsilon_low, 1 + epsilon_high]
  double epsilon_high = 0.2;       // DAPO clip-higher uses 0.28
  double kl_beta = 0.04;           // coefficient of the k3 KL to the reference; 0 = off
  bool scale_rewards = true;       // divide advantages by the group's std (false: Dr.GRPO)
  LossAggregation aggregation = LossAggregation::kSequenceMean;
  int64_t max_completion_tokens = 1024;  // the constant of kConstantNorm
  bool importance_correction = true;     // π_old = behaviour log-probs (else detached π_θ: ratio 1)
  bool dynamic_sampling = true;          // drop groups whose rewards are all equal
  double advantage_epsilon = 1e-4;       // (r - mean) / (std + epsilon)

  // epsilon_low in [0, 1), epsilon_high >= 0, kl_beta >= 0,
  // max_completion_tokens > 0, advantage_epsilon >= 0; the message names the field.
  absl::Status Validate() const;
};

struct GroupAdvantages {
  std::vector<double> advantages;  // one per sample, same order as the rewards
  bool degenerate = false;         // every reward equal (dynamic sampling drops it)
};

// Â_i = (r_i - mean(r)) / (std(r) + epsilon) (std: unbiased, as TRL), or
// r_i - mean(r) without std scaling. Degenerate groups get exactly 0.
// Ignores options.dynamic_sampling (see ComputeBatchAdvantages).
GroupAdvantages ComputeGroupAdvantages(const std::vector<double>& rewards, const GrpoOptions& options);

// The advantages of a batch of groups with dynamic sampling applied.
struct BatchAdvantages {
  // Samples kept, as indices into the concatenation of the groups (group 0's
  // samples first), in order; with advantages[k] for sample kept[k].
  std::vector<int64_t> kept;
  std::vector<double> advantages;
  int64_t groups = 0;           // groups seen
  int64_t degenerate_groups = 0;  // groups whose rewards were all equal
  int64_t dropped_groups = 0;   // = degenerate_groups with dynamic_sampling, else 0
  int64_t dropped_samples = 0;
};
BatchAdvantages ComputeBatchAdvantages(const std::vector<std::vector<double>>& group_rewards,
                                       const GrpoOptions& options);

// Per-token inputs of one micro-batch of N samples padded to T completion tokens.
// Padding positions (mask 0) are ignored: they may hold anything, even NaN.
struct GrpoInputs {
  torch::Tensor logprobs;            // [N, T] float32, log π_θ of each sampled token (requires grad)
  torch::Tensor behaviour_logprobs;  // [N, T] log π_old; may be undefined without importance_correction
  torch::Tensor reference_logprobs;  // [N, T] log π_ref (adapter off); may be undefined when kl_beta == 0
  torch::Tensor advantages;          // [N] (any floating dtype)
  torch::Tensor mask;                // [N, T] 1 = completion token, 0 = padding (bool or numeric)
  // Normalisers for the whole optimizer step when it is split into micro-batches
  // (so that accumulation equals one big batch): total samples and total tokens
  // of the step. 0 = this micro-batch alone. Must be >= this batch's own count.
  int64_t step_samples = 0;
  int64_t step_tokens = 0;
};

struct GrpoLoss {
  torch::Tensor loss;        // float32 scalar to minimise (−objective), differentiable w.r.t. logprobs
  // Statistics of this micro-batch (means over its completion tokens; 0 when it has none).
  double kl = 0;             // mean k3 KL; computed whenever reference_logprobs is given
  double clip_fraction = 0;  // clipped tokens / tokens (definition above)
  double ratio_mean = 0;     // mean ρ
  int64_t tokens = 0;        // completion tokens (mask sum)
  int64_t clipped_tokens = 0;
};

// Errors (InvalidArgument): invalid options, missing or mis-shaped tensors,
// non-finite values at completion tokens, a non-finite advantage, step
// normalisers below this batch's counts, and (kConstantNorm) a sample longer
// than max_completion_tokens.
absl::StatusOr<GrpoLoss> ComputeGrpoLoss(const GrpoInputs& inputs, const GrpoOptions& options);

}  // namespace dsm

#endif  // DSM_LEARNER_GRPO_LOSS_H_
