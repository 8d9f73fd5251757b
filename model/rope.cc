#include "model/rope.h"

#include <cmath>

namespace dsm {

torch::Tensor RopeInverseFrequencies(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  // 1 / theta^(arange(0, dim, 2) / dim), in float32 like transformers.
  torch::Tensor exponents = torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(config.rope_theta, exponents);
  if (!config.rope_scaling.has_value()) return inv_freq;
  const RopeScaling& rs = *config.rope_scaling;
  if (rs.rope_type == "linear") return inv_freq / rs.factor;
  // rope_type == "llama3" (the only other type ModelConfig accepts).
  const double old_context_len = static_cast<double>(rs.original_max_position_embeddings);
  const double low_freq_wavelen = old_context_len / rs.low_freq_factor;
  const double high_freq_wavelen = old_context_len / rs.high_freq_factor;
  torch::Tensor wavelen = (2 * M_PI) / inv_freq;
  torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
  torch::Tensor smooth = (old_context_len / wavelen - rs.low_freq_factor) /
                         (rs.high_freq_factor - rs.low_freq_factor);
  torch::Tensor smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
  torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

RotaryEmbedding::RotaryEmbedding(const ModelConfig& config, torch::Device device)
    : inv_freq_(RopeInverseFrequencies(config).to(device)) {}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::CosSin(const torch::Tensor& positions,
                                                                torch::ScalarType dtype) const {
  torch::Tensor freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, dim/2]
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor RotaryEmbedding::Apply(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);
  torch::Tensor x2 = x.narrow(-1, half, half);
  torch::Tensor rotated = torch::cat({-x2, x1}, -1);
  torch::Tensor c = cos.unsqueeze(1);  // broadcast over heads
  torch::Tensor s = sin.unsqueeze(1);
  return x * c + rotated * s;
}

}  // namespace dsm
