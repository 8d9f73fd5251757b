#include "model/kv_cache.h"

#include "absl/strings/str_cat.h"

namespace dsm {

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const ModelConfig& config, int64_t num_slots,
                                                         int64_t max_len, torch::ScalarType dtype,
                                                         torch::Device device) {
  if (num_slots <= 0) return absl::InvalidArgumentError(absl::StrCat("KvCache: num_slots ", num_slots, " must be positive"));
  if (max_len <= 0) return absl::InvalidArgumentError(absl::StrCat("KvCache: max_len ", max_len, " must be positive"));
  std::unique_ptr<KvCache> cache(new KvCache());
  cache->max_len_ = max_len;
  cache->kv_heads_ = config.num_key_value_heads;
  cache->head_dim_ = config.head_dim;
  cache->dtype_ = dtype;
  cache->device_ = device;
  cache->lengths_.assign(static_cast<size_t>(num_slots), 0);
  try {
    auto options = torch::TensorOptions().dtype(dtype).device(device);
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      cache->keys_.push_back(torch::zeros({num_slots, cache->kv_heads_, max_len, cache->head_dim_}, options));
      cache->values_.push_back(torch::zeros({num_slots, cache->kv_heads_, max_len, cache->head_dim_}, options));
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("allocating the KV cache (", num_slots, " slots x ",
                                                     max_len, " tokens): ", e.what_without_backtrace()));
  }
  return cache;
}

int64_t KvCache::bytes() const {
  int64_t total = 0;
  for (const torch::Tensor& t : keys_) total += t.numel() * t.element_size();
  for (const torch::Tensor& t : values_) total += t.numel() * t.element_size();
  return total;
}

void KvCache::Truncate(int64_t slot, int64_t length) {
  int64_t& current = lengths_.at(static_cast<size_t>(slot));
  TORCH_CHECK(length >= 0 && length <= current, "KvCache::Truncate: length ", length, " outside [0, ", current, "]");
  current = length;
}

void KvCache::Advance(int64_t slot, int64_t n) {
  int64_t& current = lengths_.at(static_cast<size_t>(slot));
  TORCH_CHECK(n >= 0 && current + n <= max_len_, "KvCache::Advance: ", current, " + ", n, " exceeds max_len ", max_len_);
  current += n;
}

}  // namespace dsm
