// Sampler: batched generation on a LlamaModel with a slotted KV cache and
// continuous batching. Requests wait in a queue; each Step() admits waiting
// requests into free cache slots (one batched prefill), then decodes every
// running sequence by one token (one batched forward). A finished sequence
// leaves and its slot is refilled at the next step. A prompt that a running or
// newly admitted sequence already holds with the same adapter (a request's n
// samples) is copied in the cache, not prefilled again.
//
// Each request names its adapter (-1 = base model), so one batch may mix the
// generator, the verifier and the reference policy. A sequence's tokens depend
// only on its prompt, parameters and seed, not on its neighbours.
//
// Thread safety: Submit() and the counters may be called from any thread.
// Step() / Generate() must be called from one thread at a time (or use
// Start(), which runs Step() on a thread of its own). The model and the
// tokenizer are not owned and must outlive the sampler; the model must not be
// mutated (adapters added, merged) while a step runs: use RunBetweenSteps().
#ifndef DSM_MODEL_SAMPLER_H_
#define DSM_MODEL_SAMPLER_H_

#include <torch/torch.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "model/finish_reason.h"
#include "model/kv_cache.h"
#include "model/llama_model.h"
#include "model/sampling.h"
#include "model/tokenizer.h"

namespace dsm {

const char* FinishReasonName(FinishReason reason);

struct SampleRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  SamplingParams params;
  int adapter = -1;  // LlamaModel adapter index; -1 = the base model
};

struct SampleResult {
  std::vector<int32_t> tokens;  // every sampled token, a stop token included
  std::vector<float> logprobs;  // one per token (see sampling.h)
  std::string text;             // decoded tokens (empty without a tokenizer),
                                // cut before a matched stop string and without
                                // the EOS / stop token that ended it, unless
                                // include_stop_str_in_output
  FinishReason finish_reason = FinishReason::kLength;
  std::string stop;             // the stop string matched, if any
  int64_t prompt_tokens = 0;
  int adapter = -1;
};

struct SamplerOptions {
  int64_t max_batch = 32;            // cache slots = sequences decoded together
  int64_t max_len = 2048;            // prompt + completion tokens per sequence
  int64_t max_prefill_tokens = 4096; // prompt tokens admitted per step (one prompt may exceed it)
};

class Sampler {
 public:
  using Callback = std::function<void(absl::StatusOr<SampleResult>)>;

  // `tokenizer` may be null (then stop strings are refused and text is empty).
  static absl::StatusOr<std::unique_ptr<Sampler>> Create(const LlamaModel* model, const Tokenizer* tokenizer,
                                                         const SamplerOptions& options);
  ~Sampler();  // Stop(); queued and running requests get kAborted results

  // Queues a request; `done` runs (on the stepping thread) when it finishes.
  // Rejects at once, with the field named, a request that cannot run: empty
  // prompt, ids outside the vocabulary, prompt + max_tokens > max_len, an
  // unknown adapter, stop strings without a tokenizer, bad parameters.
  absl::Status Submit(SampleRequest request, Callback done);

  // One engine step: admit + prefill, then decode. Returns false if there was
  // nothing to do. Errors from the model fail the affected requests.
  bool Step();

  // Submits every request and steps until all are done (no Start() needed).
  std::vector<absl::StatusOr<SampleResult>> Generate(std::vector<SampleRequest> requests);

  // Runs Step() on a background thread until Stop(); it sleeps when idle.
  void Start();
  // Stops the background thread; unfinished requests end with kAborted.
  void Stop();

  // Runs `fn` on the stepping thread between two steps (or now, if no thread
  // runs): the safe moment to add, swap or merge adapters.
  void RunBetweenSteps(std::function<void()> fn);

  int64_t queued() const;
  int64_t running() const;
  // Prompt + completion tokens a sequence may hold.
  int64_t max_len() const { return options_.max_len; }
  struct Counters {
    int64_t steps = 0;
    int64_t prefill_tokens = 0;         // prompt tokens run through the model
    int64_t shared_prefill_tokens = 0;  // prompt tokens copied from a sequence with the same prompt
    int64_t decode_tokens = 0;
  };
  Counters counters() const;

 private:
  struct Sequence {
    SampleRequest request;
    Callback done;
    int64_t slot = -1;
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;
    std::string text;
    bool finished = false;
    FinishReason reason = FinishReason::kLength;
    std::string stop;
  };

  Sampler(const LlamaModel* model, const Tokenizer* tokenizer, const SamplerOptions& options,
          std::unique_ptr<KvCache> cache);

  // Adds the token chosen for `seq`; marks it finished when a stop condition holds.
  void Append(Sequence& seq, int32_t token, float logprob);
  void Finish(std::vector<std::unique_ptr<Sequence>>& done_list);
  void Prefill(std::vector<std::unique_ptr<Sequence>>& admitted);
  // Copies the first `length` cache entries of `from_slot` to `to_slot`, which then holds them.
  void CopyCache(int64_t from_slot, int64_t to_slot, int64_t length);
  void Decode();
  void FailAll(std::vector<std::unique_ptr<Sequence>>& seqs, const absl::Status& status);
  void RunPendingHooks();

  const LlamaModel* model_;
  const Tokenizer* tokenizer_;
  SamplerOptions options_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int64_t> eos_ids_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Sequence>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> hooks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t running_count_ ABSL_GUARDED_BY(mu_) = 0;
  Counters counters_ ABSL_GUARDED_BY(mu_);

  // Owned by the stepping thread.
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<int64_t> free_slots_;
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_MODEL_SAMPLER_H_
