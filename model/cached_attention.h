// Attention of a cached forward's new queries over the slotted KV cache (model/kv_cache.h), on
// the CPU in float32, one query at a time: row b's query t, at position starts[b] + t, attends to
// keys 0 … starts[b] + t of slot slots[b], read where they lie in the cache (no gather of the
// rows' caches, no [B, T, S] mask). Every output is one fixed sequence of operations over that
// row's own keys and values, so it does not depend on the other rows (see model/row_kernels.h);
// and a decode step does in one pass what LibTorch 1.13's CPU bmm does as a loop of one small
// matrix product per (row, head), which was most of a tiny model's decode step.
#ifndef DSM_MODEL_CACHED_ATTENTION_H_
#define DSM_MODEL_CACHED_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace dsm {

//   q             [B, H, T, head_dim] float32 (any strides), the new tokens' queries (RoPE applied)
//   keys, values  [slots, KV, max_len, head_dim] float32, H % KV == 0, holding every row's keys
//                 and values up to and including its new tokens
//   slots, starts, counts  per row: its slot, the cached length before this forward, and how
//                 many of its T query positions are real (the rest are padding)
// Returns [B, T, H * head_dim] float32; a row's padding positions are zeros.
torch::Tensor CachedAttention(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                              const std::vector<int64_t>& slots, const std::vector<int64_t>& starts,
                              const std::vector<int64_t>& counts);

}  // namespace dsm

#endif  // DSM_MODEL_CACHED_ATTENTION_H_
