#include "model/mixed_precision.h"

#include <ATen/autocast_mode.h>

#include <fstream>

#include "absl/strings/str_cat.h"

namespace dsm {

bool CpuHasNativeBFloat16() {
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
    }
    return false;
  }();
  return has;
}

absl::StatusOr<TrainPrecision> ResolveTrainPrecision(absl::string_view name, const torch::Device& device) {
  if (name == "float32") return TrainPrecision::kFloat32;
  if (name == "bfloat16") return TrainPrecision::kBFloat16;
  if (name == "auto") {
    return device.is_cuda() || CpuHasNativeBFloat16() ? TrainPrecision::kBFloat16 : TrainPrecision::kFloat32;
  }
  return absl::InvalidArgumentError(absl::StrCat("precision: \"", name, "\" is not one of auto, float32, bfloat16"));
}

const char* TrainPrecisionName(TrainPrecision p) {
  return p == TrainPrecision::kBFloat16 ? "bfloat16" : "float32";
}

AutocastScope::AutocastScope(TrainPrecision precision, const torch::Device& device) {
  if (precision != TrainPrecision::kBFloat16) return;
  active_ = true;
  cuda_ = device.is_cuda();
  if (cuda_) {
    was_enabled_ = at::autocast::is_enabled();
    was_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    was_enabled_ = at::autocast::is_cpu_enabled();
    was_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(was_dtype_);
  }
}

}  // namespace dsm
