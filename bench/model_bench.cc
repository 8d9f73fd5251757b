// dsm_model_bench: throughput of the model runtime on this machine.
//
//   dsm_model_bench --model DIR [--threads 2] [--batches 1,8,32,64] [--prompt 128]
//                   [--decode 64] [--reps 3] [--peak-n 2048]
//                   [--tokenizer NAME=tokenizer.json ...] [--text docs.jsonl]
//                   [--what peak,prefill,decode,forward_decode,tokenizer]
//
// Prints one JSON object per line; bench/report.py turns them (with the Python
// and JavaScript baselines') into the tables of BENCHMARKS.md. What is timed:
//
//  peak            torch::mm of two n x n float32 matrices (best of reps), the
//                  decode-shaped linears [B, 512] x [1376, 512]^T, and a read
//                  of 256 MiB (sum) for the memory bandwidth.
//  prefill         LlamaModel::Forward of B prompts of P tokens into an empty
//                  KvCache, logits of the last token only, then argmax.
//  decode          the engine: B greedy requests (temperature 0, ignore_eos,
//                  max_tokens N + 1) submitted to a Sampler; the first Step()
//                  prefills (and samples the first token), the N Step()s after it
//                  are timed: each decodes every sequence by one token. On a fresh
//                  Sampler and on a reused one (see BenchDecode).
//  forward_decode  the model alone: N steps of Forward([B, 1]) + argmax after a
//                  prefill (no sampler), to separate model time from sampler time.
//  tokenizer       Tokenizer::Encode over every document of --text (one JSON
//                  string per line), single thread; first pass and best of reps.
//
// Prompts are the deterministic ids PromptIds() (hf_eager.py has the same).
#include <dlfcn.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <torch/csrc/autograd/profiler_legacy.h>

#include "common/malloc_tuning.h"
#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "model/attention.h"
#include "model/llama_model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"

namespace dsm {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

template <typename Fn>
double Time(Fn&& fn) {
  const auto t0 = Clock::now();
  fn();
  return Seconds(t0, Clock::now());
}

template <typename Fn>
double Best(int reps, Fn&& fn) {
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < reps; ++i) best = std::min(best, Time(fn));
  return best;
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "dsm_model_bench: " << what << "\n";
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what + ": " + std::string(v.status().ToString()));
  return std::move(*v);
}

struct Options {
  std::string model;
  int threads = 2;
  std::string batches = "1,8,32,64";
  int64_t prompt = 128;
  int64_t decode = 64;
  int reps = 3;
  int64_t peak_n = 2048;
  std::vector<std::string> tokenizers;  // NAME=PATH
  std::string text;
  std::string what = "peak,prefill,decode,forward_decode,tokenizer";
  bool tokens_out = false;
  bool profile = false;
};

json Common() {
  return json{{"impl", "dsm"}, {"torch", TORCH_VERSION}, {"threads", at::get_num_threads()}};
}

void Emit(const Options& /*o*/, json obj) {
  json line = Common();
  line.update(obj);
  std::cout << line.dump() << std::endl;
}

// The same deterministic prompts as hf_eager.py's prompt_ids().
std::vector<std::vector<int32_t>> PromptIds(int64_t batch, int64_t len, int64_t vocab) {
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < len; ++t) {
      out[static_cast<size_t>(b)].push_back(static_cast<int32_t>((b * 7919 + t * 104729 + 17) % (vocab - 3) + 3));
    }
  }
  return out;
}

torch::Tensor PromptTensor(const std::vector<std::vector<int32_t>>& prompts) {
  const int64_t batch = static_cast<int64_t>(prompts.size());
  const int64_t len = static_cast<int64_t>(prompts[0].size());
  torch::Tensor ids = torch::empty({batch, len}, torch::kLong);
  auto a = ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < len; ++t) a[b][t] = prompts[static_cast<size_t>(b)][static_cast<size_t>(t)];
  }
  return ids;
}

std::vector<int64_t> Slots(int64_t batch) {
  std::vector<int64_t> s(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) s[static_cast<size_t>(b)] = b;
  return s;
}

