// Rotary position embedding, Hugging Face convention (rotate_half over the two
// halves of each head), with the "linear" and "llama3" frequency scalings.
#ifndef DSM_MODEL_ROPE_H_
#define DSM_MODEL_ROPE_H_

#include <torch/torch.h>

#include <utility>

#include "model/model_config.h"

namespace dsm {

// inv_freq [head_dim / 2], float32 on CPU, computed like transformers'
// modeling_rope_utils (default / linear / llama3).
torch::Tensor RopeInverseFrequencies(const ModelConfig& config);

// Immutable after construction; safe to share between threads.
class RotaryEmbedding {
 public:
  RotaryEmbedding(const ModelConfig& config, torch::Device device);

  // cos and sin [B, T, head_dim] for integer positions [B, T], computed in
  // float32 and returned in `dtype`.
  std::pair<torch::Tensor, torch::Tensor> CosSin(const torch::Tensor& positions,
                                                 torch::ScalarType dtype) const;

  // x [B, heads, T, head_dim] -> x * cos + rotate_half(x) * sin.
  static torch::Tensor Apply(const torch::Tensor& x, const torch::Tensor& cos,
                             const torch::Tensor& sin);

  const torch::Tensor& inv_freq() const { return inv_freq_; }

 private:
  torch::Tensor inv_freq_;  // float32 on the model's device
};

}  // namespace dsm

#endif  // DSM_MODEL_ROPE_H_
