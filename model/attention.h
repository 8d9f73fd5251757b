// Attention building blocks of the Llama family, written like Hugging Face's
// eager implementation: RMSNorm in float32, softmax in float32, grouped-query
// attention without materialising repeat_kv.
#ifndef DSM_MODEL_ATTENTION_H_
#define DSM_MODEL_ATTENTION_H_

#include <torch/torch.h>

namespace dsm {

// LlamaRMSNorm: weight * (x / sqrt(mean(x^2) + eps)) with the normalisation in
// float32 and the result cast back to x's dtype before the weight.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Scaled dot-product attention with grouped-query heads.
//   q       [B, H, T, head_dim]
//   k, v    [B, KV, S, head_dim], H % KV == 0 (query head h uses kv head h / (H/KV))
//   allowed [B, T, S] bool: query t of row b may attend key s.
// A query with no allowed key gets a uniform average (finite, never NaN), like
// Hugging Face's finfo.min masking. Returns [B, T, H * head_dim] in q's dtype.
torch::Tensor GroupedQueryAttention(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const torch::Tensor& allowed);

}  // namespace dsm

#endif  // DSM_MODEL_ATTENTION_H_
