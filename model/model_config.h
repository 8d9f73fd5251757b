// The architecture of a Hugging Face causal LM, parsed from its config.json.
//
// Supported `architectures`: LlamaForCausalLM (Llama 1-3, DeepSeek-LLM,
// DeepSeek-Math), Qwen2ForCausalLM (q/k/v bias), Qwen3ForCausalLM (per-head
// q/k RMSNorm, explicit head_dim). Absent keys take the defaults of the
// matching transformers config class. Every error is one line naming the key,
// e.g. "config.json: num_key_value_heads: 3 does not divide num_attention_heads 4".
#ifndef DSM_MODEL_MODEL_CONFIG_H_
#define DSM_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsm {

enum class ModelArch { kLlama, kQwen2, kQwen3 };

// "llama3" (Llama 3.1+), "linear" (positions divided by factor). A config
// with rope_scaling null or rope_type "default" has no RopeScaling.
struct RopeScaling {
  std::string rope_type;
  double factor = 1.0;
  double low_freq_factor = 1.0;                    // llama3 only
  double high_freq_factor = 4.0;                   // llama3 only
  int64_t original_max_position_embeddings = 8192; // llama3 only
};

struct ModelConfig {
  ModelArch arch = ModelArch::kLlama;
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama" (informational)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA; defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  // Bias on q/k/v (Qwen2: always; Llama/Qwen3: attention_bias, then on o_proj too).
  bool qkv_bias = false;
  bool o_bias = false;
  bool qk_norm = false;          // Qwen3
  std::string torch_dtype;       // as written ("bfloat16", ...); may be empty
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // from an int or a list

  // Checks ranges and consistency; the message names the key.
  absl::Status Validate() const;
};

// Parses config.json text. `source` prefixes error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source = "config.json");

// Reads and parses `model_dir`/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

}  // namespace dsm

#endif  // DSM_MODEL_MODEL_CONFIG_H_