// Runs fn under LibTorch's (legacy, CPU) profiler and returns the self time of
// every op, summed by name, largest first: where a forward's time goes.
json ProfileOps(const std::function<void()>& fn, double per) {
  using torch::autograd::profiler::EventKind;
  using torch::autograd::profiler::LegacyEvent;
  std::map<std::string, std::pair<double, int64_t>> self;  // name -> (us, calls)
  double wall = 0;
  {
    torch::autograd::profiler::TLSLegacyProfilerGuard guard(
        torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU),
        [&](const torch::autograd::profiler::thread_event_lists& lists) {
          // Pair pushes and pops by handle, then nest the intervals per thread:
          // self time = duration - the durations of the direct children.
          struct Interval {
            double start, end;
            std::string name;
          };
          for (const auto& list : lists) {
            std::map<uint64_t, const LegacyEvent*> open;
            const LegacyEvent* origin = nullptr;
            std::vector<Interval> spans;
            for (const LegacyEvent& e : list) {
              if (origin == nullptr && e.kind() != EventKind::Mark) origin = &e;
              if (e.kind() == EventKind::PushRange) {
                open[e.handle()] = &e;
              } else if (e.kind() == EventKind::PopRange) {
                auto it = open.find(e.handle());
                if (it == open.end()) continue;
                spans.push_back({origin->cpuElapsedUs(*it->second), origin->cpuElapsedUs(e), it->second->name()});
                open.erase(it);
              }
            }
            std::sort(spans.begin(), spans.end(), [](const Interval& a, const Interval& b) {
              return a.start != b.start ? a.start < b.start : a.end > b.end;
            });
            std::vector<std::pair<const Interval*, double>> stack;  // (span, children us)
            auto close = [&] {
              const auto [span, child] = stack.back();
              stack.pop_back();
              auto& entry = self[span->name];
              entry.first += (span->end - span->start) - child;
              entry.second += 1;
              if (!stack.empty()) stack.back().second += span->end - span->start;
            };
            for (const Interval& span : spans) {
              while (!stack.empty() && stack.back().first->end <= span.start) close();
              stack.push_back({&span, 0.0});
            }
            while (!stack.empty()) close();
          }
        });
    wall = Time(fn);
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> ops(self.begin(), self.end());
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  json list = json::array();
  double total = 0;
  for (const auto& op : ops) total += op.second.first;
  for (const auto& op : ops) {
    list.push_back({{"op", op.first}, {"self_us", op.second.first / per}, {"calls", op.second.second / per}});
  }
  return json{{"wall_us", wall * 1e6 / per}, {"ops_self_us", total / per}, {"ops", list}};
}

// oneDNN's row-major sgemm (libdnnl.so.2, which LibTorch already loads), found
// at run time: the second opinion on the machine's matmul peak. OpenBLAS picks
// its kernels by CPU model and may fall back to older (narrower) ones on a CPU
// it does not know; oneDNN dispatches on the instruction sets present.
using DnnlSgemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                            int64_t, float, float*, int64_t);
DnnlSgemmFn FindDnnlSgemm() {
  void* lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (lib == nullptr) return nullptr;
  return reinterpret_cast<DnnlSgemmFn>(dlsym(lib, "dnnl_sgemm"));
}

