// LoRA adapters in the PEFT layout, so adapters trained here load in the
// Python ecosystem (peft.PeftModel.from_pretrained) and back.
//
// Folder: adapter_config.json + adapter_model.safetensors with tensors named
//   base_model.model.model.layers.<i>.self_attn.<q|k|v|o>_proj.lora_A.weight  [r, in]
//   base_model.model.model.layers.<i>.mlp.<gate|up|down>_proj.lora_B.weight   [out, r]
// A targeted linear computes y = x W^T (+ b) + scaling * (dropout(x) A^T) B^T,
// scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).
#ifndef DSM_MODEL_LORA_H_
#define DSM_MODEL_LORA_H_

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace dsm {

// The linear modules of a Llama-family layer, in PEFT's naming.
enum class LoraTarget { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kNumLoraTargets = 7;

const char* LoraTargetName(LoraTarget target);  // "q_proj", ...
absl::StatusOr<LoraTarget> LoraTargetFromName(const std::string& name);
// "self_attn" or "mlp".
const char* LoraTargetGroup(LoraTarget target);
// [out_features, in_features] of a module for `config`.
std::pair<int64_t, int64_t> LoraTargetShape(const ModelConfig& config, LoraTarget target);

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 16;
  double lora_dropout = 0.0;  // applied only in training forwards
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};
  bool use_rslora = false;
  std::string bias = "none";  // the only supported value
  std::string base_model_name_or_path;  // informational, written to adapter_config.json

  // r > 0, alpha > 0, dropout in [0, 1), known target names, bias "none".
  absl::Status Validate() const;
  double scaling() const;
  bool Targets(LoraTarget target) const;
};

// adapter_config.json <-> LoraConfig. Parsing rejects what this runtime cannot
// honour (use_dora, fan_in_fan_out, rank/alpha patterns, modules_to_save,
// layers_to_transform, bias != "none") with the key in the message.
// target_modules may be a list or "all-linear".
absl::StatusOr<LoraConfig> ParseLoraConfig(const std::string& json_text,
                                           const std::string& source = "adapter_config.json");
std::string LoraConfigToJson(const LoraConfig& config);

// A and B of one targeted module.
struct LoraWeights {
  torch::Tensor a;  // [r, in]
  torch::Tensor b;  // [out, r]
};

// One adapter for one base architecture. Owns its tensors (leaf tensors; with
// SetRequiresGrad(true) they are the trainable parameters of the learner).
// Not thread-safe while being trained; safe to share read-only between
// forwards once training stopped touching it (publish a Clone()).
class LoraAdapter {
 public:
  // Fresh adapter initialised like PEFT: A ~ kaiming_uniform(a = sqrt(5)), i.e.
  // U(-1/sqrt(in), 1/sqrt(in)), B = 0. The values depend only on `seed` (drawn
  // in float32 on the CPU, then converted). Tensors do not require grad.
  static absl::StatusOr<std::unique_ptr<LoraAdapter>> Create(const ModelConfig& model,
                                                             const LoraConfig& config, uint64_t seed,
                                                             torch::ScalarType dtype = torch::kFloat,
                                                             torch::Device device = torch::kCPU);

  // From PEFT-named tensors (as NamedTensors() returns them). Every targeted
  // module of every layer must be present with the right shape, and nothing else.
  static absl::StatusOr<std::unique_ptr<LoraAdapter>> FromTensors(
      const ModelConfig& model, const LoraConfig& config,
      const std::map<std::string, torch::Tensor>& tensors, torch::ScalarType dtype = torch::kFloat,
      torch::Device device = torch::kCPU);

  // Reads adapter_config.json + adapter_model.safetensors from `dir`.
  static absl::StatusOr<std::unique_ptr<LoraAdapter>> Load(const std::string& dir,
                                                           const ModelConfig& model,
                                                           torch::ScalarType dtype = torch::kFloat,
                                                           torch::Device device = torch::kCPU);

  // Writes adapter_config.json + adapter_model.safetensors into `dir` (created
  // if missing), each file atomically. Tensors keep their dtype.
  absl::Status Save(const std::string& dir) const;

  // PEFT name -> tensor (aliases, not copies), e.g.
  // "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
  std::map<std::string, torch::Tensor> NamedTensors() const;
  // A then B of every targeted module, layer by layer, in LoraTarget order.
  std::vector<torch::Tensor> Parameters() const;
  void SetRequiresGrad(bool requires_grad);
  // Deep copy (detached; requires_grad false).
  std::unique_ptr<LoraAdapter> Clone() const;

  const LoraConfig& config() const { return config_; }
  double scaling() const { return scaling_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  // nullptr when the module is not targeted. Precondition: layer < num_layers().
  const LoraWeights* Find(int64_t layer, LoraTarget target) const;

 private:
  LoraAdapter() = default;

  LoraConfig config_;
  double scaling_ = 1.0;
  std::vector<std::array<LoraWeights, kNumLoraTargets>> layers_;  // undefined = not targeted
};

// PEFT tensor name of module `target` in `layer`; `which` is "lora_A" or "lora_B".
std::string LoraTensorName(int64_t layer, LoraTarget target, const char* which);

}  // namespace dsm

#endif  // DSM_MODEL_LORA_H_
