// Sampling parameters of one sequence and the batched token choice: temperature,
// top-k, top-p, min-p and a counter-based random draw per sequence, so that a
// sequence's tokens depend only on its own seed and logits — never on which
// other sequences share the batch.
//
// Log-probs are of the tempered distribution (logits / temperature, before
// top-k/top-p/min-p filtering): what the learner needs for importance ratios.
// With temperature 0 (greedy) they are log_softmax of the raw logits.
#ifndef DSM_MODEL_SAMPLING_H_
#define DSM_MODEL_SAMPLING_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dsm {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = off
  double top_p = 1.0;        // 1 = off
  double min_p = 0.0;        // 0 = off
  int max_tokens = 256;      // new tokens at most
  std::vector<std::string> stop;        // stop strings (need a tokenizer)
  std::vector<int32_t> stop_token_ids;  // in addition to the model's EOS ids
  bool ignore_eos = false;              // do not stop at the model's EOS ids
  bool include_stop_str_in_output = false;
  uint64_t seed = 0;         // same seed + same prompt = same tokens

  // Names the field and the allowed range on error.
  absl::Status Validate() const;
};

// The uniform number in [0, 1) that sequence `seed` uses at decode step `step`
// (splitmix64 of the pair): counter-based, so it needs no state per sequence.
double SequenceUniform(uint64_t seed, uint64_t step);

struct TokenChoice {
  std::vector<int32_t> tokens;    // [B]
  std::vector<float> logprobs;    // [B], log-prob of each chosen token
};

// Chooses one token per row of `logits` [B, vocab] (float32, any device).
// `params[b]` and `steps[b]` (the row's decode step) drive row b.
TokenChoice ChooseTokens(const torch::Tensor& logits, const std::vector<const SamplingParams*>& params,
                         const std::vector<uint64_t>& steps);

}  // namespace dsm

#endif  // DSM_MODEL_SAMPLING_H_
