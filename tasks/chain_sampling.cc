#include "tasks/chain_sampling.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/scoring/score_parser.h"
#include "services/scoring/wire_finish_reason.h"
#include "tasks/seeded_rng.h"

namespace dsm {

absl::StatusOr<std::vector<SampleResult>> SampleChainPrompts(const LlamaModel& model, const Tokenizer& tokenizer,
                                                             const std::vector<ChainPrompt>& prompts,
                                                             const ChainSamplingOptions& options) {
  if (options.max_batch < 1) return absl::InvalidArgumentError(absl::StrCat("max_batch: ", options.max_batch, " is under 1"));
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens: ", options.max_new_tokens, " is under 1"));
  }
  std::vector<SampleRequest> requests;
  requests.reserve(prompts.size());
  int64_t longest_prompt = 1;
  for (const ChainPrompt& p : prompts) {
    SampleRequest r;
    r.prompt = tokenizer.Encode(p.text, /*add_special_tokens=*/true);
    r.params.temperature = p.temperature;
    r.params.max_tokens = options.max_new_tokens;
    r.params.seed = p.seed;
    longest_prompt = std::max<int64_t>(longest_prompt, static_cast<int64_t>(r.prompt.size()));
    requests.push_back(std::move(r));
  }
  SamplerOptions sampler_options;
  sampler_options.max_batch = options.max_batch;
  sampler_options.max_len = longest_prompt + options.max_new_tokens;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler = Sampler::Create(&model, &tokenizer, sampler_options);
  if (!sampler.ok()) return sampler.status();
  torch::NoGradGuard no_grad;
  std::vector<absl::StatusOr<SampleResult>> results = (*sampler)->Generate(std::move(requests));
  std::vector<SampleResult> out;
  out.reserve(results.size());
  for (auto& r : results) {
    if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("sampling: ", r.status().message()));
    out.push_back(*std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<SampleResult>> SampleChainPromptsSideBySide(const std::vector<const LlamaModel*>& models,
                                                                       const std::vector<ReplicaThread*>& threads,
                                                                       const Tokenizer& tokenizer,
                                                                       const std::vector<ChainPrompt>& prompts,
                                                                       const ChainSamplingOptions& options) {
  if (models.empty() || models.size() != threads.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("side by side: ", models.size(), " models for ", threads.size(), " threads"));
  }
  const size_t n = models.size();
  std::vector<absl::StatusOr<std::vector<SampleResult>>> parts(n, std::vector<SampleResult>{});
  for (size_t r = 0; r < n; ++r) {
    threads[r]->Start([&, r] {
      const auto first = prompts.begin() + static_cast<std::ptrdiff_t>(prompts.size() * r / n);
      const auto last = prompts.begin() + static_cast<std::ptrdiff_t>(prompts.size() * (r + 1) / n);
      if (first == last) return;
      try {
        parts[r] = SampleChainPrompts(*models[r], tokenizer, std::vector<ChainPrompt>(first, last), options);
      } catch (const c10::Error& e) {
        parts[r] = absl::InternalError(e.what_without_backtrace());
      }
    });
  }
  for (ReplicaThread* t : threads) t->Wait();
  std::vector<SampleResult> all;
  all.reserve(prompts.size());
  for (absl::StatusOr<std::vector<SampleResult>>& part : parts) {
    if (!part.ok()) return part.status();
    for (SampleResult& result : *part) all.push_back(std::move(result));
  }
  return all;
}

absl::StatusOr<std::vector<std::string>> SampleChainProofs(const LlamaModel& model, const Tokenizer& tokenizer,
                                                           const ChainWarmupTemplates& templates,
                                                           const std::vector<ChainProblem>& problems,
                                                           double temperature, uint64_t seed,
                                                           const ChainSamplingOptions& options) {
  return SampleChainProofs(
      [&](const std::vector<ChainPrompt>& prompts) { return SampleChainPrompts(model, tokenizer, prompts, options); },
      templates, problems, temperature, seed);
}

absl::StatusOr<std::vector<std::string>> SampleChainProofs(const ChainPromptSampler& sample,
                                                           const ChainWarmupTemplates& templates,
                                                           const std::vector<ChainProblem>& problems,
                                                           double temperature, uint64_t seed) {
  std::vector<ChainPrompt> prompts;
  prompts.reserve(problems.size());
  for (const ChainProblem& p : problems) {
    prompts.push_back(ChainPrompt{MakeChainWarmupExample(templates, PromptRole::kGenerator, p, 1.0, 0).prompt,
                                  temperature, CombineSeeds(seed, p.seed)});
  }
  absl::StatusOr<std::vector<SampleResult>> results = sample(prompts);
  if (!results.ok()) return results.status();
  std::vector<std::string> proofs;
  proofs.reserve(results->size());
  for (const SampleResult& r : *results) {
    proofs.push_back(
        SplitGeneratorOutput(r.text, templates.generator.markers(), WireFinishReason(r.finish_reason)).proof);
  }
  return proofs;
}

}  // namespace dsm
