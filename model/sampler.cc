#include "model/sampler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace dsm {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStopToken: return "stop_token";
    case FinishReason::kStopString: return "stop_string";
    case FinishReason::kLength: return "length";
    case FinishReason::kAborted: return "aborted";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Sampler>> Sampler::Create(const LlamaModel* model, const Tokenizer* tokenizer,
                                                         const SamplerOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("sampler: no model");
  if (options.max_batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat("sampler max_batch: ", options.max_batch, " must be >= 1"));
  }
  if (options.max_len < 2) {
    return absl::InvalidArgumentError(absl::StrCat("sampler max_len: ", options.max_len, " must be >= 2"));
  }
  absl::StatusOr<std::unique_ptr<KvCache>> cache = model->NewKvCache(options.max_batch, options.max_len);
  if (!cache.ok()) return cache.status();
  return std::unique_ptr<Sampler>(new Sampler(model, tokenizer, options, std::move(*cache)));
}

Sampler::Sampler(const LlamaModel* model, const Tokenizer* tokenizer, const SamplerOptions& options,
                 std::unique_ptr<KvCache> cache)
    : model_(model), tokenizer_(tokenizer), options_(options), cache_(std::move(cache)) {
  eos_ids_ = model_->config().eos_token_ids;
  if (eos_ids_.empty() && tokenizer_ != nullptr && tokenizer_->eos_id()) eos_ids_.push_back(*tokenizer_->eos_id());
  for (int64_t slot = options_.max_batch - 1; slot >= 0; --slot) free_slots_.push_back(slot);
}

Sampler::~Sampler() {
  Stop();
  // Without a background thread, requests may still wait or run.
  std::vector<std::unique_ptr<Sequence>> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& seq : queue_) left.push_back(std::move(seq));
    queue_.clear();
  }
  for (auto& seq : running_) left.push_back(std::move(seq));
  running_.clear();
  for (auto& seq : left) {
    seq->reason = FinishReason::kAborted;
    seq->finished = true;
  }
  Finish(left);
}