void BenchPeak(const Options& o, const ModelConfig& c) {
  torch::NoGradGuard no_grad;
  const int reps = std::max(o.reps, 5);
  const DnnlSgemmFn dnnl_sgemm = FindDnnlSgemm();
  {
    const int64_t n = o.peak_n;
    torch::Tensor a = torch::randn({n, n});
    torch::Tensor b = torch::randn({n, n});
    torch::mm(a, b);
    double s = Best(reps, [&] { torch::mm(a, b); });
    Emit(o, {{"kind", "mm_peak"}, {"lib", "torch::mm (OpenBLAS)"}, {"n", n}, {"seconds", s},
             {"flops", 2.0 * n * n * n / s}});
    if (dnnl_sgemm != nullptr) {
      torch::Tensor out = torch::empty({n, n});
      auto run = [&] {
        dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data_ptr<float>(), n, b.data_ptr<float>(), n, 0.0f,
                   out.data_ptr<float>(), n);
      };
      run();
      if (!torch::allclose(out, torch::mm(a, b), 1e-3, 1e-2)) Die("dnnl_sgemm disagrees with torch::mm");
      s = Best(reps, run);
      Emit(o, {{"kind", "mm_peak"}, {"lib", "dnnl_sgemm (oneDNN)"}, {"n", n}, {"seconds", s},
               {"flops", 2.0 * n * n * n / s}});
    }
  }
  // The MLP linears of one decode step, y = x W^T with x [m, hidden] and
  // W [intermediate, hidden] as torch::linear calls them (and torch::mv for one
  // row, and oneDNN's sgemm), timed over many calls: the weights stay in cache.
  for (int64_t rows : {int64_t{1}, int64_t{8}, int64_t{32}, int64_t{64}}) {
    torch::Tensor x = torch::randn({rows, c.hidden_size});
    torch::Tensor w = torch::randn({c.intermediate_size, c.hidden_size});
    torch::Tensor y = torch::empty({rows, c.intermediate_size});
    const int iters = rows == 64 ? 300 : 1000;
    const double flop = 2.0 * rows * c.hidden_size * c.intermediate_size;
    auto emit = [&](const std::string& lib, const std::function<void()>& fn) {
      fn();
      const double s = Best(reps, [&] {
        for (int i = 0; i < iters; ++i) fn();
      }) / iters;
      Emit(o, {{"kind", "linear_peak"}, {"lib", lib}, {"m", rows}, {"k", c.hidden_size}, {"n", c.intermediate_size},
               {"seconds", s}, {"flops", flop / s}, {"bytes_per_s", 4.0 * c.hidden_size * c.intermediate_size / s}});
    };
    emit("torch::linear", [&] { torch::linear(x, w); });
    if (rows == 1) emit("torch::mv", [&] { torch::mv(w, x.view({-1})); });
    if (dnnl_sgemm != nullptr) {
      emit("dnnl_sgemm", [&] {
        dnnl_sgemm('N', 'T', rows, c.intermediate_size, c.hidden_size, 1.0f, x.data_ptr<float>(), c.hidden_size,
                   w.data_ptr<float>(), c.hidden_size, 0.0f, y.data_ptr<float>(), c.intermediate_size);
      });
    }
  }
  {
    torch::Tensor big = torch::ones({64 * 1024 * 1024});  // 256 MiB
    big.sum();
    const double s = Best(reps, [&] { big.sum(); });
    Emit(o, {{"kind", "mem_read"}, {"bytes", big.numel() * 4}, {"seconds", s}, {"bytes_per_s", big.numel() * 4.0 / s}});
  }
}

// ------------------------------------------------- attention: the decode case
//
// A prototype of what model/attention.cc could do for decode-sized queries:
// LibTorch 1.13's CPU bmm runs one small GEMM per matrix of the batch (a loop
// of select + addmm over B * kv_heads matrices, twice per layer), which costs
// more than the attention arithmetic. This kernel reads each cached key and
// value row once per kv head, for all G query heads of the group: scores,
// float32 softmax and the weighted sum of values in one pass, parallel over
// (row, kv head). Same contract as GroupedQueryAttention (float32 only here).
// Inner loops of the prototype, compiled for AVX-512 / AVX2+FMA / baseline and
// picked at load time (GCC function multiversioning): the project builds for
// plain x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DSM_BENCH_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DSM_BENCH_SIMD_CLONES
#endif

