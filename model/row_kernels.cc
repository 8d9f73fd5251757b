#include "model/row_kernels.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

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

// y[r][j] = Σ_k x[r][k]·w[j][k] (+ bias[j]) for R rows and J outputs at once (the loads of x and
// w are shared), each (r, j) on its own: 8 lane sums over k in steps of 8, in order, then the
// lanes in a fixed order, then the k % 8 tail in order. Every (r, j) is the same sequence of
// operations whatever R and J are, so a row's result does not depend on its neighbours.
template <int R, int J>
ROW_INLINE void Tile(const float* x, int64_t in, const float* w, const float* bias, float* y, int64_t out) {
  V8 acc[R][J];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < J; ++j) acc[r][j] = V8{};
  }
  int64_t k = 0;
  for (; k + 8 <= in; k += 8) {
    V8 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = Load8(x + r * in + k);
    for (int j = 0; j < J; ++j) {
      const V8 wv = Load8(w + j * in + k);
      for (int r = 0; r < R; ++r) acc[r][j] += xv[r] * wv;
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < J; ++j) {
      float s = Lanes(acc[r][j]);
      for (int64_t t = k; t < in; ++t) s += x[r * in + t] * w[j * in + t];
      if (bias != nullptr) s += bias[j];
      y[r * out + j] = s;
    }
  }
}

template <int R>
ROW_INLINE void Outputs(const float* x, int64_t in, const float* w, const float* bias, float* y, int64_t out) {
  int64_t j = 0;
  for (; j + 2 <= out; j += 2) Tile<R, 2>(x, in, w + j * in, bias == nullptr ? nullptr : bias + j, y + j, out);
  for (; j < out; ++j) Tile<R, 1>(x, in, w + j * in, bias == nullptr ? nullptr : bias + j, y + j, out);
}

// Rows [first, last) of y = x·wᵀ + bias.
ROW_INLINE void LinearRows(const float* x, int64_t first, int64_t last, int64_t in, const float* w,
                           const float* bias, float* y, int64_t out) {
  int64_t r = first;
  for (; r + 4 <= last; r += 4) Outputs<4>(x + r * in, in, w, bias, y + r * out, out);
  for (; r < last; ++r) Outputs<1>(x + r * in, in, w, bias, y + r * out, out);
}

ROW_INLINE void RmsNormRows(const float* x, int64_t first, int64_t last, int64_t n, const float* weight, float eps,
                            float* y) {
  for (int64_t r = first; r < last; ++r) {
    const float* xr = x + r * n;
    V8 acc{};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
      const V8 v = Load8(xr + k);
      acc += v * v;
    }
    float s = Lanes(acc);
    for (; k < n; ++k) s += xr[k] * xr[k];
    const float inv = 1.0f / std::sqrt(s / static_cast<float>(n) + eps);
    for (k = 0; k < n; ++k) y[r * n + k] = weight[k] * (xr[k] * inv);
  }
}

// silu(g)·u (kSiluMul) or e^g, eight at a time; the same function for every lane.
template <bool kSiluMul>
ROW_INLINE V8 ElementOp(const V8& g, const V8& u) {
  if constexpr (kSiluMul) {
    return g / (1.0f + Exp8(-g)) * u;
  } else {
    return Exp8(g);
  }
}

// out[i] = ElementOp(a[i], b[i]) for i in [first, last), eight at a time, the tail padded.
template <bool kSiluMul>
ROW_INLINE void Elementwise(const float* a, const float* b, int64_t first, int64_t last, float* out) {
  int64_t i = first;
  for (; i + 8 <= last; i += 8) Store8(out + i, ElementOp<kSiluMul>(Load8(a + i), b == nullptr ? V8{} : Load8(b + i)));
  if (i < last) {
    const int64_t n = last - i;
    StorePart(out + i, ElementOp<kSiluMul>(LoadPart(a + i, n), b == nullptr ? V8{} : LoadPart(b + i, n)), n);
  }
}

ROW_INLINE void SiluMulSpan(const float* gate, const float* up, int64_t first, int64_t last, float* out) {
  Elementwise<true>(gate, up, first, last, out);
}

ROW_INLINE void ExpSpan(const float* x, int64_t first, int64_t last, float* out) {
  Elementwise<false>(x, nullptr, first, last, out);
}

ROW_AVX2 void SiluMulAvx2(const float* gate, const float* up, int64_t first, int64_t last, float* out) {
  SiluMulSpan(gate, up, first, last, out);
}
void SiluMulPlain(const float* gate, const float* up, int64_t first, int64_t last, float* out) {
  SiluMulSpan(gate, up, first, last, out);
}
ROW_AVX2 void ExpAvx2(const float* x, const float*, int64_t first, int64_t last, float* out) {
  ExpSpan(x, first, last, out);
}
void ExpPlain(const float* x, const float*, int64_t first, int64_t last, float* out) { ExpSpan(x, first, last, out); }

using SpanFn = void (*)(const float*, const float*, int64_t, int64_t, float*);

