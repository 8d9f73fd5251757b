// The key/value cache of a LlamaModel, organised in slots: one slot holds one
// sequence, so sequences of different lengths decode together and a finished
// sequence's slot is reused (continuous batching).
//
// Per layer, keys and values are preallocated tensors
//   [num_slots, num_key_value_heads, max_len, head_dim]
// and each slot has a length (tokens stored). LlamaModel::Forward appends the
// new tokens of each row at its slot's length and advances it.
//
// Not thread-safe: one Forward at a time per cache. Owns its tensors.
#ifndef DSM_MODEL_KV_CACHE_H_
#define DSM_MODEL_KV_CACHE_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace dsm {

class KvCache {
 public:
  // Allocates (zero-filled) the cache for `config`; fails cleanly when out of memory.
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(const ModelConfig& config, int64_t num_slots,
                                                         int64_t max_len, torch::ScalarType dtype,
                                                         torch::Device device = torch::kCPU);

  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }
  int64_t num_slots() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t max_len() const { return max_len_; }
  int64_t num_key_value_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  torch::ScalarType dtype() const { return dtype_; }
  torch::Device device() const { return device_; }
  // Bytes held by keys and values of all layers.
  int64_t bytes() const;

  // Tokens stored in `slot`. Precondition: 0 <= slot < num_slots().
  int64_t length(int64_t slot) const { return lengths_.at(static_cast<size_t>(slot)); }
  const std::vector<int64_t>& lengths() const { return lengths_; }

  // Empties a slot for a new sequence (O(1): old entries are overwritten later).
  void Reset(int64_t slot) { Truncate(slot, 0); }
  // Forgets the tokens of `slot` from position `length` on.
  // Precondition: 0 <= length <= length(slot).
  void Truncate(int64_t slot, int64_t length);
  // Marks `n` more tokens of `slot` as stored (used by LlamaModel::Forward after
  // it wrote them). Precondition: length(slot) + n <= max_len().
  void Advance(int64_t slot, int64_t n);

  torch::Tensor& keys(int64_t layer) { return keys_.at(static_cast<size_t>(layer)); }
  torch::Tensor& values(int64_t layer) { return values_.at(static_cast<size_t>(layer)); }

 private:
  KvCache() = default;

  int64_t max_len_ = 0;
  int64_t kv_heads_ = 0;
  int64_t head_dim_ = 0;
  torch::ScalarType dtype_ = torch::kFloat;
  torch::Device device_ = torch::kCPU;
  std::vector<torch::Tensor> keys_;
  std::vector<torch::Tensor> values_;
  std::vector<int64_t> lengths_;
};

}  // namespace dsm

#endif  // DSM_MODEL_KV_CACHE_H_