absl::Status Sampler::Submit(SampleRequest request, Callback done) {
  if (request.prompt.empty()) return absl::InvalidArgumentError("prompt: must hold at least one token");
  const int64_t vocab = model_->config().vocab_size;
  for (std::size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("prompt[", i, "]: token id ", request.prompt[i],
                                                     " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  if (absl::Status s = request.params.Validate(); !s.ok()) return s;
  const int64_t needed = static_cast<int64_t>(request.prompt.size()) + request.params.max_tokens;
  if (needed > options_.max_len) {
    return absl::InvalidArgumentError(absl::StrCat("prompt tokens (", request.prompt.size(), ") + max_tokens (",
                                                   request.params.max_tokens, ") = ", needed,
                                                   " exceeds the sampler's max_len ", options_.max_len));
  }
  if (request.adapter != -1 && model_->adapter(request.adapter) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("adapter: no adapter with index ", request.adapter));
  }
  if (!request.params.stop.empty() && tokenizer_ == nullptr) {
    return absl::InvalidArgumentError("stop: stop strings need a tokenizer, and this model has none");
  }
  auto seq = std::make_unique<Sequence>();
  seq->request = std::move(request);
  seq->done = std::move(done);
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("sampler is stopping");
  queue_.push_back(std::move(seq));
  return absl::OkStatus();
}

void Sampler::Append(Sequence& seq, int32_t token, float logprob) {
  seq.tokens.push_back(token);
  seq.logprobs.push_back(logprob);
  const SamplingParams& p = seq.request.params;
  const bool eos = !p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  const bool stop_id = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end();
  if (tokenizer_ != nullptr) {
    const std::size_t before = seq.text.size();
    // The token that ends the sequence (EOS or a stop token) is not text, as in vLLM: a caller
    // that puts the completion in another prompt (an analysis the meta-verifier grades) must not
    // pass an end-of-sequence marker on.
    const bool hide_last = (eos || stop_id) && !p.include_stop_str_in_output;
    seq.text = tokenizer_->Decode(absl::MakeConstSpan(seq.tokens).subspan(0, seq.tokens.size() - (hide_last ? 1 : 0)),
                                  /*skip_special_tokens=*/false);
    // A stop string can only end in the newly decoded text.
    std::size_t longest = 0;
    for (const std::string& s : p.stop) longest = std::max(longest, s.size());
    const std::size_t from = before > longest ? before - longest : 0;
    std::size_t best = std::string::npos;
    for (const std::string& s : p.stop) {
      const std::size_t at = seq.text.find(s, from);
      if (at != std::string::npos && at < best) {
        best = at;
        seq.stop = s;
      }
    }
    if (best != std::string::npos) {
      seq.text.resize(p.include_stop_str_in_output ? best + seq.stop.size() : best);
      seq.reason = FinishReason::kStopString;
      seq.finished = true;
      return;
    }
  }
  if (eos || stop_id) {
    seq.reason = FinishReason::kStopToken;
    seq.finished = true;
  } else if (static_cast<int>(seq.tokens.size()) >= p.max_tokens) {
    seq.reason = FinishReason::kLength;
    seq.finished = true;
  }
}

void Sampler::Finish(std::vector<std::unique_ptr<Sequence>>& done_list) {
  for (auto& seq : done_list) {
    if (seq->slot >= 0) {
      cache_->Reset(seq->slot);
      free_slots_.push_back(seq->slot);
      seq->slot = -1;
    }
    SampleResult result;
    result.tokens = std::move(seq->tokens);
    result.logprobs = std::move(seq->logprobs);
    result.text = std::move(seq->text);
    result.finish_reason = seq->reason;
    result.stop = std::move(seq->stop);
    result.prompt_tokens = static_cast<int64_t>(seq->request.prompt.size());
    result.adapter = seq->request.adapter;
    if (seq->done) seq->done(std::move(result));
  }
  done_list.clear();
}

void Sampler::FailAll(std::vector<std::unique_ptr<Sequence>>& seqs, const absl::Status& status) {
  for (auto& seq : seqs) {
    if (seq->slot >= 0) {
      cache_->Reset(seq->slot);
      free_slots_.push_back(seq->slot);
      seq->slot = -1;
    }
    if (seq->done) seq->done(status);
  }
  seqs.clear();
}

void Sampler::CopyCache(int64_t from_slot, int64_t to_slot, int64_t length) {
  torch::NoGradGuard no_grad;
  for (int64_t layer = 0; layer < cache_->num_layers(); ++layer) {
    for (torch::Tensor* t : {&cache_->keys(layer), &cache_->values(layer)}) {
      t->select(0, to_slot).narrow(1, 0, length).copy_(t->select(0, from_slot).narrow(1, 0, length));
    }
  }
  cache_->Reset(to_slot);
  cache_->Advance(to_slot, length);
}

// Whether two requests' prompts have the same cache entries: the same prompt with the same adapter.
static bool SharesPrefill(const SampleRequest& a, const SampleRequest& b) {
  return a.adapter == b.adapter && a.prompt == b.prompt;
}

void Sampler::Prefill(std::vector<std::unique_ptr<Sequence>>& admitted) {
  // A prompt another sequence holds with the same adapter (the n samples of a request) is not run
  // through the model again:
  //  - held by a running sequence: its cache entries but the last are copied, and only the
  //    prompt's last token is run (for its logits);
  //  - held by one admitted earlier in this step: that one's entries and logits are copied.
  // On the row kernels (float32, CPU) a row gets the same bits alone or in any batch, and a token
  // the same bits whether its keys came from its own prefill or a copy: sharing changes no result
  // (sampler_test). Elsewhere it may change one by rounding, as batching does.
  const int64_t batch = static_cast<int64_t>(admitted.size());
  std::vector<int64_t> first_token(batch, 0);  // the prompt position each row's forward starts at
  std::vector<int64_t> sibling(batch, -1);     // the earlier admitted sequence whose prefill it takes
  std::vector<int64_t> run;                    // the admitted sequences run through the model
  std::vector<int64_t> row_of(batch);          // each one's row of the forward's logits
  int64_t tokens = 0, shared = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const SampleRequest& request = admitted[b]->request;
    const int64_t length = static_cast<int64_t>(request.prompt.size());
    for (int64_t r : run) {
      if (SharesPrefill(admitted[r]->request, request)) {
        sibling[b] = r;
        break;
      }
    }
    if (sibling[b] >= 0) {
      row_of[b] = row_of[sibling[b]];
      shared += length;
      continue;
    }
    for (const auto& donor : running_) {
      if (donor != nullptr && donor->slot >= 0 && length > 1 && SharesPrefill(donor->request, request)) {
        CopyCache(donor->slot, admitted[b]->slot, length - 1);
        first_token[b] = length - 1;
        break;
      }
    }
    tokens += length - first_token[b];
    shared += first_token[b];
    row_of[b] = static_cast<int64_t>(run.size());
    run.push_back(b);
  }
  const int64_t rows = static_cast<int64_t>(run.size());
  int64_t longest = 0;
  for (int64_t b : run) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(admitted[b]->request.prompt.size()) - first_token[b]);
  }
  torch::Tensor ids = torch::zeros({rows, longest}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  CachedBatch cb;
  for (int64_t r = 0; r < rows; ++r) {
    const Sequence& seq = *admitted[run[r]];
    const int64_t from = first_token[run[r]], length = static_cast<int64_t>(seq.request.prompt.size());
    for (int64_t t = from; t < length; ++t) ids_a[r][t - from] = seq.request.prompt[t];
    cb.slots.push_back(seq.slot);
    cb.num_tokens.push_back(length - from);
    cb.adapters.push_back(seq.request.adapter);
  }
  cb.ids = ids.to(model_->device());
  absl::StatusOr<torch::Tensor> logits = model_->Forward(cb, *cache_, LogitsSelect::kLast);
  if (!logits.ok()) {
    FailAll(admitted, logits.status());
    return;
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (sibling[b] >= 0) {
      CopyCache(admitted[sibling[b]]->slot, admitted[b]->slot,
                static_cast<int64_t>(admitted[b]->request.prompt.size()));
    }
  }
  const torch::Tensor all_logits =
      rows == batch ? *logits
                    : logits->index_select(0, torch::tensor(row_of, torch::kLong).to(logits->device()));
  std::vector<const SamplingParams*> params;
  std::vector<uint64_t> steps(batch, 0);
  for (const auto& seq : admitted) params.push_back(&seq->request.params);
  const TokenChoice choice = ChooseTokens(all_logits, params, steps);
  for (int64_t b = 0; b < batch; ++b) Append(*admitted[b], choice.tokens[b], choice.logprobs[b]);
  {
    absl::MutexLock lock(&mu_);
    counters_.prefill_tokens += tokens;
    counters_.shared_prefill_tokens += shared;
  }
  for (auto& seq : admitted) running_.push_back(std::move(seq));
  admitted.clear();
}