// out[i] = op(a[i], b[i]) (b may be undefined) through `avx2` or `plain`, on LibTorch's threads in
// spans that start at multiples of 8, so an element's lane does not depend on the thread count.
torch::Tensor ElementwiseTensor(const torch::Tensor& a, const torch::Tensor& b, SpanFn avx2, SpanFn plain) {
  const torch::Tensor ac = a.contiguous();
  const torch::Tensor bc = b.defined() ? b.contiguous() : b;
  torch::Tensor out = torch::empty_like(ac);
  const float* ap = ac.data_ptr<float>();
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const SpanFn fn = row_vectors::HasAvx2Fma() ? avx2 : plain;
  const int64_t n = ac.numel();
  at::parallel_for(0, (n + 7) / 8, 2048, [&](int64_t begin, int64_t end) { fn(ap, bp, begin * 8, std::min(n, end * 8), op); });
  return out;
}

ROW_AVX2 void LinearRowsAvx2(const float* x, int64_t first, int64_t last, int64_t in, const float* w,
                             const float* bias, float* y, int64_t out) {
  LinearRows(x, first, last, in, w, bias, y, out);
}
void LinearRowsPlain(const float* x, int64_t first, int64_t last, int64_t in, const float* w, const float* bias,
                     float* y, int64_t out) {
  LinearRows(x, first, last, in, w, bias, y, out);
}
ROW_AVX2 void RmsNormRowsAvx2(const float* x, int64_t first, int64_t last, int64_t n, const float* weight, float eps,
                              float* y) {
  RmsNormRows(x, first, last, n, weight, eps, y);
}
void RmsNormRowsPlain(const float* x, int64_t first, int64_t last, int64_t n, const float* weight, float eps,
                      float* y) {
  RmsNormRows(x, first, last, n, weight, eps, y);
}

// Rows handed to one thread at a time: a multiple of the 4-row tile, so a row's tile does not
// depend on the thread count either.
constexpr int64_t kRowsPerTask = 16;

}  // namespace

bool RowKernelsApply(torch::ScalarType dtype, const torch::Device& device) {
  static const bool off = [] {
    const char* v = std::getenv("DSM_ROW_KERNELS");
    return v != nullptr && std::string(v) == "0";
  }();
  return !off && dtype == torch::kFloat && device.is_cpu();
}

torch::Tensor RowLinear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && w.scalar_type() == torch::kFloat && x.device().is_cpu() &&
                  w.device().is_cpu(),
              "RowLinear: float32 CPU tensors only");
  TORCH_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), "RowLinear: x [..., ", w.size(1),
              "] and w [out, in] do not fit");
  const int64_t in = w.size(1);
  const int64_t out = w.size(0);
  const torch::Tensor xc = x.contiguous();
  const torch::Tensor wc = w.contiguous();
  torch::Tensor bc;
  if (bias.defined()) {
    TORCH_CHECK(bias.scalar_type() == torch::kFloat && bias.numel() == out, "RowLinear: bias must be [", out, "]");
    bc = bias.contiguous();
  }
  const int64_t rows = in == 0 ? 0 : xc.numel() / in;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out;
  torch::Tensor y = torch::empty(shape, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const bool avx2 = row_vectors::HasAvx2Fma();
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * kRowsPerTask;
    const int64_t last = std::min(rows, end * kRowsPerTask);
    if (avx2) {
      LinearRowsAvx2(xp, first, last, in, wp, bp, yp, out);
    } else {
      LinearRowsPlain(xp, first, last, in, wp, bp, yp, out);
    }
  });
  return y;
}

torch::Tensor RowRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat && x.device().is_cpu(),
              "RowRmsNorm: float32 CPU tensors only");
  const int64_t n = x.size(-1);
  TORCH_CHECK(weight.numel() == n, "RowRmsNorm: weight must be [", n, "]");
  const torch::Tensor xc = x.contiguous();
  const torch::Tensor wc = weight.contiguous();
  torch::Tensor y = torch::empty_like(xc);
  const int64_t rows = n == 0 ? 0 : xc.numel() / n;
  const float* xp = xc.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const bool avx2 = row_vectors::HasAvx2Fma();
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t first, int64_t last) {
    if (avx2) {
      RmsNormRowsAvx2(xp, first, last, n, wp, static_cast<float>(eps), yp);
    } else {
      RmsNormRowsPlain(xp, first, last, n, wp, static_cast<float>(eps), yp);
    }
  });
  return y;
}

torch::Tensor RowSiluMul(const torch::Tensor& gate, const torch::Tensor& up) {
  TORCH_CHECK(gate.scalar_type() == torch::kFloat && up.scalar_type() == torch::kFloat && gate.device().is_cpu() &&
                  gate.sizes() == up.sizes(),
              "RowSiluMul: float32 CPU tensors of one shape only");
  return ElementwiseTensor(gate, up, SiluMulAvx2, SiluMulPlain);
}

torch::Tensor RowExp(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && x.device().is_cpu(), "RowExp: float32 CPU tensors only");
  return ElementwiseTensor(x, torch::Tensor(), ExpAvx2, ExpPlain);
}

}  // namespace dsm
