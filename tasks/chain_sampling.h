// Sampling the model on chain-domain prompts in process, outside the services: the warm-up's
// yardstick (chain_warmup_eval.h) and the model's own proofs that phase 0 shows the verifier
// (chain_warmup.h), so that it learns to judge the mistakes this generator makes and not only
// the made-up flaws of chain_domain.h.
//
// Deterministic for a model, prompts, seeds and LibTorch thread count (the sampler's sequences
// depend only on their own prompt, parameters and seed). Thread-compatible (runs the model).
#ifndef DSM_TASKS_CHAIN_SAMPLING_H_
#define DSM_TASKS_CHAIN_SAMPLING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/llama_model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "tasks/chain_domain.h"
#include "tasks/chain_warmup_examples.h"
#include "tasks/replica_thread.h"

namespace dsm {

// One prompt to complete: the rendered template (BOS is added), temperature 0 = greedy.
struct ChainPrompt {
  std::string text;
  double temperature = 0;
  uint64_t seed = 0;
};

struct ChainSamplingOptions {
  int max_batch = 64;       // sequences decoded together: >= 1
  int max_new_tokens = 192; // per output: >= 1
};

// One result per prompt, in order. Errors: bad options (InvalidArgument), a request the sampler
// refuses or fails (with "sampling: " before its message).
absl::StatusOr<std::vector<SampleResult>> SampleChainPrompts(const LlamaModel& model, const Tokenizer& tokenizer,
                                                             const std::vector<ChainPrompt>& prompts,
                                                             const ChainSamplingOptions& options);

// SampleChainPrompts with the prompts shared out in contiguous parts, part r sampled on models[r]
// by threads[r], side by side (as many models as threads, >= 1; copies with the same weights).
// A sequence depends only on its own prompt, parameters, seed and the weights (above; the row
// kernels give a row the same bits in any batch and on any thread count), so the results are
// one sampler's on all the prompts: on two cores in about half the time, since one sampler's
// small decode steps barely use a second core. Errors as SampleChainPrompts (the first part's).
absl::StatusOr<std::vector<SampleResult>> SampleChainPromptsSideBySide(const std::vector<const LlamaModel*>& models,
                                                                       const std::vector<ReplicaThread*>& threads,
                                                                       const Tokenizer& tokenizer,
                                                                       const std::vector<ChainPrompt>& prompts,
                                                                       const ChainSamplingOptions& options);

// Whatever samples a list of prompts, one result each, in order: SampleChainPrompts on one model,
// or shares of the list side by side on copies of it (phase 0's replicas, chain_warmup.cc).
using ChainPromptSampler =
    std::function<absl::StatusOr<std::vector<SampleResult>>(const std::vector<ChainPrompt>& prompts)>;

// The model's proof of each problem: one generator output per problem at `temperature` (seed
// CombineSeeds(seed, problem.seed)), cut to its proof with SplitGeneratorOutput (a truncated
// output keeps what it has). Errors as SampleChainPrompts.
absl::StatusOr<std::vector<std::string>> SampleChainProofs(const LlamaModel& model, const Tokenizer& tokenizer,
                                                           const ChainWarmupTemplates& templates,
                                                           const std::vector<ChainProblem>& problems,
                                                           double temperature, uint64_t seed,
                                                           const ChainSamplingOptions& options);
// The same, the prompts sampled by `sample`.
absl::StatusOr<std::vector<std::string>> SampleChainProofs(const ChainPromptSampler& sample,
                                                           const ChainWarmupTemplates& templates,
                                                           const std::vector<ChainProblem>& problems,
                                                           double temperature, uint64_t seed);

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_SAMPLING_H_
