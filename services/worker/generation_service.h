// GenerationService: the domain behind Sampler.Generate. It checks a request
// against the limits, turns it into n sequences (completion i seeded from
// (seed, i)), pins the newest adapter version of the requested role for the
// whole group, runs them on the shared Sampler and reports each completion as
// it finishes, then a summary. No gRPC types here.
//
// Thread-safe. Callbacks run on the sampler's thread; they must not block.
#ifndef DSM_SERVICES_WORKER_GENERATION_SERVICE_H_
#define DSM_SERVICES_WORKER_GENERATION_SERVICE_H_

#include <atomic>
#include <deque>
#include <thread>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dsm/v1/sampler.pb.h"
#include "common/metrics_registry.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "services/adapters/adapter_registry.h"

namespace dsm {

struct GenerationLimits {
  int max_prompt_tokens = 4096;
  int max_completion_tokens = 4096;
  int max_n = 64;
  int default_max_tokens = 256;
};

class GenerationService {
 public:
  struct Callbacks {
    // Returns false when the caller is gone (the rest of the group is then
    // still finished by the sampler but not reported).
    std::function<bool(v1::Completion)> on_completion;
    std::function<void(absl::Status, v1::GenerateSummary)> on_done;
  };

  // `tokenizer` may be null (token-id prompts only). All must outlive this.
  GenerationService(const LlamaModel* model, const Tokenizer* tokenizer, Sampler* sampler,
                    AdapterRegistry* registry, GenerationLimits limits);
  // Requests still waiting for an adapter version get UNAVAILABLE.
  ~GenerationService();

  // Validates `request` (InvalidArgument naming the field; nothing started)
  // and starts it. If the request asks for an adapter version not yet held,
  // it waits for it until `deadline` (then DEADLINE_EXCEEDED via on_done;
  // RESOURCE_EXHAUSTED at once when max_waiting requests already wait).
  absl::Status Start(const v1::GenerateRequest& request, absl::Time deadline, Callbacks callbacks);

  // The prompt as token ids, as Start() tokenizes it (text is encoded with
  // the model's tokenizer). InvalidArgument naming the field when it cannot
  // be; no other checks.
  absl::StatusOr<std::vector<int32_t>> EncodePrompt(const v1::Prompt& prompt) const;

  // Declares dsm_sampler_tokens_generated_total{role} (roles named as the
  // learner names them) in `registry` and counts every sampled token there;
  // and dsm_sampler_prompt_tokens_total{prefill}: the sampler's prompt tokens,
  // "run" through the model or "shared" (copied from a sequence holding the
  // same prompt with the same adapter: a request's n samples), brought up to
  // date as each completion finishes. Call before the first Start().
  absl::Status CountTokensIn(MetricsRegistry& registry);

  const GenerationLimits& limits() const { return limits_; }
  int64_t completions() const { return completions_.load(); }
  int64_t generated_tokens() const { return generated_tokens_.load(); }

 private:
  // A request waiting for an adapter version.
  struct Waiter {
    v1::GenerateRequest request;
    std::vector<int32_t> prompt;
    Callbacks callbacks;
    absl::Time deadline;
  };
  static constexpr size_t kMaxWaiting = 4096;

  absl::Status Validate(const v1::GenerateRequest& request, std::vector<int32_t>* prompt) const;
  void Launch(const v1::GenerateRequest& request, std::vector<int32_t> prompt, Callbacks callbacks);
  // Whether the registry holds `role` at `min_version` or newer.
  bool Holds(v1::AdapterRole role, uint64_t min_version) const;
  // The waiters' thread: launches those whose version arrived, fails those
  // past their deadline (polls every 20 ms while any wait).
  void WaitLoop();

  const LlamaModel* model_;
  const Tokenizer* tokenizer_;
  Sampler* sampler_;
  AdapterRegistry* registry_;
  const GenerationLimits limits_;
  std::atomic<int64_t> completions_{0};
  std::atomic<int64_t> generated_tokens_{0};
  CounterFamily* tokens_counter_ = nullptr;
  // dsm_sampler_prompt_tokens_total, and the sampler's counts it holds so far.
  void CountPromptTokens();
  CounterFamily* prompt_counter_ = nullptr;
  absl::Mutex prompt_mu_;
  Sampler::Counters prompt_counted_ ABSL_GUARDED_BY(prompt_mu_);

  absl::Mutex mu_;
  std::deque<Waiter> waiting_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread waiter_thread_;  // started with the first waiter
};

// Seed of completion `index` of a group seeded with `seed`.
uint64_t CompletionSeed(uint64_t seed, uint32_t index);

}  // namespace dsm

#endif  // DSM_SERVICES_WORKER_GENERATION_SERVICE_H_
