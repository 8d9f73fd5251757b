// A Llama-family causal LM (Llama, DeepSeek-LLM/Math, Qwen2, Qwen3) held as
// plain tensors with an explicit forward, plus named LoRA adapters chosen per
// row of a batch.
//
// Two forwards:
//  * Forward(): inference with a slotted KvCache (prefill, decode, or both
//    mixed in one ragged batch) for the sampler. Runs without autograd.
//  * Logits() / HiddenStates(): a full-sequence forward without cache for the
//    learner. Runs under the caller's grad mode: base weights never require
//    grad, adapter tensors do when the caller set them trainable.
//
// Adapters: rows of a batch name an adapter index (from AddAdapter) or -1 for
// the base model (the GRPO reference policy: no second copy of the weights).
//
// Thread safety: the forwards are const and may run concurrently (each with
// its own KvCache). AddAdapter/RemoveAdapter/Merge/Unmerge mutate the model and
// must not overlap any forward: the sampler calls them between batches.
#ifndef DSM_MODEL_LLAMA_MODEL_H_
#define DSM_MODEL_LLAMA_MODEL_H_

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/kv_cache.h"
#include "model/lora.h"
#include "model/model_config.h"
#include "model/rope.h"

namespace dsm {

// Sets LibTorch's intra-op threads; inter-op threads too when > 0 (LibTorch
// allows that only once per process, before any parallel work: a later call
// returns FailedPrecondition).
absl::Status SetTorchThreads(int intra_op_threads, int inter_op_threads = 0);

// Parses "float32"/"fp32"/"f32", "bfloat16"/"bf16", "float16"/"fp16"/"half".
absl::StatusOr<torch::ScalarType> ParseModelDtype(const std::string& name);

struct LoadModelOptions {
  torch::ScalarType dtype = torch::kFloat;  // kFloat, kBFloat16 or kHalf
  torch::Device device = torch::kCPU;
};

// One row-batch for LlamaModel::Forward.
struct CachedBatch {
  torch::Tensor ids;                // [B, T] int64 token ids, right-padded per row
  std::vector<int64_t> slots;       // B distinct cache slots (row b continues slot b's sequence)
  std::vector<int64_t> num_tokens;  // B new tokens per row, 1..T; empty = T for every row
  std::vector<int> adapters;        // B adapter indices, -1 = base; empty = base for every row
};

enum class LogitsSelect {
  kAll,   // [B, T, vocab]; rows' padded positions hold garbage
  kLast,  // [B, vocab]: the last new token of each row (what a sampler needs)
};

struct ForwardOptions {
  bool training = false;  // applies LoRA dropout
  // The row kernels (model/row_kernels.h, model/cached_attention.h): float32 on the CPU, no
  // autograd; a row's result does not depend on the rest of the batch. The cached Forward (the
  // sampler's) takes them wherever they apply.
  bool row_kernels = false;
};

class LlamaModel {
 public:
  // Reads `dir`/config.json and the safetensors weights, converting to
  // options.dtype on options.device. Errors name the tensor.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const std::string& dir,
                                                          const LoadModelOptions& options = {});

  const ModelConfig& config() const { return config_; }
  torch::ScalarType dtype() const { return dtype_; }
  torch::Device device() const { return device_; }

  // Creates a cache for this model in its dtype and device.
  absl::StatusOr<std::unique_ptr<KvCache>> NewKvCache(int64_t num_slots, int64_t max_len) const;

  // Cached inference forward. Row b's tokens ids[b, :num_tokens[b]] continue
  // the sequence in cache slot slots[b] at positions length(slot)...; they are
  // written to the cache and the slot advanced. Attention is causal within
  // each row's own slot. Returns float32 logits (see LogitsSelect).
  // Errors (nothing written): bad shapes, ids outside the vocabulary, slots
  // out of range or repeated, a slot overflowing max_len, unknown adapters.
  absl::StatusOr<torch::Tensor> Forward(const CachedBatch& batch, KvCache& cache,
                                        LogitsSelect select = LogitsSelect::kAll) const;

  // Full-sequence forward, no cache. ids [B, T] int64; attention_mask [B, T]
  // (1 = token, 0 = padding; undefined = all tokens). Positions count real
  // tokens only, so left- or right-padded rows give the same logits as
  // unpadded ones. adapters: B indices or empty (= base). Returns float32
  // logits [B, T, vocab] (padded positions: garbage, finite).
  absl::StatusOr<torch::Tensor> Logits(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                       const std::vector<int>& adapters = {},
                                       const ForwardOptions& options = {}) const;
  // Same, stopping before the LM head: final-normed hidden states [B, T, hidden]
  // in the model dtype (a learner can then project chunk by chunk with LmHead).
  absl::StatusOr<torch::Tensor> HiddenStates(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                             const std::vector<int>& adapters = {},
                                             const ForwardOptions& options = {}) const;
  // The final-normed hidden states at `at` only: [B, S] int64 positions into T (row b's
  // at[b, s], any order, repeats allowed) -> [B, S, hidden], the values HiddenStates gives there,
  // for less work: the last layer's queries, attention, output projection and MLP run at those
  // positions only (its keys and values at every one). For a loss on a few positions of each row
  // (a completion after its prompt). Errors as HiddenStates, and `at` of another batch size or
  // with a position outside [0, T).
  absl::StatusOr<torch::Tensor> HiddenStatesAt(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                               const torch::Tensor& at, const std::vector<int>& adapters = {},
                                               const ForwardOptions& options = {}) const;
  // hidden [..., hidden] -> float32 logits [..., vocab].
  torch::Tensor LmHead(const torch::Tensor& hidden) const;

