#include "model/sampling.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "model/row_kernels.h"

namespace dsm {

absl::Status SamplingParams::Validate() const {
  auto bad = [](const char* field, const std::string& value, const char* range) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is out of range ", range));
  };
  if (!(temperature >= 0 && temperature <= 100)) return bad("temperature", absl::StrCat(temperature), "[0, 100]");
  if (top_k < 0) return bad("top_k", absl::StrCat(top_k), "[0, vocab] (0 = off)");
  if (!(top_p > 0 && top_p <= 1)) return bad("top_p", absl::StrCat(top_p), "(0, 1]");
  if (!(min_p >= 0 && min_p < 1)) return bad("min_p", absl::StrCat(min_p), "[0, 1)");
  if (max_tokens < 1) return bad("max_tokens", absl::StrCat(max_tokens), "[1, max_completion_tokens]");
  for (const std::string& s : stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop: empty stop strings are not allowed");
  }
  return absl::OkStatus();
}

double SequenceUniform(uint64_t seed, uint64_t step) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  const uint64_t bits = mix(mix(seed) ^ (step * 0xd1b54a32d192ed03ULL));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;  // 53 random bits
}

TokenChoice ChooseTokens(const torch::Tensor& logits, const std::vector<const SamplingParams*>& params,
                         const std::vector<uint64_t>& steps) {
  torch::NoGradGuard no_grad;
  const int64_t batch = logits.size(0);
  const int64_t vocab = logits.size(1);
  TokenChoice choice;
  choice.tokens.resize(batch);
  choice.logprobs.resize(batch);

  // Per-row temperature (greedy rows use 1 so their log-probs are of the raw logits).
  std::vector<float> inv_temperature(batch);
  bool any_sampled = false;
  for (int64_t b = 0; b < batch; ++b) {
    const SamplingParams& p = *params[b];
    inv_temperature[b] = p.temperature > 0 ? static_cast<float>(1.0 / p.temperature) : 1.0f;
    any_sampled |= p.temperature > 0;
  }
  const torch::Tensor scale =
      torch::from_blob(inv_temperature.data(), {batch, 1}, torch::kFloat).to(logits.device());
  const torch::Tensor scaled = logits.to(torch::kFloat) * scale;
  const torch::Tensor logprobs = torch::log_softmax(scaled, -1);
  const torch::Tensor greedy = std::get<1>(scaled.max(-1));

  std::vector<int64_t> chosen(batch);
  torch::Tensor sampled_cpu;
  if (any_sampled) {
    // Inverse-CDF sampling over probabilities sorted in descending order (for
    // every sampled row alike, so a row's token never depends on its
    // neighbours' parameters): the first token whose cumulative probability
    // exceeds u × the kept mass.
    // Each row's probabilities the same bits in any batch (model/row_kernels.h) where the row
    // kernels apply: LibTorch's exp takes another function for a tensor's last elements.
    const bool rows = RowKernelsApply(logprobs.scalar_type(), logprobs.device());
    auto sorted = (rows ? RowExp(logprobs) : logprobs.exp()).sort(-1, /*descending=*/true);
    torch::Tensor probs = std::get<0>(sorted);
    const torch::Tensor order = std::get<1>(sorted);
    const torch::Tensor cumulative = probs.cumsum(-1);
    const torch::Tensor rank = torch::arange(vocab, probs.options().dtype(torch::kLong)).unsqueeze(0);
    std::vector<float> top_p(batch), min_p(batch);
    std::vector<int64_t> top_k(batch);
    for (int64_t b = 0; b < batch; ++b) {
      const SamplingParams& p = *params[b];
      top_k[b] = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
      top_p[b] = static_cast<float>(p.top_p);
      min_p[b] = static_cast<float>(p.min_p);
    }
    const auto column = [&](auto& v, torch::ScalarType t) {
      return torch::from_blob(v.data(), {batch, 1}, t).to(probs.device());
    };
    // Keep a token if the tokens before it hold < top_p of the mass, it ranks
    // within top_k, and its probability is >= min_p × the best; always keep the best.
    torch::Tensor keep = (cumulative - probs) < column(top_p, torch::kFloat);
    keep = keep.logical_and(rank < column(top_k, torch::kLong));
    keep = keep.logical_and(probs >= probs.select(1, 0).unsqueeze(1) * column(min_p, torch::kFloat));
    keep.select(1, 0).fill_(true);
    probs = probs * keep.to(probs.dtype());
    std::vector<double> uniforms(batch);
    for (int64_t b = 0; b < batch; ++b) uniforms[b] = SequenceUniform(params[b]->seed, steps[b]);
    const torch::Tensor cdf = probs.to(torch::kDouble).cumsum(-1);
    const torch::Tensor u = torch::from_blob(uniforms.data(), {batch, 1}, torch::kDouble).to(cdf.device());
    const torch::Tensor target = u * cdf.select(1, vocab - 1).unsqueeze(1);
    const torch::Tensor position =
        torch::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).clamp_max(vocab - 1);
    sampled_cpu = order.gather(1, position).squeeze(1).cpu().contiguous();
  }
  const torch::Tensor greedy_cpu = greedy.cpu().contiguous();
  for (int64_t b = 0; b < batch; ++b) {
    chosen[b] = params[b]->temperature > 0 ? sampled_cpu.data_ptr<int64_t>()[b]
                                           : greedy_cpu.data_ptr<int64_t>()[b];
  }
  const torch::Tensor index = torch::from_blob(chosen.data(), {batch, 1}, torch::kLong).to(logprobs.device());
  const torch::Tensor chosen_logprobs = logprobs.gather(1, index).squeeze(1).cpu();
  for (int64_t b = 0; b < batch; ++b) {
    choice.tokens[b] = static_cast<int32_t>(chosen[b]);
    choice.logprobs[b] = chosen_logprobs[b].item<float>();
  }
  return choice;
}

}  // namespace dsm
