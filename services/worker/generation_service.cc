#include "services/worker/generation_service.h"

#include <algorithm>

#include <memory>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/adapter_roles.h"
#include "services/learner/learner_metrics.h"
#include "services/scoring/wire_finish_reason.h"

namespace dsm {

absl::Status GenerationService::CountTokensIn(MetricsRegistry& registry) {
  absl::StatusOr<CounterFamily*> tokens = registry.AddCounter(
      "dsm_sampler_tokens_generated_total", "Tokens sampled, per adapter role (rollout workers and scorers).",
      {"role"});
  if (!tokens.ok()) return tokens.status();
  tokens_counter_ = *tokens;
  absl::StatusOr<CounterFamily*> prompt = registry.AddCounter(
      "dsm_sampler_prompt_tokens_total",
      "Prompt tokens prefilled by the sampler: run through the model, or shared (copied from a sequence "
      "with the same prompt and adapter).",
      {"prefill"});
  if (!prompt.ok()) return prompt.status();
  prompt_counter_ = *prompt;
  return absl::OkStatus();
}

void GenerationService::CountPromptTokens() {
  if (prompt_counter_ == nullptr) return;
  const Sampler::Counters now = sampler_->counters();
  absl::MutexLock lock(&prompt_mu_);
  // Two completions may read the sampler's counts in one order and get here in the other: only
  // ever move forward.
  auto advance = [&](const char* prefill, int64_t now_count, int64_t& counted) {
    if (now_count <= counted) return;
    prompt_counter_->WithLabels({prefill}).Increment(static_cast<double>(now_count - counted));
    counted = now_count;
  };
  advance("run", now.prefill_tokens, prompt_counted_.prefill_tokens);
  advance("shared", now.shared_prefill_tokens, prompt_counted_.shared_prefill_tokens);
}

uint64_t CompletionSeed(uint64_t seed, uint32_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(index) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

GenerationService::GenerationService(const LlamaModel* model, const Tokenizer* tokenizer, Sampler* sampler,
                                     AdapterRegistry* registry, GenerationLimits limits)
    : model_(model), tokenizer_(tokenizer), sampler_(sampler), registry_(registry), limits_(limits) {}

absl::StatusOr<std::vector<int32_t>> GenerationService::EncodePrompt(const v1::Prompt& prompt) const {
  switch (prompt.input_case()) {
    case v1::Prompt::kText:
      if (tokenizer_ == nullptr) {
        return absl::InvalidArgumentError("prompt.text: this model has no tokenizer; send prompt.token_ids");
      }
      return tokenizer_->Encode(prompt.text(), prompt.has_add_special_tokens() ? prompt.add_special_tokens() : true);
    case v1::Prompt::kTokenIds:
      return std::vector<int32_t>(prompt.token_ids().ids().begin(), prompt.token_ids().ids().end());
    default:
      return absl::InvalidArgumentError("prompt: required");
  }
}

absl::Status GenerationService::Validate(const v1::GenerateRequest& request, std::vector<int32_t>* prompt) const {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  absl::StatusOr<std::vector<int32_t>> encoded = EncodePrompt(request.prompt());
  if (!encoded.ok()) return encoded.status();
  *prompt = std::move(*encoded);
  if (prompt->empty()) return bad("prompt: empty");
  if (static_cast<int>(prompt->size()) > limits_.max_prompt_tokens) {
    return bad("prompt: ", prompt->size(), " tokens exceeds max_prompt_tokens ", limits_.max_prompt_tokens);
  }
  const int64_t vocab = model_->config().vocab_size;
  for (std::size_t i = 0; i < prompt->size(); ++i) {
    if ((*prompt)[i] < 0 || (*prompt)[i] >= vocab) {
      return bad("prompt.token_ids[", i, "]: ", (*prompt)[i], " is outside the vocabulary [0, ", vocab, ")");
    }
  }
  if (static_cast<int>(request.n()) > limits_.max_n) return bad("n: ", request.n(), " exceeds max_n ", limits_.max_n);
  if (static_cast<int>(request.params().max_tokens()) > limits_.max_completion_tokens) {
    return bad("params.max_tokens: ", request.params().max_tokens(), " exceeds max_completion_tokens ",
               limits_.max_completion_tokens);
  }
  const auto role = request.adapter_role();
  if (role == v1::ADAPTER_ROLE_UNSPECIFIED) return bad("adapter_role: unspecified");
  if (!v1::AdapterRole_IsValid(role)) return bad("adapter_role: unknown value ", static_cast<int>(role));
  const v1::SamplingParams& p = request.params();
  if (p.has_temperature() && !(p.temperature() >= 0 && p.temperature() <= 2)) {
    return bad("params.temperature: ", p.temperature(), " is out of range [0, 2]");
  }
  if (!(p.top_p() >= 0 && p.top_p() <= 1)) return bad("params.top_p: ", p.top_p(), " is out of range (0, 1]");
  if (!(p.min_p() >= 0 && p.min_p() < 1)) return bad("params.min_p: ", p.min_p(), " is out of range [0, 1)");
  if (!p.stop().empty() && tokenizer_ == nullptr) return bad("params.stop: this model has no tokenizer");
  return absl::OkStatus();
}

absl::Status GenerationService::Start(const v1::GenerateRequest& request, absl::Time deadline, Callbacks callbacks) {
  std::vector<int32_t> prompt;
  if (absl::Status s = Validate(request, &prompt); !s.ok()) return s;
  if (Holds(request.adapter_role(), request.min_adapter_version())) {
    Launch(request, std::move(prompt), std::move(callbacks));
    return absl::OkStatus();
  }
  // Wait for the version on the waiters' thread (never block a reactor).
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the worker is shutting down");
  if (waiting_.size() >= kMaxWaiting) {
    return absl::ResourceExhaustedError(absl::StrCat("min_adapter_version: ", kMaxWaiting,
                                                     " requests already wait for adapter versions"));
  }
  waiting_.push_back(Waiter{request, std::move(prompt), std::move(callbacks), deadline});
  if (!waiter_thread_.joinable()) waiter_thread_ = std::thread([this] { WaitLoop(); });
  return absl::OkStatus();
}

GenerationService::~GenerationService() {
  std::deque<Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (waiter_thread_.joinable()) waiter_thread_.join();
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiting_);
  }
  for (Waiter& w : left) {
    w.callbacks.on_done(absl::UnavailableError("the worker shut down before the adapter version arrived"),
                        v1::GenerateSummary());
  }
}