void Sampler::Decode() {
  // Every running, unfinished sequence feeds its last token.
  std::vector<Sequence*> rows;
  for (auto& seq : running_) {
    if (!seq->finished) rows.push_back(seq.get());
  }
  if (rows.empty()) return;
  const int64_t batch = static_cast<int64_t>(rows.size());
  std::vector<int64_t> last(batch);
  CachedBatch cb;
  std::vector<const SamplingParams*> params;
  std::vector<uint64_t> steps;
  for (int64_t b = 0; b < batch; ++b) {
    last[b] = rows[b]->tokens.back();
    cb.slots.push_back(rows[b]->slot);
    cb.adapters.push_back(rows[b]->request.adapter);
    params.push_back(&rows[b]->request.params);
    steps.push_back(rows[b]->tokens.size());
  }
  cb.ids = torch::from_blob(last.data(), {batch, 1}, torch::kLong).to(model_->device()).clone();
  absl::StatusOr<torch::Tensor> logits = model_->Forward(cb, *cache_, LogitsSelect::kLast);
  if (!logits.ok()) {
    std::vector<std::unique_ptr<Sequence>> failed;
    for (auto& seq : running_) {
      if (!seq->finished) failed.push_back(std::move(seq));
    }
    running_.erase(std::remove(running_.begin(), running_.end(), nullptr), running_.end());
    FailAll(failed, logits.status());
    return;
  }
  const TokenChoice choice = ChooseTokens(*logits, params, steps);
  for (int64_t b = 0; b < batch; ++b) Append(*rows[b], choice.tokens[b], choice.logprobs[b]);
  absl::MutexLock lock(&mu_);
  counters_.decode_tokens += batch;
}