// scores[r, s] = scale * q[r] . k[s] for `rows` query rows.
DSM_BENCH_SIMD_CLONES void ScoreBlock(
    const float* k, int64_t k_stride, int64_t keys, const float* q, int64_t rows, int64_t hd, float scale,
    float* scores) {
  for (int64_t s = 0; s < keys; ++s) {
    const float* kr = k + s * k_stride;
    for (int64_t r = 0; r < rows; ++r) {
      const float* qr = q + r * hd;
      float d[16] = {};
      for (int64_t j = 0; j + 15 < hd; j += 16) {
        for (int u = 0; u < 16; ++u) d[u] += qr[j + u] * kr[j + u];
      }
      float sum = 0;
      for (int u = 0; u < 16; ++u) sum += d[u];
      scores[r * keys + s] = sum * scale;
    }
  }
}

// out[r] += sum_s probs[r, s] * v[s].
DSM_BENCH_SIMD_CLONES void WeightedSumBlock(
    const float* v, int64_t v_stride, int64_t keys, const float* probs, int64_t rows, int64_t hd, float* out) {
  for (int64_t s = 0; s < keys; ++s) {
    const float* vr = v + s * v_stride;
    for (int64_t r = 0; r < rows; ++r) {
      const float w = probs[r * keys + s];
      float* o = out + r * hd;
      for (int64_t j = 0; j < hd; ++j) o[j] += w * vr[j];
    }
  }
}

torch::Tensor FusedSmallQueryAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& allowed) {
  const int64_t batch = q.size(0), heads = q.size(1), len = q.size(2), hd = q.size(3);
  const int64_t kv_heads = k.size(1), keys = k.size(2), group = heads / kv_heads;
  const int64_t rows = group * len;  // query rows per kv head
  TORCH_CHECK(q.scalar_type() == torch::kFloat && k.stride(3) == 1 && v.stride(3) == 1 && hd % 16 == 0);
  const int64_t ks0 = k.stride(0), ks1 = k.stride(1), ks2 = k.stride(2);
  const int64_t vs0 = v.stride(0), vs1 = v.stride(1), vs2 = v.stride(2);
  // [B, KV, G*T, hd]: the G query heads of a kv head, then their T tokens.
  torch::Tensor qc = q.reshape({batch, kv_heads, rows, hd}).contiguous();
  torch::Tensor scores = torch::empty({batch, kv_heads, rows, keys}, q.options());
  const float* qp = qc.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  float* sp = scores.data_ptr<float>();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  // QK^T: each key row is loaded once for all G*T query rows of its kv head.
  at::parallel_for(0, batch * kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / kv_heads, kvh = i % kv_heads;
      ScoreBlock(kp + b * ks0 + kvh * ks1, ks2, keys, qp + i * rows * hd, rows, hd, scale, sp + i * rows * keys);
    }
  });
  torch::Tensor blocked = allowed.logical_not().view({batch, 1, 1, len, keys});
  torch::Tensor probs = torch::softmax(
      scores.view({batch, kv_heads, group, len, keys}).masked_fill_(blocked, std::numeric_limits<float>::lowest()), -1);
  torch::Tensor out = torch::zeros({batch, kv_heads, rows, hd}, q.options());
  const float* pp = probs.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // PV: each value row is loaded once for all G*T query rows.
  at::parallel_for(0, batch * kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / kv_heads, kvh = i % kv_heads;
      WeightedSumBlock(vp + b * vs0 + kvh * vs1, vs2, keys, pp + i * rows * keys, rows, hd, op + i * rows * hd);
    }
  });
  // [B, KV, G, T, hd] -> [B, T, H * hd]
  return out.view({batch, heads, len, hd}).transpose(1, 2).reshape({batch, len, heads * hd});
}

