// Mixed-precision autocast for training forwards: the weights (and Adam's moments) stay
// float32, while the matrix products of the forward inside the guard's scope run in bfloat16
// (LibTorch's autocast: linear, matmul and their kin cast their inputs; everything else keeps
// its dtype, and the model's softmax and RMSNorm compute in float32 anyway). Backward runs
// outside the scope, as autocast wants, and gets bfloat16 products too.
//
// Why: the tiny model's matrices (e.g. 600 x 128 by 128 x 128) are far too small for the float32
// BLAS to reach its peak; oneDNN's bfloat16 kernels on a CPU with AVX512-BF16 or AMX run them
// ~14x faster, which makes a warm-up step ~1.5x faster (BENCHMARKS.md, "Phase 0 in bfloat16").
// Without such a CPU bfloat16 is emulated and slower: "auto" picks float32 there. At decode
// sizes (a few rows) bfloat16 is no faster, so the samplers stay float32.
#ifndef DSM_MODEL_MIXED_PRECISION_H_
#define DSM_MODEL_MIXED_PRECISION_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsm {

enum class TrainPrecision { kFloat32, kBFloat16 };

// "float32", "bfloat16" or "auto" (bfloat16 where the CPU has native bfloat16 instructions or
// the device is a GPU, else float32); INVALID_ARGUMENT naming the value otherwise.
absl::StatusOr<TrainPrecision> ResolveTrainPrecision(absl::string_view name, const torch::Device& device);

// True when /proc/cpuinfo lists avx512_bf16 or amx_bf16.
bool CpuHasNativeBFloat16();

const char* TrainPrecisionName(TrainPrecision p);

// Enables autocast to bfloat16 on `device`'s type for its lifetime when `precision` is
// kBFloat16 (nothing otherwise); restores the previous state and drops autocast's cache of cast
// weights on exit, since the optimizer changes them. Thread-local, like LibTorch's autocast.
class AutocastScope {
 public:
  AutocastScope(TrainPrecision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

}  // namespace dsm

#endif  // DSM_MODEL_MIXED_PRECISION_H_
