#include "model/cached_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/row_vectors.h"

namespace dsm {
namespace {

using row_vectors::Exp8;
using row_vectors::Lanes;
using row_vectors::Load8;
using row_vectors::LoadPart;
using row_vectors::Store8;
using row_vectors::StorePart;
using row_vectors::V8;

struct Shape {
  int64_t heads, kv_heads, len, head_dim, max_len;
  float scale;
};

ROW_INLINE float Dot(const float* a, const float* b, int64_t n) {
  V8 acc{};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) acc += Load8(a + k) * Load8(b + k);
  float s = Lanes(acc);
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

// out[0, n) = Σ_j p[j]·v[j] / sum over the keys j < keys, in order of j.
ROW_INLINE void Weighted(const float* p, const float* v, int64_t keys, int64_t n, float sum, float* out) {
  std::fill(out, out + n, 0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    const float pj = p[j];
    const float* vj = v + j * n;
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) Store8(out + d, Load8(out + d) + pj * Load8(vj + d));
    for (; d < n; ++d) out[d] += pj * vj[d];
  }
  const float inv = 1.0f / sum;
  for (int64_t d = 0; d < n; ++d) out[d] *= inv;
}

// scores[j] = e^(scores[j] - top) for j < keys (Exp8 for every one); returns their sum, taken in
// eight lane sums in order of j, then Lanes.
ROW_INLINE float Exponentials(float* scores, int64_t keys, float top) {
  V8 acc{};
  int64_t j = 0;
  for (; j + 8 <= keys; j += 8) {
    const V8 e = Exp8(Load8(scores + j) - top);
    Store8(scores + j, e);
    acc += e;
  }
  if (j < keys) {
    const int64_t n = keys - j;
    V8 e = Exp8(LoadPart(scores + j, n) - top);
    for (int64_t i = n; i < 8; ++i) e[i] = 0.0f;
    StorePart(scores + j, e, n);
    acc += e;
  }
  return Lanes(acc);
}

// One query over `keys` cached keys and values: softmax(q·kᵀ·scale)·v into out.
ROW_INLINE void Query(const float* q, const float* k, const float* v, int64_t keys, const Shape& s, float* scores,
                      float* out) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < keys; ++j) {
    scores[j] = Dot(q, k + j * s.head_dim, s.head_dim) * s.scale;
    top = std::max(top, scores[j]);
  }
  Weighted(scores, v, keys, s.head_dim, Exponentials(scores, keys, top), out);
}

// Lanes (model/row_vectors.h) of eight vectors at once: out[i] = Lanes(acc[i]), the same sums in
// the same order, so a key's score is the same bits in a block of eight and in the tail.
ROW_INLINE V8 Lanes8(const V8* acc) {
  typedef int I8 __attribute__((vector_size(32)));
  const I8 lo{0, 1, 2, 3, 8, 9, 10, 11}, hi{4, 5, 6, 7, 12, 13, 14, 15};
  const I8 even2{0, 1, 4, 5, 8, 9, 12, 13}, odd2{2, 3, 6, 7, 10, 11, 14, 15};
  const I8 even{0, 2, 4, 6, 8, 10, 12, 14}, odd{1, 3, 5, 7, 9, 11, 13, 15};
  V8 p[4];  // p[k]: (v0+v4, v1+v5, v2+v6, v3+v7) of acc[2k], then of acc[2k+1]
  for (int k = 0; k < 4; ++k) {
    p[k] = __builtin_shuffle(acc[2 * k], acc[2 * k + 1], lo) + __builtin_shuffle(acc[2 * k], acc[2 * k + 1], hi);
  }
  // (v0+v4)+(v2+v6) and (v1+v5)+(v3+v7) of four accumulators each
  const V8 q0 = __builtin_shuffle(p[0], p[1], even2) + __builtin_shuffle(p[0], p[1], odd2);
  const V8 q1 = __builtin_shuffle(p[2], p[3], even2) + __builtin_shuffle(p[2], p[3], odd2);
  return __builtin_shuffle(q0, q1, even) + __builtin_shuffle(q0, q1, odd);
}

// Query() for head_dim = 8·C: the query and the output held in registers, keys scored eight at a
// time (each score the same bits as Dot's), the values summed in two chains. The order of every
// operation depends only on the number of keys.
template <int C>
ROW_INLINE void QueryHeld(const float* q, const float* k, const float* v, int64_t keys, const Shape& s,
                          float* scores, float* out) {
  constexpr int64_t n = 8 * C;
  V8 qv[C];
  for (int c = 0; c < C; ++c) qv[c] = Load8(q + 8 * c);
  const V8 scale = V8{} + s.scale;
  V8 top8 = V8{} - std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + 8 <= keys; j += 8) {
    V8 acc[8];
    for (int i = 0; i < 8; ++i) {
      acc[i] = V8{};
      for (int c = 0; c < C; ++c) acc[i] += qv[c] * Load8(k + (j + i) * n + 8 * c);
    }
    const V8 block = Lanes8(acc) * scale;
    Store8(scores + j, block);
    top8 = top8 > block ? top8 : block;
  }
  float top = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < 8; ++i) top = std::max(top, top8[i]);
  for (; j < keys; ++j) {
    V8 acc{};
    for (int c = 0; c < C; ++c) acc += qv[c] * Load8(k + j * n + 8 * c);
    scores[j] = Lanes(acc) * s.scale;
    top = std::max(top, scores[j]);
  }
  const float sum = Exponentials(scores, keys, top);
  // Even and odd keys in two sums (twice the independent chains), added at the end.
  V8 even[C], odd[C];
  for (int c = 0; c < C; ++c) even[c] = odd[c] = V8{};
  for (j = 0; j + 2 <= keys; j += 2) {
    const float p0 = scores[j], p1 = scores[j + 1];
    for (int c = 0; c < C; ++c) {
      even[c] += p0 * Load8(v + j * n + 8 * c);
      odd[c] += p1 * Load8(v + (j + 1) * n + 8 * c);
    }
  }
  if (j < keys) {
    for (int c = 0; c < C; ++c) even[c] += scores[j] * Load8(v + j * n + 8 * c);
  }
  const float inv = 1.0f / sum;
  for (int c = 0; c < C; ++c) Store8(out + 8 * c, (even[c] + odd[c]) * inv);
}