// The 57 linears of one decode step (7 per layer + the LM head) with the
// model's own weights, in forward order (so they stream from memory as in a
// real step), x [B, in]: torch::linear as the model calls it, vs oneDNN's
// sgemm, vs torch::mv for one row. Per step.
void BenchLinears(const Options& o, const LlamaModel& model, int64_t batch) {
  torch::NoGradGuard no_grad;
  const DnnlSgemmFn dnnl_sgemm = FindDnnlSgemm();
  std::vector<torch::Tensor> weights;
  const ModelConfig& c = model.config();
  const auto named = model.NamedWeights();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      weights.push_back(named.at("model.layers." + std::to_string(l) + "." + n + ".weight"));
    }
  }
  weights.push_back(named.at("model.embed_tokens.weight"));  // the tied LM head
  std::vector<torch::Tensor> xs, ys;
  for (const torch::Tensor& w : weights) {
    xs.push_back(torch::randn({batch, w.size(1)}));
    ys.push_back(torch::empty({batch, w.size(0)}));
  }
  json rec = {{"kind", "linears"}, {"batch", batch}, {"count", weights.size()}};
  auto time = [&](const std::string& key, const std::function<void(size_t)>& fn) {
    for (size_t i = 0; i < weights.size(); ++i) fn(i);
    rec[key] = Best(std::max(o.reps, 3), [&] {
      for (int it = 0; it < 5; ++it) {
        for (size_t i = 0; i < weights.size(); ++i) fn(i);
      }
    }) / 5 * 1e6;
  };
  time("linear_us", [&](size_t i) { torch::linear(xs[i], weights[i]); });
  if (batch == 1) time("mv_us", [&](size_t i) { torch::mv(weights[i], xs[i].view({-1})); });
  if (dnnl_sgemm != nullptr) {
    time("dnnl_us", [&](size_t i) {
      const torch::Tensor& w = weights[i];
      dnnl_sgemm('N', 'T', batch, w.size(0), w.size(1), 1.0f, xs[i].data_ptr<float>(), w.size(1),
                 w.data_ptr<float>(), w.size(1), 0.0f, ys[i].data_ptr<float>(), w.size(0));
    });
    for (size_t i : {size_t{0}, weights.size() - 1}) {
      if (!torch::allclose(ys[i], torch::linear(xs[i], weights[i]), 1e-3, 1e-3)) Die("dnnl_sgemm disagrees");
    }
  }
  Emit(o, rec);
}

// GroupedQueryAttention (model/attention.h, as the model calls it at decode:
// q a transposed view, k/v narrowed from a slotted cache) vs the prototype,
// cycling through one cache per layer as a decode step does (so the keys and
// values come from memory, not from a warm cache). Per decode step (all layers).
void BenchAttention(const Options& o, const ModelConfig& c, int64_t batch) {
  torch::NoGradGuard no_grad;
  const int64_t max_len = o.prompt + o.decode + 1;
  const int64_t keys = o.prompt + o.decode / 2;  // the middle of the decode
  struct Layer {
    torch::Tensor k, v;
  };
  std::vector<Layer> layers;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    torch::Tensor kc = torch::randn({batch, c.num_key_value_heads, max_len, c.head_dim});
    torch::Tensor vc = torch::randn({batch, c.num_key_value_heads, max_len, c.head_dim});
    layers.push_back({kc.narrow(2, 0, keys), vc.narrow(2, 0, keys)});
  }
  torch::Tensor q = torch::randn({batch, 1, c.num_attention_heads, c.head_dim}).transpose(1, 2);
  torch::Tensor allowed = torch::ones({batch, 1, keys}, torch::kBool);
  torch::Tensor ref = GroupedQueryAttention(q, layers[0].k, layers[0].v, allowed);
  torch::Tensor mine = FusedSmallQueryAttention(q, layers[0].k, layers[0].v, allowed);
  if (!torch::allclose(ref, mine, 1e-4, 1e-4)) Die("FusedSmallQueryAttention disagrees with GroupedQueryAttention");
  const int iters = 10;
  auto per_step = [&](auto&& attention) {
    return Best(o.reps, [&] {
      for (int i = 0; i < iters; ++i) {
        for (const Layer& l : layers) attention(q, l.k, l.v, allowed);
      }
    }) / iters;
  };
  const double t_ref = per_step(GroupedQueryAttention);
  const double t_mine = per_step(FusedSmallQueryAttention);
  const double kv_bytes = 2.0 * c.num_hidden_layers * batch * c.num_key_value_heads * keys * c.head_dim * 4;
  Emit(o, {{"kind", "attention"}, {"batch", batch}, {"keys", keys}, {"model_us", t_ref * 1e6},
           {"fused_us", t_mine * 1e6}, {"speedup", t_ref / t_mine}, {"kv_bytes", kv_bytes},
           {"model_bytes_per_s", kv_bytes / t_ref}, {"fused_bytes_per_s", kv_bytes / t_mine}});
}

