// Per-token log-probabilities of sampled completions under the policy (an
// adapter) or the reference (the base model), for the GRPO loss.
//
// Each sample is its prompt ids followed by its completion ids. The samples are
// packed into one right-padded [N, L] batch and run through
// LlamaModel::HiddenStates; the hidden state before each completion token is
// projected with LmHead, divided by the temperature and log-softmaxed, and the
// log-prob of that token taken. Only completion tokens are returned.
//
// Memory: only the completion positions are projected, `chunk_tokens` at a
// time. When gradients are needed, each chunk's [chunk, vocab] logits are
// recomputed in backward instead of being kept (per-chunk checkpointing), so
// peak memory is O(chunk_tokens × vocab), not O(N × Tc × vocab).
//
// Thread safety: as LlamaModel's forwards (const; the model and its adapters
// must not change until backward is done).
#ifndef DSM_LEARNER_TOKEN_LOGPROBS_H_
#define DSM_LEARNER_TOKEN_LOGPROBS_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "model/llama_model.h"

namespace dsm {

struct PromptCompletion {
  std::vector<int64_t> prompt;      // at least one token (the first completion token needs a context)
  std::vector<int64_t> completion;  // may be empty (a row of padding)
};

struct TokenLogprobsOptions {
  // Adapter index for every row; -1 = the base model, i.e. the GRPO reference
  // policy, always computed under NoGrad. With an adapter the caller's grad
  // mode decides whether the result is differentiable w.r.t. its tensors.
  int adapter = -1;
  // Logits are divided by it before log_softmax, as the sampler does, so the
  // ratios match the behaviour log-probs that came with each sample. > 0.
  double temperature = 1.0;
  bool training = false;       // LoRA dropout (ForwardOptions::training)
  int64_t chunk_tokens = 1024;  // completion positions projected per LM-head chunk; > 0
};

struct CompletionLogprobs {
  torch::Tensor logprobs;  // [N, Tc] float32, Tc = longest completion; 0 at padding
  torch::Tensor mask;      // [N, Tc] float32, 1 = completion token, 0 = padding
};

// Errors (InvalidArgument): no samples, an empty prompt, temperature <= 0,
// chunk_tokens <= 0, ids outside the vocabulary, unknown adapter; model errors
// are passed on with "token logprobs: " in front.
absl::StatusOr<CompletionLogprobs> ComputeTokenLogprobs(const LlamaModel& model,
                                                       const std::vector<PromptCompletion>& samples,
                                                       const TokenLogprobsOptions& options);

}  // namespace dsm

#endif  // DSM_LEARNER_TOKEN_LOGPROBS_H_