void Sampler::RunPendingHooks() {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    hooks.swap(hooks_);
  }
  for (auto& fn : hooks) fn();
}

bool Sampler::Step() {
  RunPendingHooks();
  // Admit waiting requests into free slots, within the prefill token budget.
  std::vector<std::unique_ptr<Sequence>> admitted;
  {
    absl::MutexLock lock(&mu_);
    int64_t budget = options_.max_prefill_tokens;
    while (!queue_.empty() && !free_slots_.empty()) {
      const SampleRequest& next = queue_.front()->request;
      // The n samples of a request come one after another: a prompt the last admitted one shares
      // is not prefilled again (Prefill), so it costs no budget.
      const bool repeat = !admitted.empty() && SharesPrefill(admitted.back()->request, next);
      const int64_t n = repeat ? 0 : static_cast<int64_t>(next.prompt.size());
      if (!admitted.empty() && n > budget) break;
      budget -= n;
      admitted.push_back(std::move(queue_.front()));
      queue_.pop_front();
      admitted.back()->slot = free_slots_.back();
      free_slots_.pop_back();
    }
    if (admitted.empty() && running_.empty()) return false;
    ++counters_.steps;
  }
  // Sequences that were running before this step decode; new ones prefill
  // (which also yields their first token).
  Decode();
  if (!admitted.empty()) Prefill(admitted);

  std::vector<std::unique_ptr<Sequence>> done_list;
  for (auto& seq : running_) {
    if (seq->finished) done_list.push_back(std::move(seq));
  }
  running_.erase(std::remove(running_.begin(), running_.end(), nullptr), running_.end());
  {
    absl::MutexLock lock(&mu_);
    running_count_ = static_cast<int64_t>(running_.size());
  }
  Finish(done_list);
  return true;
}

std::vector<absl::StatusOr<SampleResult>> Sampler::Generate(std::vector<SampleRequest> requests) {
  std::vector<absl::StatusOr<SampleResult>> results(requests.size(),
                                                    absl::UnknownError("request did not finish"));
  std::size_t pending = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    absl::Status s = Submit(std::move(requests[i]), [&results, &pending, i](absl::StatusOr<SampleResult> r) {
      results[i] = std::move(r);
      --pending;
    });
    if (s.ok()) {
      ++pending;
    } else {
      results[i] = s;
    }
  }
  while (pending > 0 && Step()) {
  }
  return results;
}

void Sampler::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stopping_ || !queue_.empty() || !hooks_.empty() || running_count_ > 0;
        };
        mu_.Await(absl::Condition(&has_work));
        if (stopping_) return;
      }
      Step();
    }
  });
}

void Sampler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Sampler::RunBetweenSteps(std::function<void()> fn) {
  if (!thread_.joinable()) {
    fn();
    return;
  }
  absl::MutexLock lock(&mu_);
  hooks_.push_back(std::move(fn));
}

int64_t Sampler::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

int64_t Sampler::running() const {
  absl::MutexLock lock(&mu_);
  return running_count_;
}

Sampler::Counters Sampler::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace dsm