void BenchPrefill(const Options& o, const LlamaModel& model, int64_t batch) {
  std::unique_ptr<KvCache> cache = Check(model.NewKvCache(batch, o.prompt), "NewKvCache");
  CachedBatch cb;
  cb.ids = PromptTensor(PromptIds(batch, o.prompt, model.config().vocab_size));
  cb.slots = Slots(batch);
  auto run = [&] {
    for (int64_t b = 0; b < batch; ++b) cache->Reset(b);
    torch::Tensor logits = Check(model.Forward(cb, *cache, LogitsSelect::kLast), "Forward");
    torch::Tensor next = logits.argmax(-1);
    (void)next.data_ptr<int64_t>();
  };
  run();  // warm-up
  const double s = Best(o.reps, run);
  // The first logits of the last row's last token: hf_eager.py prints the same
  // numbers, so the report can check that both ran the same model.
  for (int64_t b = 0; b < batch; ++b) cache->Reset(b);
  torch::Tensor probe = Check(model.Forward(cb, *cache, LogitsSelect::kLast), "Forward")[batch - 1].narrow(0, 0, 16);
  Emit(o, {{"kind", "prefill"},
           {"batch", batch},
           {"prompt", o.prompt},
           {"tokens", batch * o.prompt},
           {"seconds", s},
           {"tok_s", batch * o.prompt / s},
           {"probe", std::vector<float>(probe.data_ptr<float>(), probe.data_ptr<float>() + 16)}});
}

void BenchForwardDecode(const Options& o, const LlamaModel& model, int64_t batch) {
  std::unique_ptr<KvCache> cache = Check(model.NewKvCache(batch, o.prompt + o.decode + 1), "NewKvCache");
  CachedBatch prefill;
  prefill.ids = PromptTensor(PromptIds(batch, o.prompt, model.config().vocab_size));
  prefill.slots = Slots(batch);
  torch::Tensor next;
  CachedBatch step;
  step.slots = prefill.slots;
  auto start = [&] {
    for (int64_t b = 0; b < batch; ++b) cache->Reset(b);
    next = Check(model.Forward(prefill, *cache, LogitsSelect::kLast), "Forward").argmax(-1);
  };
  auto steps = [&] {
    for (int64_t i = 0; i < o.decode; ++i) {
      step.ids = next.unsqueeze(1);
      next = Check(model.Forward(step, *cache, LogitsSelect::kLast), "Forward").argmax(-1);
    }
    (void)next.data_ptr<int64_t>();
  };
  auto run = [&] {
    start();
    return Time(steps);
  };
  run();  // warm-up
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < o.reps; ++i) best = std::min(best, run());
  Emit(o, {{"kind", "forward_decode"},
           {"batch", batch},
           {"prompt", o.prompt},
           {"steps", o.decode},
           {"tokens", batch * o.decode},
           {"seconds", best},
           {"tok_s", batch * o.decode / best}});
  if (o.profile) {
    start();
    json p = ProfileOps(steps, static_cast<double>(o.decode));
    p.update(json{{"kind", "profile"}, {"what", "forward_decode step"}, {"batch", batch}});
    Emit(o, p);
  }
}

