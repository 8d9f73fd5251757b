#include "model/llama_model.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/attention.h"
#include "model/cached_attention.h"
#include "model/row_kernels.h"
#include "model/safetensors.h"

namespace dsm {

using torch::indexing::Slice;

namespace {

std::string ShapeString(c10::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

constexpr LoraTarget kTargets[kNumLoraTargets] = {LoraTarget::kQ,    LoraTarget::kK,  LoraTarget::kV,
                                                  LoraTarget::kO,    LoraTarget::kGate,
                                                  LoraTarget::kUp,   LoraTarget::kDown};

std::string LayerPrefix(int64_t layer) { return absl::StrCat("model.layers.", layer, "."); }

std::string ProjName(int64_t layer, LoraTarget t) {
  return absl::StrCat(LayerPrefix(layer), LoraTargetGroup(t), ".", LoraTargetName(t));
}

}  // namespace

absl::Status SetTorchThreads(int intra_op_threads, int inter_op_threads) {
  if (intra_op_threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("torch threads: ", intra_op_threads, " must be >= 1"));
  }
  try {
    at::set_num_threads(intra_op_threads);
    if (inter_op_threads > 0) at::set_num_interop_threads(inter_op_threads);
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(absl::StrCat("setting torch threads: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::ScalarType> ParseModelDtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "f32") return torch::kFloat;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return torch::kHalf;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype \"", name, "\" is not supported (float32, bfloat16, float16)"));
}

// ------------------------------------------------------------------- loading

LlamaModel::LlamaModel(const ModelConfig& config, torch::ScalarType dtype, torch::Device device)
    : config_(config), dtype_(dtype), device_(device), rope_(config, device) {}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const std::string& dir,
                                                             const LoadModelOptions& options) {
  if (options.dtype != torch::kFloat && options.dtype != torch::kBFloat16 && options.dtype != torch::kHalf) {
    return absl::InvalidArgumentError(
        absl::StrCat("model dtype ", c10::toString(options.dtype), " is not supported (float32, bfloat16, float16)"));
  }
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  std::unique_ptr<LlamaModel> model;
  try {
    model.reset(new LlamaModel(*config, options.dtype, options.device));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": using device ", options.device.str(), ": ", e.what_without_backtrace()));
  }
  try {
    // Some builds lack kernels for a dtype on a device (LibTorch 1.13 has no
    // float16 matmul on CPU): say so now rather than at the first forward.
    auto probe = torch::ones({2, 2}, torch::TensorOptions().dtype(options.dtype).device(options.device));
    (void)torch::linear(probe, probe);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("model dtype ", c10::toString(options.dtype), " on ",
                                                   options.device.str(), " is not supported by this LibTorch (",
                                                   e.what_without_backtrace(), "); use float32 or bfloat16"));
  }
  absl::Status s = model->LoadWeights(dir);
  if (!s.ok()) return s;
  return model;
}