bool GenerationService::Holds(v1::AdapterRole role, uint64_t min_version) const {
  if (role == v1::ADAPTER_ROLE_BASE) return min_version == 0;
  auto versions = registry_->versions();
  auto it = versions.find(role);
  return it != versions.end() && it->second >= min_version;
}

void GenerationService::WaitLoop() {
  while (true) {
    std::vector<Waiter> ready, expired;
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Milliseconds(20));
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (Holds(it->request.adapter_role(), it->request.min_adapter_version())) {
          ready.push_back(std::move(*it));
        } else if (now >= it->deadline) {
          expired.push_back(std::move(*it));
        } else {
          ++it;
          continue;
        }
        it = waiting_.erase(it);
      }
    }
    for (Waiter& w : ready) Launch(w.request, std::move(w.prompt), std::move(w.callbacks));
    for (Waiter& w : expired) {
      w.callbacks.on_done(
          absl::DeadlineExceededError(absl::StrCat("adapter ", v1::AdapterRole_Name(w.request.adapter_role()),
                                                   " version ", w.request.min_adapter_version(), " did not arrive")),
          v1::GenerateSummary());
    }
  }
}

void GenerationService::Launch(const v1::GenerateRequest& request, std::vector<int32_t> prompt, Callbacks callbacks) {
  absl::StatusOr<AdapterLease> lease = registry_->Acquire(request.adapter_role());
  if (!lease.ok()) {
    callbacks.on_done(lease.status(), v1::GenerateSummary());
    return;
  }
  const v1::SamplingParams& p = request.params();
  SamplingParams params;
  params.temperature = p.has_temperature() ? p.temperature() : 1.0;
  params.top_k = static_cast<int>(p.top_k());
  params.top_p = p.top_p() > 0 ? p.top_p() : 1.0;
  params.min_p = p.min_p();
  // Unset: the default, within what the context leaves after the prompt (as vLLM does).
  params.max_tokens =
      p.max_tokens() > 0
          ? static_cast<int>(p.max_tokens())
          : static_cast<int>(std::max<int64_t>(
                1, std::min<int64_t>(limits_.default_max_tokens,
                                     sampler_->max_len() - static_cast<int64_t>(prompt.size()))));
  params.stop.assign(p.stop().begin(), p.stop().end());
  params.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  params.ignore_eos = p.ignore_eos();
  params.include_stop_str_in_output = p.include_stop_str_in_output();
  const uint64_t seed = p.has_seed() ? p.seed() : std::random_device{}() * 0x100000001ULL;
  const uint32_t n = request.n() == 0 ? 1 : request.n();

  struct Group {
    absl::Mutex mu;
    uint32_t remaining;
    bool caller_gone = false;
    absl::Status status;
    int64_t tokens = 0;
    uint64_t prompt_tokens = 0;
  };
  auto group = std::make_shared<Group>();
  group->remaining = n;
  group->prompt_tokens = prompt.size();
  auto shared_callbacks = std::make_shared<Callbacks>(std::move(callbacks));
  const AdapterLease pinned = *lease;
  const std::string request_id = request.request_id();
  const bool logprobs = p.return_logprobs();
  for (uint32_t i = 0; i < n; ++i) {
    SampleRequest sample;
    sample.prompt = prompt;
    sample.params = params;
    sample.params.seed = CompletionSeed(seed, i);
    sample.adapter = pinned.index;
    const uint64_t completion_seed = sample.params.seed;
    auto finish_one = [this, group, shared_callbacks, pinned, request_id, n](absl::Status status) {
      bool last = false;
      {
        absl::MutexLock lock(&group->mu);
        if (!status.ok() && group->status.ok()) group->status = status;
        last = --group->remaining == 0;
      }
      if (!last) return;
      registry_->Release(pinned);
      v1::GenerateSummary summary;
      summary.set_request_id(request_id);
      summary.mutable_adapter()->set_role(pinned.role);
      summary.mutable_adapter()->set_version(pinned.version);
      summary.mutable_stats()->set_completion_tokens(group->tokens);
      summary.mutable_stats()->set_completions(n);
      summary.mutable_stats()->set_prompt_tokens(group->prompt_tokens * n);
      shared_callbacks->on_done(group->status, summary);
    };
    absl::Status submitted = sampler_->Submit(
        std::move(sample), [this, i, group, shared_callbacks, pinned, completion_seed, logprobs,
                            finish_one](absl::StatusOr<SampleResult> result) {
          if (!result.ok()) {
            finish_one(result.status());
            return;
          }
          v1::Completion c;
          c.set_index(i);
          c.mutable_token_ids()->Add(result->tokens.begin(), result->tokens.end());
          c.set_text(result->text);
          if (logprobs) c.mutable_logprobs()->Add(result->logprobs.begin(), result->logprobs.end());
          c.set_adapter_role(pinned.role);
          c.set_adapter_version(pinned.version);
          c.set_finish_reason(WireFinishReason(result->finish_reason));
          c.set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
          c.set_stop_reason(result->stop);
          if (result->finish_reason == FinishReason::kStopToken) c.set_stop_token_id(result->tokens.back());
          c.set_seed(completion_seed);
          completions_.fetch_add(1);
          generated_tokens_.fetch_add(static_cast<int64_t>(result->tokens.size()));
          if (tokens_counter_ != nullptr) {
            tokens_counter_->WithLabels({AdapterRoleName(pinned.role)})
                .Increment(static_cast<double>(result->tokens.size()));
          }
          CountPromptTokens();
          bool report = false;
          {
            absl::MutexLock lock(&group->mu);
            group->tokens += static_cast<int64_t>(result->tokens.size());
            report = !group->caller_gone;
          }
          if (report && !shared_callbacks->on_completion(std::move(c))) {
            absl::MutexLock lock(&group->mu);
            group->caller_gone = true;
          }
          finish_one(absl::OkStatus());
        });
    if (!submitted.ok()) finish_one(submitted);
  }
}

}  // namespace dsm
