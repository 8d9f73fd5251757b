// Row kernels: the sampler's matrix products and norms on the CPU in float32, computed so that
// every output element is one fixed sequence of floating-point operations over its own row of
// the input. A row's result then does not depend on which other rows share the call, how many
// there are, or where the row sits among them — unlike LibTorch's linear through OpenBLAS, whose
// per-row results move by ~1e-5 with the number of rows and a row's place in its tile. With
// these (and model/cached_attention.h), a sequence's logits, and so its tokens and
// log-probabilities, depend only on its own prompt, adapter and seed, not on the batch it was
// decoded in: the same seed gives the same run.
//
// Vectorised with AVX2 + FMA where the CPU has them (chosen once, at the first call), plain
// x86-64 otherwise; the same machine always takes the same path.
#ifndef DSM_MODEL_ROW_KERNELS_H_
#define DSM_MODEL_ROW_KERNELS_H_

#include <torch/torch.h>

namespace dsm {

// True when the row kernels take these tensors: float32 on the CPU, unless the environment
// says DSM_ROW_KERNELS=0 (LibTorch's kernels instead: to compare speed, or bits).
bool RowKernelsApply(torch::ScalarType dtype, const torch::Device& device);

// x·wᵀ (+ bias): x [..., in], w [out, in], bias [out] or undefined; float32 CPU tensors, no
// autograd. Returns [..., out].
torch::Tensor RowLinear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias = {});

// RmsNorm (model/attention.h) row by row: weight · x / sqrt(mean(x²) + eps) over the last
// dimension, float32 CPU tensors.
torch::Tensor RowRmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// silu(gate) · up element by element (silu(x) = x / (1 + e^-x)), float32 CPU tensors of one
// shape, with e^x as row_vectors' Exp8 for every element.
torch::Tensor RowSiluMul(const torch::Tensor& gate, const torch::Tensor& up);

// e^x element by element, the same function for every element wherever it sits (LibTorch's exp
// takes another for a tensor's last few elements).
torch::Tensor RowExp(const torch::Tensor& x);

}  // namespace dsm

#endif  // DSM_MODEL_ROW_KERNELS_H_