absl::Status LlamaModel::LoadWeights(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> ckpt = SafetensorsCheckpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  auto load = [&](const std::string& name, std::vector<int64_t> shape, torch::Tensor* out) -> absl::Status {
    const SafetensorsTensorInfo* info = (*ckpt)->Find(name);
    if (info == nullptr) return absl::NotFoundError(absl::StrCat(dir, ": missing tensor ", name));
    if (info->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat("loading ", name, ": shape ", ShapeString(info->shape),
                                                     ", config.json implies ", ShapeString(shape)));
    }
    if (!c10::isFloatingType(info->dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat("loading ", name, ": dtype ", c10::toString(info->dtype), " is not floating point"));
    }
    absl::StatusOr<torch::Tensor> t = (*ckpt)->Load(name, dtype_, device_);
    if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat("loading ", name, ": ", t.status().message()));
    *out = std::move(*t);
    return absl::OkStatus();
  };
  const ModelConfig& c = config_;
  absl::Status s = load("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, &embed_tokens_);
  if (s.ok()) s = load("model.norm.weight", {c.hidden_size}, &final_norm_);
  if (!s.ok()) return s;
  if (c.tie_word_embeddings) {
    lm_head_ = embed_tokens_;
  } else {
    s = load("lm_head.weight", {c.vocab_size, c.hidden_size}, &lm_head_);
    if (!s.ok()) return s;
  }
  layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    Layer& layer = layers_[static_cast<size_t>(l)];
    const std::string p = LayerPrefix(l);
    s = load(p + "input_layernorm.weight", {c.hidden_size}, &layer.input_norm);
    if (s.ok()) s = load(p + "post_attention_layernorm.weight", {c.hidden_size}, &layer.post_norm);
    if (s.ok() && c.qk_norm) {
      s = load(p + "self_attn.q_norm.weight", {c.head_dim}, &layer.q_norm);
      if (s.ok()) s = load(p + "self_attn.k_norm.weight", {c.head_dim}, &layer.k_norm);
    }
    for (LoraTarget t : kTargets) {
      if (!s.ok()) break;
      auto [out_features, in_features] = LoraTargetShape(c, t);
      Linear& lin = layer.proj[static_cast<int>(t)];
      const std::string name = ProjName(l, t);
      s = load(name + ".weight", {out_features, in_features}, &lin.weight);
      const bool biased = (t == LoraTarget::kQ || t == LoraTarget::kK || t == LoraTarget::kV) ? c.qkv_bias
                          : t == LoraTarget::kO                                             ? c.o_bias
                                                                                            : false;
      if (s.ok() && biased) s = load(name + ".bias", {out_features}, &lin.bias);
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::map<std::string, torch::Tensor> LlamaModel::NamedWeights() const {
  std::map<std::string, torch::Tensor> out;
  out["model.embed_tokens.weight"] = embed_tokens_;
  out["model.norm.weight"] = final_norm_;
  if (!config_.tie_word_embeddings) out["lm_head.weight"] = lm_head_;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    const std::string p = LayerPrefix(static_cast<int64_t>(l));
    out[p + "input_layernorm.weight"] = layer.input_norm;
    out[p + "post_attention_layernorm.weight"] = layer.post_norm;
    if (layer.q_norm.defined()) out[p + "self_attn.q_norm.weight"] = layer.q_norm;
    if (layer.k_norm.defined()) out[p + "self_attn.k_norm.weight"] = layer.k_norm;
    for (LoraTarget t : kTargets) {
      const Linear& lin = layer.proj[static_cast<int>(t)];
      const std::string name = ProjName(static_cast<int64_t>(l), t);
      out[name + ".weight"] = lin.weight;
      if (lin.bias.defined()) out[name + ".bias"] = lin.bias;
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<KvCache>> LlamaModel::NewKvCache(int64_t num_slots, int64_t max_len) const {
  return KvCache::Create(config_, num_slots, max_len, dtype_, device_);
}

// ------------------------------------------------------------------- forward

// New keys/values of a cached forward: valid token i is row rows[i], column
// cols[i]; it goes to cache slot slots[i] at position positions[i].
struct LlamaModel::CacheWrite {
  KvCache* cache;
  torch::Tensor rows, cols, slots, positions;  // [N] int64
  torch::Tensor row_slots;                     // [B] int64: slot of each row
  int64_t first_slot;                          // >= 0 when row_slots is first_slot, first_slot+1, ...
  int64_t kv_len;                              // keys attended: max over rows of length + new
  std::vector<int64_t> slot_list, starts, counts;  // per row: slot, cached length before, new tokens
};

absl::Status LlamaModel::CheckIds(const torch::Tensor& ids) const {
  if (ids.numel() == 0) return absl::OkStatus();
  const int64_t lo = ids.min().item<int64_t>();
  const int64_t hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= config_.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("token id ", lo < 0 ? lo : hi, " is outside the vocabulary [0, ",
                                                   config_.vocab_size, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LlamaModel::LoraGroup>> LlamaModel::GroupRows(const std::vector<int>& adapters,
                                                                        int64_t batch) const {
  std::vector<LoraGroup> groups;
  if (!adapters.empty() && static_cast<int64_t>(adapters.size()) != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapters: ", adapters.size(), " entries for a batch of ", batch, " rows"));
  }
  std::map<int, std::vector<int64_t>> rows_by_adapter;
  std::vector<int64_t> not_merged;
  for (int64_t b = 0; b < batch; ++b) {
    const int a = adapters.empty() ? -1 : adapters[static_cast<size_t>(b)];
    if (a != -1 && (a < 0 || a >= static_cast<int>(adapters_.size()) || adapters_[static_cast<size_t>(a)].adapter == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat("row ", b, ": adapter index ", a, " is not registered"));
    }
    rows_by_adapter[a].push_back(b);
    if (a != merged_index_) not_merged.push_back(b);
  }
  auto rows_tensor = [&](const std::vector<int64_t>& rows) {
    if (static_cast<int64_t>(rows.size()) == batch) return torch::Tensor();
    return torch::tensor(rows, torch::kLong).to(device_);
  };
  for (const auto& [a, rows] : rows_by_adapter) {
    if (a < 0 || a == merged_index_) continue;  // base, or already in the base weights
    groups.push_back({adapters_[static_cast<size_t>(a)].adapter.get(), rows_tensor(rows), 1.0});
  }
  if (merged_index_ >= 0 && !not_merged.empty()) {
    groups.push_back({merged_snapshot_.get(), rows_tensor(not_merged), -1.0});
  }
  return groups;
}

torch::Tensor LlamaModel::ApplyLinear(const torch::Tensor& x, int64_t layer, LoraTarget target,
                                      const std::vector<LoraGroup>& groups, const ForwardOptions& options) const {
  const Linear& lin = layers_[static_cast<size_t>(layer)].proj[static_cast<int>(target)];
  auto linear = [&](const torch::Tensor& in, const torch::Tensor& w, const torch::Tensor& bias) {
    return options.row_kernels && w.scalar_type() == torch::kFloat ? RowLinear(in, w, bias)
                                                                   : torch::linear(in, w, bias);
  };
  torch::Tensor y = linear(x, lin.weight, lin.bias);
  for (const LoraGroup& g : groups) {
    const LoraWeights* w = g.adapter->Find(layer, target);
    if (w == nullptr) continue;
    torch::Tensor xs = g.rows.defined() ? x.index_select(0, g.rows) : x;
    xs = xs.to(w->a.scalar_type());
    const double p = g.adapter->config().lora_dropout;
    if (options.training && p > 0 && g.sign > 0) xs = torch::dropout(xs, p, /*train=*/true);
    torch::Tensor delta = linear(linear(xs, w->a, {}), w->b, {}) * (g.adapter->scaling() * g.sign);
    delta = delta.to(y.scalar_type());
    y = g.rows.defined() ? y.index_add(0, g.rows, delta) : y + delta;
  }
  return y;
}

torch::Tensor LlamaModel::Body(const torch::Tensor& ids, const torch::Tensor& positions, const torch::Tensor& allowed,
                               const std::vector<LoraGroup>& groups, const ForwardOptions& options, CacheWrite* cache,
                               const torch::Tensor& at) const {
  const ModelConfig& c = config_;
  const int64_t batch = ids.size(0);
  const int64_t len = ids.size(1);
  torch::Tensor h = embed_tokens_.index_select(0, ids.reshape({-1})).view({batch, len, c.hidden_size});
  auto [cos, sin] = rope_.CosSin(positions, dtype_);
  auto norm = [&](const torch::Tensor& x, const torch::Tensor& weight) {
    return options.row_kernels ? RowRmsNorm(x, weight, c.rms_norm_eps) : RmsNorm(x, weight, c.rms_norm_eps);
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Layer& layer = layers_[static_cast<size_t>(l)];
    torch::Tensor x = norm(h, layer.input_norm);
    // The last layer with `at`: queries (and so everything after attention) at those positions
    // only, gathered from the full rows so each keeps its bits; keys and values everywhere.
    torch::Tensor xq = x, q_cos = cos, q_sin = sin, q_allowed = allowed;
    int64_t q_len = len;
    if (at.defined() && l == c.num_hidden_layers - 1) {
      auto pick = [&](const torch::Tensor& t) {
        return t.gather(1, at.unsqueeze(-1).expand({batch, at.size(1), t.size(-1)}));
      };
      xq = pick(x);
      q_cos = pick(cos);
      q_sin = pick(sin);
      q_allowed = pick(allowed);
      h = pick(h);
      q_len = at.size(1);
    }
    torch::Tensor q = ApplyLinear(xq, l, LoraTarget::kQ, groups, options).view({batch, q_len, -1, c.head_dim});
    torch::Tensor k = ApplyLinear(x, l, LoraTarget::kK, groups, options).view({batch, len, -1, c.head_dim});
    torch::Tensor v = ApplyLinear(x, l, LoraTarget::kV, groups, options).view({batch, len, -1, c.head_dim});
    if (c.qk_norm) {
      q = norm(q, layer.q_norm);
      k = norm(k, layer.k_norm);
    }
    q = RotaryEmbedding::Apply(q.transpose(1, 2), q_cos, q_sin);  // [B, H, T (or S), hd]
    k = RotaryEmbedding::Apply(k.transpose(1, 2), cos, sin);  // [B, KV, T, hd]
    v = v.transpose(1, 2);
    if (cache != nullptr) {
      torch::Tensor& kc = cache->cache->keys(l);  // [slots, KV, max_len, hd]
      torch::Tensor& vc = cache->cache->values(l);
      kc.index_put_({cache->slots, Slice(), cache->positions}, k.transpose(1, 2).index({cache->rows, cache->cols}));
      vc.index_put_({cache->slots, Slice(), cache->positions}, v.transpose(1, 2).index({cache->rows, cache->cols}));
      if (options.row_kernels) {
        k = kc;
        v = vc;
      } else if (cache->first_slot >= 0) {
        k = kc.narrow(0, cache->first_slot, batch).narrow(2, 0, cache->kv_len);
        v = vc.narrow(0, cache->first_slot, batch).narrow(2, 0, cache->kv_len);
      } else {
        k = kc.narrow(2, 0, cache->kv_len).index_select(0, cache->row_slots);
        v = vc.narrow(2, 0, cache->kv_len).index_select(0, cache->row_slots);
      }
    }
    torch::Tensor attn = cache != nullptr && options.row_kernels
                             ? CachedAttention(q, k, v, cache->slot_list, cache->starts, cache->counts)
                             : GroupedQueryAttention(q, k, v, q_allowed);
    h = h + ApplyLinear(attn, l, LoraTarget::kO, groups, options);
    x = norm(h, layer.post_norm);
    torch::Tensor gate = ApplyLinear(x, l, LoraTarget::kGate, groups, options);
    torch::Tensor up = ApplyLinear(x, l, LoraTarget::kUp, groups, options);
    const torch::Tensor act = options.row_kernels ? RowSiluMul(gate, up) : torch::silu(gate) * up;
    h = h + ApplyLinear(act, l, LoraTarget::kDown, groups, options);
  }
  return norm(h, final_norm_);
}

torch::Tensor LlamaModel::LmHead(const torch::Tensor& hidden) const {
  return torch::linear(hidden, lm_head_).to(torch::kFloat);
}

absl::StatusOr<torch::Tensor> LlamaModel::Forward(const CachedBatch& batch, KvCache& cache,
                                                  LogitsSelect select) const {
  const torch::Tensor& ids_in = batch.ids;
  if (!ids_in.defined() || ids_in.dim() != 2 || ids_in.size(0) == 0 || ids_in.size(1) == 0 ||
      (ids_in.scalar_type() != torch::kLong && ids_in.scalar_type() != torch::kInt)) {
    return absl::InvalidArgumentError("Forward: ids must be a non-empty [B, T] int64 tensor");
  }
  const int64_t rows = ids_in.size(0);
  const int64_t len = ids_in.size(1);
  if (static_cast<int64_t>(batch.slots.size()) != rows) {
    return absl::InvalidArgumentError(absl::StrCat("Forward: ", batch.slots.size(), " slots for ", rows, " rows"));
  }
  if (!batch.num_tokens.empty() && static_cast<int64_t>(batch.num_tokens.size()) != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("Forward: ", batch.num_tokens.size(), " num_tokens for ", rows, " rows"));
  }
  if (cache.num_layers() != config_.num_hidden_layers || cache.num_key_value_heads() != config_.num_key_value_heads ||
      cache.head_dim() != config_.head_dim || cache.dtype() != dtype_ || cache.device() != device_) {
    return absl::InvalidArgumentError("Forward: the KV cache was not made for this model (use NewKvCache)");
  }
  std::vector<int64_t> counts(static_cast<size_t>(rows));
  std::set<int64_t> seen;
  int64_t kv_len = 0;
  bool contiguous = true;
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t slot = batch.slots[static_cast<size_t>(b)];
    const int64_t n = batch.num_tokens.empty() ? len : batch.num_tokens[static_cast<size_t>(b)];
    if (slot < 0 || slot >= cache.num_slots()) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: row ", b, ": slot ", slot, " outside [0, ",
                                                     cache.num_slots(), ")"));
    }
    if (!seen.insert(slot).second) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: slot ", slot, " appears in two rows"));
    }
    if (n < 1 || n > len) {
      return absl::InvalidArgumentError(absl::StrCat("Forward: row ", b, ": num_tokens ", n, " outside [1, ", len, "]"));
    }
    if (cache.length(slot) + n > cache.max_len()) {
      return absl::OutOfRangeError(absl::StrCat("Forward: slot ", slot, ": ", cache.length(slot), " + ", n,
                                                " tokens exceed the cache's max_len ", cache.max_len()));
    }
    counts[static_cast<size_t>(b)] = n;
    kv_len = std::max(kv_len, cache.length(slot) + n);
    if (slot != batch.slots[0] + b) contiguous = false;
  }
  absl::StatusOr<std::vector<LoraGroup>> groups = GroupRows(batch.adapters, rows);
  if (!groups.ok()) return groups.status();
  try {
    torch::NoGradGuard no_grad;
    auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device_);
    std::vector<int64_t> starts(static_cast<size_t>(rows));
    std::vector<int64_t> w_rows, w_cols, w_slots, w_pos;
    for (int64_t b = 0; b < rows; ++b) {
      const int64_t slot = batch.slots[static_cast<size_t>(b)];
      starts[static_cast<size_t>(b)] = cache.length(slot);
      for (int64_t t = 0; t < counts[static_cast<size_t>(b)]; ++t) {
        w_rows.push_back(b);
        w_cols.push_back(t);
        w_slots.push_back(slot);
        w_pos.push_back(cache.length(slot) + t);
      }
    }
    torch::Tensor start = torch::tensor(starts, torch::kLong).to(device_);           // [B]
    torch::Tensor count = torch::tensor(counts, torch::kLong).to(device_);           // [B]
    torch::Tensor col = torch::arange(len, long_opts);                               // [T]
    torch::Tensor valid = col.unsqueeze(0) < count.unsqueeze(1);                     // [B, T]
    torch::Tensor ids = ids_in.to(long_opts).masked_fill(valid.logical_not(), 0);
    absl::Status ids_ok = CheckIds(ids);
    if (!ids_ok.ok()) return absl::InvalidArgumentError(absl::StrCat("Forward: ", ids_ok.message()));
    torch::Tensor positions = start.unsqueeze(1) + col.unsqueeze(0);                 // [B, T]
    ForwardOptions options;
    options.row_kernels = RowKernelsApply(dtype_, device_);
    torch::Tensor allowed;  // [B, T, S]: the row kernels need none
    if (!options.row_kernels) {
      allowed = torch::arange(kv_len, long_opts).view({1, 1, kv_len}) <= positions.unsqueeze(2);
    }

    CacheWrite write;
    write.cache = &cache;
    write.rows = torch::tensor(w_rows, torch::kLong).to(device_);
    write.cols = torch::tensor(w_cols, torch::kLong).to(device_);
    write.slots = torch::tensor(w_slots, torch::kLong).to(device_);
    write.positions = torch::tensor(w_pos, torch::kLong).to(device_);
    write.row_slots = torch::tensor(batch.slots, torch::kLong).to(device_);
    write.first_slot = contiguous ? batch.slots[0] : -1;
    write.kv_len = kv_len;
    write.slot_list = batch.slots;
    write.starts = starts;
    write.counts = counts;

    torch::Tensor hidden = Body(ids, positions, allowed, *groups, options, &write);
    for (int64_t b = 0; b < rows; ++b) cache.Advance(batch.slots[static_cast<size_t>(b)], counts[static_cast<size_t>(b)]);
    if (select == LogitsSelect::kLast) hidden = hidden.index({torch::arange(rows, long_opts), count - 1});  // [B, hidden]
    return options.row_kernels ? RowLinear(hidden, lm_head_) : LmHead(hidden);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("Forward: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<torch::Tensor> LlamaModel::FullForward(const torch::Tensor& ids_in, const torch::Tensor& attention_mask,
                                                      const std::vector<int>& adapters, const ForwardOptions& options,
                                                      bool logits, const torch::Tensor& at) const {
  if (!ids_in.defined() || ids_in.dim() != 2 || ids_in.size(0) == 0 || ids_in.size(1) == 0 ||
      (ids_in.scalar_type() != torch::kLong && ids_in.scalar_type() != torch::kInt)) {
    return absl::InvalidArgumentError("Logits: ids must be a non-empty [B, T] int64 tensor");
  }
  const int64_t rows = ids_in.size(0);
  const int64_t len = ids_in.size(1);
  if (attention_mask.defined() && attention_mask.sizes() != ids_in.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat("Logits: attention_mask shape ", ShapeString(attention_mask.sizes()),
                                                   " differs from ids shape ", ShapeString(ids_in.sizes())));
  }
  absl::StatusOr<std::vector<LoraGroup>> groups = GroupRows(adapters, rows);
  if (!groups.ok()) return groups.status();
  if (options.row_kernels && (torch::GradMode::is_enabled() || !RowKernelsApply(dtype_, device_))) {
    return absl::InvalidArgumentError(
        "Logits: row_kernels need float32 on the CPU and no autograd (they keep no gradients)");
  }
  if (merged_index_ >= 0 && torch::GradMode::is_enabled()) {
    const bool uses_merged = adapters.empty() ? false
                                              : std::find(adapters.begin(), adapters.end(), merged_index_) != adapters.end();
    const auto params = adapters_[static_cast<size_t>(merged_index_)].adapter->Parameters();
    if (uses_merged && !params.empty() && params.front().requires_grad()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Logits: adapter \"", adapters_[static_cast<size_t>(merged_index_)].name,
          "\" is merged into the base weights and would get no gradients; Unmerge() before training"));
    }
  }
  try {
    auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(device_);
    torch::Tensor mask = attention_mask.defined() ? attention_mask.to(device_).to(torch::kBool)
                                                  : torch::ones({rows, len}, long_opts.dtype(torch::kBool));
    torch::Tensor ids = ids_in.to(long_opts).masked_fill(mask.logical_not(), 0);
    absl::Status ids_ok = CheckIds(ids);
    if (!ids_ok.ok()) return absl::InvalidArgumentError(absl::StrCat("Logits: ", ids_ok.message()));
    torch::Tensor positions = (mask.to(torch::kLong).cumsum(1) - 1).clamp_min(0);
    torch::Tensor col = torch::arange(len, long_opts);
    torch::Tensor causal = col.view({1, 1, len}) <= col.view({1, len, 1});  // [1, T(query), T(key)]
    torch::Tensor allowed = causal.logical_and(mask.unsqueeze(1));          // [B, T, T]
    torch::Tensor hidden = Body(ids, positions, allowed, *groups, options, nullptr, at.defined() ? at.to(long_opts) : at);
    return logits ? LmHead(hidden) : hidden;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("Logits: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<torch::Tensor> LlamaModel::Logits(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                                 const std::vector<int>& adapters, const ForwardOptions& options) const {
  return FullForward(ids, attention_mask, adapters, options, /*logits=*/true);
}

absl::StatusOr<torch::Tensor> LlamaModel::HiddenStates(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                                       const std::vector<int>& adapters,
                                                       const ForwardOptions& options) const {
  return FullForward(ids, attention_mask, adapters, options, /*logits=*/false);
}

absl::StatusOr<torch::Tensor> LlamaModel::HiddenStatesAt(const torch::Tensor& ids, const torch::Tensor& attention_mask,
                                                         const torch::Tensor& at, const std::vector<int>& adapters,
                                                         const ForwardOptions& options) const {
  if (!at.defined() || at.dim() != 2 || (at.scalar_type() != torch::kLong && at.scalar_type() != torch::kInt) ||
      !ids.defined() || ids.dim() != 2 || at.size(0) != ids.size(0)) {
    return absl::InvalidArgumentError("HiddenStatesAt: at must be a [B, S] int64 tensor, B the rows of ids");
  }
  if (at.numel() > 0 && (at.min().item<int64_t>() < 0 || at.max().item<int64_t>() >= ids.size(1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("HiddenStatesAt: a position outside [0, ", ids.size(1), ") in at"));
  }
  return FullForward(ids, attention_mask, adapters, options, /*logits=*/false, at);
}

// ------------------------------------------------------------------ adapters

absl::StatusOr<int> LlamaModel::AddAdapter(const std::string& name, std::shared_ptr<LoraAdapter> adapter) {
  if (name.empty()) return absl::InvalidArgumentError("AddAdapter: empty name");
  if (adapter == nullptr) return absl::InvalidArgumentError(absl::StrCat("AddAdapter(\"", name, "\"): null adapter"));
  if (AdapterIndex(name) >= 0) {
    return absl::AlreadyExistsError(absl::StrCat("AddAdapter: an adapter named \"", name, "\" is registered"));
  }
  if (adapter->num_layers() != config_.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("AddAdapter(\"", name, "\"): ", adapter->num_layers(),
                                                   " layers, the model has ", config_.num_hidden_layers));
  }
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    for (LoraTarget t : kTargets) {
      const LoraWeights* w = adapter->Find(l, t);
      if (w == nullptr) continue;
      auto [out_features, in_features] = LoraTargetShape(config_, t);
      const int64_t r = w->a.size(0);
      if (w->a.sizes() != c10::IntArrayRef({r, in_features}) || w->b.sizes() != c10::IntArrayRef({out_features, r})) {
        return absl::InvalidArgumentError(absl::StrCat("AddAdapter(\"", name, "\"): ", ProjName(l, t), " A ",
                                                       ShapeString(w->a.sizes()), " B ", ShapeString(w->b.sizes()),
                                                       " do not fit [out ", out_features, ", in ", in_features, "]"));
      }
      if (w->a.device() != device_ || w->b.device() != device_) {
        return absl::InvalidArgumentError(absl::StrCat("AddAdapter(\"", name, "\"): tensors on ", w->a.device().str(),
                                                       ", the model is on ", device_.str()));
      }
    }
  }
  adapters_.push_back({name, std::move(adapter)});
  return static_cast<int>(adapters_.size()) - 1;
}

