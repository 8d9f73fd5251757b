#include "model/attention.h"

#include <cmath>
#include <limits>

namespace dsm {

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  torch::Tensor h = x.to(torch::kFloat);
  torch::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

torch::Tensor GroupedQueryAttention(const torch::Tensor& q, const torch::Tensor& k,
                                    const torch::Tensor& v, const torch::Tensor& allowed) {
  const int64_t batch = q.size(0);
  const int64_t heads = q.size(1);
  const int64_t len = q.size(2);
  const int64_t head_dim = q.size(3);
  const int64_t kv_heads = k.size(1);
  const int64_t keys = k.size(2);
  const int64_t group = heads / kv_heads;
  // [B, KV, G*T, hd] x [B, KV, hd, S]: each kv head serves its G query heads
  // in one matmul, no repeat_kv copy of the keys.
  torch::Tensor qg = q.reshape({batch, kv_heads, group * len, head_dim});
  torch::Tensor scores = torch::matmul(qg, k.transpose(2, 3)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  scores = scores.to(torch::kFloat).view({batch, kv_heads, group, len, keys});
  torch::Tensor blocked = allowed.logical_not().view({batch, 1, 1, len, keys});
  scores = scores.masked_fill(blocked, std::numeric_limits<float>::lowest());
  torch::Tensor probs = torch::softmax(scores, -1).to(q.scalar_type());
  torch::Tensor out = torch::matmul(probs.view({batch, kv_heads, group * len, keys}), v);  // [B, KV, G*T, hd]
  return out.view({batch, heads, len, head_dim}).transpose(1, 2).reshape({batch, len, heads * head_dim});
}

}  // namespace dsm