// Work item i = (row, head) pairs [first, last).
ROW_INLINE void Pairs(int64_t first, int64_t last, const float* q, const int64_t* q_strides, const float* keys,
                      const float* values, const int64_t* slots, const int64_t* starts, const int64_t* counts,
                      const Shape& s, float* out) {
  std::vector<float> scores(static_cast<size_t>(s.max_len));
  std::vector<float> query(static_cast<size_t>(s.head_dim));
  const int64_t group = s.heads / s.kv_heads;
  for (int64_t i = first; i < last; ++i) {
    const int64_t b = i / s.heads;
    const int64_t h = i % s.heads;
    const int64_t base = (slots[b] * s.kv_heads + h / group) * s.max_len * s.head_dim;
    const float* k = keys + base;
    const float* v = values + base;
    for (int64_t t = 0; t < counts[b]; ++t) {
      const float* qt = q + b * q_strides[0] + h * q_strides[1] + t * q_strides[2];
      for (int64_t d = 0; d < s.head_dim; ++d) query[static_cast<size_t>(d)] = qt[d * q_strides[3]];
      float* o = out + ((b * s.len + t) * s.heads + h) * s.head_dim;
      const int64_t keys_seen = starts[b] + t + 1;
      switch (s.head_dim) {
        case 16: QueryHeld<2>(query.data(), k, v, keys_seen, s, scores.data(), o); break;
        case 32: QueryHeld<4>(query.data(), k, v, keys_seen, s, scores.data(), o); break;
        case 64: QueryHeld<8>(query.data(), k, v, keys_seen, s, scores.data(), o); break;
        case 128: QueryHeld<16>(query.data(), k, v, keys_seen, s, scores.data(), o); break;
        default: Query(query.data(), k, v, keys_seen, s, scores.data(), o);
      }
    }
  }
}

ROW_AVX2 void PairsAvx2(int64_t first, int64_t last, const float* q, const int64_t* q_strides, const float* keys,
                        const float* values, const int64_t* slots, const int64_t* starts, const int64_t* counts,
                        const Shape& s, float* out) {
  Pairs(first, last, q, q_strides, keys, values, slots, starts, counts, s, out);
}
void PairsPlain(int64_t first, int64_t last, const float* q, const int64_t* q_strides, const float* keys,
                const float* values, const int64_t* slots, const int64_t* starts, const int64_t* counts,
                const Shape& s, float* out) {
  Pairs(first, last, q, q_strides, keys, values, slots, starts, counts, s, out);
}

}  // namespace

torch::Tensor CachedAttention(const torch::Tensor& q, const torch::Tensor& keys, const torch::Tensor& values,
                              const std::vector<int64_t>& slots, const std::vector<int64_t>& starts,
                              const std::vector<int64_t>& counts) {
  TORCH_CHECK(q.scalar_type() == torch::kFloat && keys.scalar_type() == torch::kFloat &&
                  values.scalar_type() == torch::kFloat && q.device().is_cpu() && keys.device().is_cpu(),
              "CachedAttention: float32 CPU tensors only");
  TORCH_CHECK(q.dim() == 4 && keys.dim() == 4 && keys.sizes() == values.sizes(), "CachedAttention: bad shapes");
  Shape s;
  const int64_t batch = q.size(0);
  s.heads = q.size(1);
  s.len = q.size(2);
  s.head_dim = q.size(3);
  s.kv_heads = keys.size(1);
  s.max_len = keys.size(2);
  s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
  TORCH_CHECK(keys.size(3) == s.head_dim && s.heads % s.kv_heads == 0, "CachedAttention: heads do not fit");
  const auto rows = static_cast<size_t>(batch);
  TORCH_CHECK(slots.size() == rows && starts.size() == rows && counts.size() == rows,
              "CachedAttention: one slot, start and count per row");
  for (size_t b = 0; b < rows; ++b) {
    TORCH_CHECK(slots[b] >= 0 && slots[b] < keys.size(0) && counts[b] >= 0 && counts[b] <= s.len &&
                    starts[b] >= 0 && starts[b] + counts[b] <= s.max_len,
                "CachedAttention: row ", b, " does not fit the cache");
  }
  const torch::Tensor kc = keys.contiguous();
  const torch::Tensor vc = values.contiguous();
  torch::Tensor out = torch::zeros({batch, s.len, s.heads * s.head_dim}, q.options());
  const int64_t q_strides[4] = {q.stride(0), q.stride(1), q.stride(2), q.stride(3)};
  const float* qp = q.data_ptr<float>();
  const float* kp = kc.data_ptr<float>();
  const float* vp = vc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool avx2 = row_vectors::HasAvx2Fma();
  at::parallel_for(0, batch * s.heads, 4, [&](int64_t first, int64_t last) {
    if (avx2) {
      PairsAvx2(first, last, qp, q_strides, kp, vp, slots.data(), starts.data(), counts.data(), s, op);
    } else {
      PairsPlain(first, last, qp, q_strides, kp, vp, slots.data(), starts.data(), counts.data(), s, op);
    }
  });
  return out;
}

}  // namespace dsm