absl::Status LlamaModel::RemoveAdapter(int index) {
  if (index < 0 || index >= static_cast<int>(adapters_.size()) || adapters_[static_cast<size_t>(index)].adapter == nullptr) {
    return absl::NotFoundError(absl::StrCat("RemoveAdapter: no adapter ", index));
  }
  if (index == merged_index_) {
    return absl::FailedPreconditionError(absl::StrCat("RemoveAdapter: adapter ", index, " is merged; Unmerge() first"));
  }
  adapters_[static_cast<size_t>(index)] = {"", nullptr};
  return absl::OkStatus();
}

int LlamaModel::AdapterIndex(const std::string& name) const {
  for (size_t i = 0; i < adapters_.size(); ++i) {
    if (adapters_[i].adapter != nullptr && adapters_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::shared_ptr<LoraAdapter> LlamaModel::adapter(int index) const {
  if (index < 0 || index >= static_cast<int>(adapters_.size())) return nullptr;
  return adapters_[static_cast<size_t>(index)].adapter;
}

std::vector<torch::Tensor> LlamaModel::Parameters(int index) const {
  std::shared_ptr<LoraAdapter> a = adapter(index);
  return a == nullptr ? std::vector<torch::Tensor>{} : a->Parameters();
}

absl::Status LlamaModel::ApplyMergeDelta(const LoraAdapter& adapter, double sign) {
  try {
    torch::NoGradGuard no_grad;
    for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
      for (LoraTarget t : kTargets) {
        const LoraWeights* w = adapter.Find(l, t);
        if (w == nullptr) continue;
        torch::Tensor& weight = layers_[static_cast<size_t>(l)].proj[static_cast<int>(t)].weight;
        torch::Tensor delta = torch::matmul(w->b.to(torch::kFloat), w->a.to(torch::kFloat)) * (adapter.scaling() * sign);
        weight.copy_((weight.to(torch::kFloat) + delta.to(weight.device())).to(weight.scalar_type()));
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("merging LoRA weights: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::Merge(int index) {
  std::shared_ptr<LoraAdapter> a = adapter(index);
  if (a == nullptr) return absl::NotFoundError(absl::StrCat("Merge: no adapter ", index));
  if (merged_index_ >= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("Merge: adapter ", merged_index_, " is already merged; Unmerge() first"));
  }
  std::unique_ptr<LoraAdapter> snapshot = a->Clone();
  absl::Status s = ApplyMergeDelta(*snapshot, 1.0);
  if (!s.ok()) return s;
  merged_index_ = index;
  merged_snapshot_ = std::move(snapshot);
  return absl::OkStatus();
}

absl::Status LlamaModel::Unmerge() {
  if (merged_index_ < 0) return absl::FailedPreconditionError("Unmerge: no adapter is merged");
  absl::Status s = ApplyMergeDelta(*merged_snapshot_, -1.0);
  if (!s.ok()) return s;
  merged_index_ = -1;
  merged_snapshot_.reset();
  return absl::OkStatus();
}

}  // namespace dsm
