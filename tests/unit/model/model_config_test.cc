#include "model/model_config.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// DeepSeek-Math-7B's config.json (a Llama).
constexpr char kDeepSeekMath7B[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 100000,
  "eos_token_id": 100001,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 11008,
  "max_position_embeddings": 4096,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 30,
  "num_key_value_heads": 32,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "vocab_size": 102400
})";

// Qwen2.5-0.5B-Instruct.
constexpr char kQwen25[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
})";

// Llama-3.2-1B.
constexpr char kLlama32[] = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "intermediate_size": 8192, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 128256
})";

// Qwen3-0.6B (head_dim 128 != 1024 / 16).
constexpr char kQwen3[] = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "bos_token_id": 151643,
  "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
  "intermediate_size": 3072, "max_position_embeddings": 40960, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false,
  "vocab_size": 151936
})";

std::string ErrorOf(const std::string& json) {
  auto c = ParseModelConfig(json);
  EXPECT_FALSE(c.ok()) << json;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

// kDeepSeekMath7B with `key` replaced by `value` (raw JSON).
std::string WithKey(const std::string& key, const std::string& value) {
  std::string json = kDeepSeekMath7B;
  const std::string needle = "\"" + key + "\": ";
  size_t at = json.find(needle);
  if (at == std::string::npos) return json.substr(0, json.size() - 1) + ", \"" + key + "\": " + value + "}";
  size_t end = json.find_first_of(",\n", at + needle.size());
  return json.substr(0, at + needle.size()) + value + json.substr(end);
}

TEST(ModelConfig, ParsesDeepSeekMathAsLlama) {
  auto c = ParseModelConfig(kDeepSeekMath7B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, ModelArch::kLlama);
  EXPECT_EQ(c->vocab_size, 102400);
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->intermediate_size, 11008);
  EXPECT_EQ(c->num_hidden_layers, 30);
  EXPECT_EQ(c->num_attention_heads, 32);
  EXPECT_EQ(c->num_key_value_heads, 32);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->rope_scaling.has_value());
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->qk_norm);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->bos_token_id, 100000);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(100001));
}

TEST(ModelConfig, Qwen2HasQkvBiasButNoOutputBias) {
  auto c = ParseModelConfig(kQwen25);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, ModelArch::kQwen2);
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->o_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
}

TEST(ModelConfig, Llama3RopeScalingAndEosList) {
  auto c = ParseModelConfig(kLlama32);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->rope_scaling.has_value());
  EXPECT_EQ(c->rope_scaling->rope_type, "llama3");
  EXPECT_DOUBLE_EQ(c->rope_scaling->factor, 32.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_THAT(c->eos_token_ids, ElementsAre(128001, 128008, 128009));
  EXPECT_EQ(c->head_dim, 64);
}

TEST(ModelConfig, Qwen3HasQkNormAndExplicitHeadDim) {
  auto c = ParseModelConfig(kQwen3);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, ModelArch::kQwen3);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_NE(c->head_dim * c->num_attention_heads, c->hidden_size);
}

TEST(ModelConfig, LoadsTheReferenceFixtures) {
  DSM_REFERENCE_DIR_OR_RETURN(ref);
  auto qwen3 = LoadModelConfig(ref + "/qwen3_qknorm");
  ASSERT_TRUE(qwen3.ok()) << qwen3.status();
  EXPECT_EQ(qwen3->head_dim, 32);
  auto llama3 = LoadModelConfig(ref + "/llama3_rope_untied");
  ASSERT_TRUE(llama3.ok()) << llama3.status();
  EXPECT_THAT(llama3->eos_token_ids, ElementsAre(2, 3));
  auto qwen2 = LoadModelConfig(ref + "/qwen2_bias");
  ASSERT_TRUE(qwen2.ok()) << qwen2.status();
  EXPECT_FALSE(qwen2->bos_token_id.has_value());  // null
  auto missing = LoadModelConfig(ref + "/no_such_model");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(ModelConfig, DefaultsFollowTransformers) {
  auto c = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10,
      "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 4);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->max_position_embeddings, 2048);
  EXPECT_TRUE(c->eos_token_ids.empty());
  auto linear = ParseModelConfig(WithKey("rope_scaling", R"({"type": "linear", "factor": 4.0})"));
  ASSERT_TRUE(linear.ok()) << linear.status();
  EXPECT_EQ(linear->rope_scaling->rope_type, "linear");
  auto deflt = ParseModelConfig(WithKey("rope_scaling", R"({"rope_type": "default"})"));
  ASSERT_TRUE(deflt.ok()) << deflt.status();
  EXPECT_FALSE(deflt->rope_scaling.has_value());
}

TEST(ModelConfig, ErrorsNameTheKey) {
  EXPECT_THAT(ErrorOf(WithKey("architectures", R"(["MistralForCausalLM"])")),
              HasSubstr("architectures: \"MistralForCausalLM\" is not supported"));
  EXPECT_THAT(ErrorOf(WithKey("hidden_size", "null")), HasSubstr("hidden_size: is required"));
  EXPECT_THAT(ErrorOf(WithKey("hidden_size", "\"big\"")), HasSubstr("hidden_size: must be an integer"));
  EXPECT_THAT(ErrorOf(WithKey("num_key_value_heads", "5")),
              HasSubstr("num_key_value_heads: 5 does not divide num_attention_heads 32"));
  EXPECT_THAT(ErrorOf(WithKey("vocab_size", "0")), HasSubstr("vocab_size: 0 must be positive"));
  EXPECT_THAT(ErrorOf(WithKey("rope_scaling", R"({"rope_type": "yarn", "factor": 4})")),
              HasSubstr("rope_scaling.rope_type: \"yarn\" is not supported"));
  EXPECT_THAT(ErrorOf(WithKey("rope_scaling", R"({"rope_type": "llama3", "factor": 8})")),
              HasSubstr("low_freq_factor: is required"));
  EXPECT_THAT(ErrorOf(WithKey("rope_scaling", R"({"rope_type": "llama3", "factor": 8, "low_freq_factor": 4,
                                                  "high_freq_factor": 1, "original_max_position_embeddings": 8})")),
              HasSubstr("rope_scaling.high_freq_factor"));
  EXPECT_THAT(ErrorOf(WithKey("rope_scaling", "3")), HasSubstr("rope_scaling: must be an object or null"));
  EXPECT_THAT(ErrorOf(WithKey("hidden_act", "\"gelu\"")), HasSubstr("hidden_act: \"gelu\" is not supported"));
  EXPECT_THAT(ErrorOf(WithKey("eos_token_id", R"([1, "x"])")), HasSubstr("eos_token_id"));
  EXPECT_THAT(ErrorOf(WithKey("tie_word_embeddings", "1")), HasSubstr("tie_word_embeddings: must be true or false"));
  EXPECT_THAT(ErrorOf(WithKey("head_dim", "63")), HasSubstr("head_dim: 63 must be even"));
  EXPECT_THAT(ErrorOf(WithKey("use_sliding_window", "true")), HasSubstr("use_sliding_window"));
  EXPECT_THAT(ErrorOf("{"), HasSubstr("not JSON"));
  EXPECT_THAT(ErrorOf("{}"), HasSubstr("architectures"));
}

}  // namespace
}  // namespace dsm