// The engine's decode: B greedy requests submitted to a Sampler, one Step()
// for admission + prefill (which also samples the first token), then the
// remaining Step()s, each decoding every sequence by one token, are timed.
// "fresh": a new Sampler (its slots are handed out in order 0..B-1). "reused":
// the second batch on the same Sampler (as a GRPO loop does): slots come back
// in the order the sequences finished, so the batch's slots are in another
// order, which LlamaModel::Forward handles by gathering the cache rows.
void BenchDecode(const Options& o, const LlamaModel& model, int64_t batch) {
  SamplerOptions so;
  so.max_batch = batch;
  so.max_len = o.prompt + o.decode + 1;
  so.max_prefill_tokens = batch * o.prompt;
  const auto prompts = PromptIds(batch, o.prompt, model.config().vocab_size);
  std::vector<std::vector<int32_t>> tokens;
  // Returns the seconds of the decode steps (all Steps after the first).
  auto run = [&](Sampler& sampler) {
    const int max_tokens = static_cast<int>(o.decode + 1);
    std::vector<absl::StatusOr<SampleResult>> results(static_cast<size_t>(batch),
                                                      absl::UnknownError("not finished"));
    for (int64_t b = 0; b < batch; ++b) {
      SampleRequest r;
      r.prompt = prompts[static_cast<size_t>(b)];
      r.params.temperature = 0;
      r.params.max_tokens = max_tokens;
      r.params.ignore_eos = true;
      absl::Status s = sampler.Submit(std::move(r), [&results, b](absl::StatusOr<SampleResult> res) {
        results[static_cast<size_t>(b)] = std::move(res);
      });
      if (!s.ok()) Die("Submit: " + s.ToString());
    }
    const Sampler::Counters c0 = sampler.counters();
    if (!sampler.Step()) Die("Step: nothing to do");
    const Sampler::Counters c1 = sampler.counters();
    if (c1.prefill_tokens - c0.prefill_tokens != batch * o.prompt) Die("the prefill did not admit every request");
    const auto t0 = Clock::now();
    while (sampler.Step()) {
    }
    const double s = Seconds(t0, Clock::now());
    if (sampler.counters().decode_tokens - c1.decode_tokens != batch * o.decode) Die("unexpected decode count");
    tokens.clear();
    for (auto& r : results) {
      if (!r.ok()) Die("sequence failed: " + r.status().ToString());
      if (static_cast<int>(r->tokens.size()) != max_tokens) Die("a sequence stopped early");
      tokens.push_back(r->tokens);
    }
    return s;
  };
  double fresh = std::numeric_limits<double>::infinity();
  double reused = std::numeric_limits<double>::infinity();
  std::vector<std::vector<int32_t>> fresh_tokens;
  for (int i = 0; i < o.reps + 1; ++i) {  // the first round warms up
    std::unique_ptr<Sampler> sampler = Check(Sampler::Create(&model, nullptr, so), "Sampler::Create");
    const double f = run(*sampler);
    fresh_tokens = tokens;
    const double r = run(*sampler);
    if (tokens != fresh_tokens) Die("a reused Sampler generated other tokens");
    if (i > 0) {
      fresh = std::min(fresh, f);
      reused = std::min(reused, r);
    }
  }
  json rec = {{"kind", "decode"}, {"batch", batch}, {"prompt", o.prompt}, {"steps", o.decode},
              {"tokens", batch * o.decode}, {"seconds", fresh}, {"tok_s", batch * o.decode / fresh},
              {"reused_seconds", reused}, {"reused_tok_s", batch * o.decode / reused}};
  if (o.tokens_out) rec["ids"] = fresh_tokens;
  Emit(o, rec);
}

std::vector<std::string> ReadDocs(const std::string& path) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  std::vector<std::string> docs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    docs.push_back(json::parse(line).get<std::string>());
  }
  return docs;
}