  // ---- adapters
  // Registers `adapter` under `name`; returns its index (stable until removed).
  // Fails if the name is taken or the adapter does not fit this model.
  absl::StatusOr<int> AddAdapter(const std::string& name, std::shared_ptr<LoraAdapter> adapter);
  // Frees the index (it is not reused). Fails if unknown or currently merged.
  absl::Status RemoveAdapter(int index);
  // Index of `name`, or -1.
  int AdapterIndex(const std::string& name) const;
  // nullptr when the index is not registered.
  std::shared_ptr<LoraAdapter> adapter(int index) const;
  // The adapter's trainable tensors (LoraAdapter::Parameters()); empty if unknown.
  std::vector<torch::Tensor> Parameters(int index) const;

  // Folds adapter `index` into the base weights (W += scaling * B A) so rows
  // using it run at base speed. A snapshot of A and B is kept: rows using the
  // base or another adapter still get exact results (the snapshot's delta is
  // subtracted for them), and Unmerge() subtracts the same snapshot. After
  // training the adapter further, Unmerge and Merge again. While merged,
  // rows with that adapter get no gradients: Logits() refuses them in grad
  // mode when its tensors require grad.
  absl::Status Merge(int index);
  // Restores the base weights (up to rounding in the model dtype).
  absl::Status Unmerge();
  // The merged adapter's index, or -1.
  int merged_adapter() const { return merged_index_; }

  // HF name -> weight tensor (aliases): "model.layers.0.self_attn.q_proj.weight", ...
  // Tied models have no "lm_head.weight".
  std::map<std::string, torch::Tensor> NamedWeights() const;

 private:
  struct Linear {
    torch::Tensor weight;  // [out, in]
    torch::Tensor bias;    // [out] or undefined
  };
  struct Layer {
    torch::Tensor input_norm;
    torch::Tensor post_norm;
    torch::Tensor q_norm;  // Qwen3 only
    torch::Tensor k_norm;
    std::array<Linear, kNumLoraTargets> proj;  // indexed by LoraTarget
  };
  // One group of rows sharing an adapter delta: y[rows] += sign * delta(x[rows]).
  struct LoraGroup {
    const LoraAdapter* adapter;
    torch::Tensor rows;  // int64 row indices; undefined = all rows
    double sign;
  };
  // Where the new keys/values of a cached forward go.
  struct CacheWrite;

  LlamaModel(const ModelConfig& config, torch::ScalarType dtype, torch::Device device);

  absl::Status LoadWeights(const std::string& dir);
  absl::StatusOr<std::vector<LoraGroup>> GroupRows(const std::vector<int>& adapters, int64_t batch) const;
  absl::Status CheckIds(const torch::Tensor& ids) const;
  torch::Tensor ApplyLinear(const torch::Tensor& x, int64_t layer, LoraTarget target,
                            const std::vector<LoraGroup>& groups, const ForwardOptions& options) const;
  // Runs embeddings and all layers; returns the final-normed hidden states ([B, T, hidden], or
  // [B, S, hidden] at `at` [B, S]: the last layer's queries there only; no cache then).
  torch::Tensor Body(const torch::Tensor& ids, const torch::Tensor& positions, const torch::Tensor& allowed,
                     const std::vector<LoraGroup>& groups, const ForwardOptions& options, CacheWrite* cache,
                     const torch::Tensor& at = torch::Tensor()) const;
  absl::StatusOr<torch::Tensor> FullForward(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                            const std::vector<int>& adapters, const ForwardOptions& options,
                                            bool logits, const torch::Tensor& at = torch::Tensor()) const;
  absl::Status ApplyMergeDelta(const LoraAdapter& adapter, double sign);

  ModelConfig config_;
  torch::ScalarType dtype_;
  torch::Device device_;
  RotaryEmbedding rope_;
  torch::Tensor embed_tokens_;  // [vocab, hidden]
  torch::Tensor final_norm_;
  torch::Tensor lm_head_;  // aliases embed_tokens_ when tied
  std::vector<Layer> layers_;

  struct NamedAdapter {
    std::string name;
    std::shared_ptr<LoraAdapter> adapter;  // null = removed
  };
  std::vector<NamedAdapter> adapters_;
  int merged_index_ = -1;
  std::unique_ptr<LoraAdapter> merged_snapshot_;
};

}  // namespace dsm

#endif  // DSM_MODEL_LLAMA_MODEL_H_