void BenchTokenizer(const Options& o) {
  if (o.tokenizers.empty()) return;
  if (o.text.empty()) Die("--tokenizer needs --text");
  const std::vector<std::string> docs = ReadDocs(o.text);
  int64_t bytes = 0;
  for (const std::string& d : docs) bytes += static_cast<int64_t>(d.size());
  for (const std::string& spec : o.tokenizers) {
    std::vector<std::string> parts = absl::StrSplit(spec, absl::MaxSplits('=', 1));
    if (parts.size() != 2) Die("--tokenizer wants NAME=PATH, got " + spec);
    std::unique_ptr<Tokenizer> tok = Check(Tokenizer::FromFile(parts[1]), "loading " + parts[1]);
    int64_t num_tokens = 0;
    uint64_t hash = 1469598103934665603ULL;  // FNV-1a over the ids, to compare with JS
    auto pass = [&] {
      num_tokens = 0;
      hash = 1469598103934665603ULL;
      for (const std::string& d : docs) {
        const std::vector<int32_t> ids = tok->Encode(d, /*add_special_tokens=*/false);
        num_tokens += static_cast<int64_t>(ids.size());
        for (int32_t id : ids) hash = (hash ^ static_cast<uint32_t>(id)) * 1099511628211ULL;
      }
    };
    const double first = Time(pass);
    const double best = Best(o.reps, pass);
    std::ostringstream h;
    h << std::hex << hash;
    Emit(o, {{"kind", "tokenizer"},
             {"name", parts[0]},
             {"docs", docs.size()},
             {"bytes", bytes},
             {"tokens", num_tokens},
             {"ids_fnv1a", h.str()},
             {"first_seconds", first},
             {"seconds", best},
             {"mb_s", bytes / best / 1e6},
             {"first_mb_s", bytes / first / 1e6}});
  }
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"dsm model-runtime benchmark (JSON lines on stdout)"};
  app.add_option("--model", o.model, "Hugging Face model folder");
  app.add_option("--threads", o.threads, "LibTorch intra-op threads");
  app.add_option("--batches", o.batches, "comma-separated batch sizes");
  app.add_option("--prompt", o.prompt, "prompt tokens per sequence");
  app.add_option("--decode", o.decode, "decode steps timed");
  app.add_option("--reps", o.reps, "repetitions (the best counts)");
  app.add_option("--peak-n", o.peak_n, "matrix size for the matmul peak");
  app.add_option("--tokenizer", o.tokenizers, "NAME=path/to/tokenizer.json (repeatable)");
  app.add_option("--text", o.text, "documents for the tokenizer, one JSON string per line");
  app.add_option("--what", o.what, "comma-separated: peak,prefill,decode,forward_decode,attention,linears,tokenizer");
  app.add_flag("--tokens-out", o.tokens_out, "include the generated ids in the decode lines");
  app.add_flag("--profile", o.profile, "also print the op self times of one forward_decode step");
  CLI11_PARSE(app, argc, argv);

  absl::Status s = SetTorchThreads(o.threads, 1);
  if (!s.ok()) Die(s.ToString());
  std::vector<std::string> what = absl::StrSplit(o.what, ',');
  auto wants = [&](const std::string& w) { return std::find(what.begin(), what.end(), w) != what.end(); };

  const bool model_parts =
      wants("prefill") || wants("decode") || wants("forward_decode") || wants("peak") || wants("attention") ||
                           wants("linears");
  if (model_parts) {
    if (o.model.empty()) Die("--model is required for peak/prefill/decode");
    std::unique_ptr<LlamaModel> model = Check(LlamaModel::Load(o.model), "loading " + o.model);
    if (wants("peak")) BenchPeak(o, model->config());
    std::vector<int64_t> batches;
    for (absl::string_view b : absl::StrSplit(o.batches, ',')) batches.push_back(std::stoll(std::string(b)));
    for (int64_t batch : batches) {
      if (wants("prefill")) BenchPrefill(o, *model, batch);
      if (wants("decode")) BenchDecode(o, *model, batch);
      if (wants("forward_decode")) BenchForwardDecode(o, *model, batch);
      if (wants("attention")) BenchAttention(o, model->config(), batch);
      if (wants("linears")) BenchLinears(o, *model, batch);
    }
  }
  if (wants("tokenizer")) BenchTokenizer(o);
  return 0;
}

}  // namespace
}  // namespace dsm

int main(int argc, char** argv) {
  dsm::RetainFreedMemory();  // as the dsm binary does
  return dsm::Main(argc, argv);
}
