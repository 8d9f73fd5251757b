#include "model/model_init.h"

#include <cmath>
#include <filesystem>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/seed_mix.h"
#include "model/lora.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace dsm {
namespace {

using nlohmann::ordered_json;

// N(0, std) floats from a SplitMix64 stream (Box-Muller, both outputs used).
torch::Tensor NormalTensor(const std::vector<int64_t>& shape, double std_dev, uint64_t seed) {
  torch::Tensor t = torch::empty(shape, torch::kFloat);
  float* out = t.data_ptr<float>();
  const int64_t n = t.numel();
  uint64_t state = seed;
  auto uniform = [&state] {  // (0, 1], 53 bits
    const uint64_t z = MixBits64(state);  // SplitMix64's next output
    state += 0x9e3779b97f4a7c15ULL;
    return (static_cast<double>(z >> 11) + 1.0) * 0x1.0p-53;
  };
  constexpr double kTwoPi = 6.283185307179586476925;
  for (int64_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double theta = kTwoPi * uniform();
    out[i] = static_cast<float>(std_dev * r * std::cos(theta));
    if (i + 1 < n) out[i + 1] = static_cast<float>(std_dev * r * std::sin(theta));
  }
  return t;
}

absl::Status Range(const char* field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo) return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is under ", lo));
  if (value > hi) return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is over ", hi));
  return absl::OkStatus();
}

std::string LayerPrefix(int64_t layer) { return absl::StrCat("model.layers.", layer, "."); }

// Mimetic attention weights of one layer (see ModelInitOptions::mimetic_attention): key and value
// rows read the hidden-state coordinates of their group (group g, row j: coordinate
// (g * head_dim + j) mod hidden); query rows are sqrt(a) times that coordinate plus N(0, 1 / hidden)
// noise; o_proj's columns are minus sqrt(b) / (heads per group) times the same plus noise, b = a / 2.
void MimeticAttention(const ModelConfig& config, double a, uint64_t seed, const std::string& prefix,
                      std::map<std::string, torch::Tensor>* out) {
  const int64_t d = config.hidden_size, heads = config.num_attention_heads, groups = config.num_key_value_heads;
  const int64_t head_dim = config.head_dim, per_group = heads / groups;
  const double b = a / 2, noise = 1.0 / std::sqrt(static_cast<double>(d));
  auto coordinate = [&](int64_t head_row) { return head_row % d; };  // row g * head_dim + j
  auto name = [&](const char* module) { return absl::StrCat(prefix, "self_attn.", module, ".weight"); };
  auto random = [&](const std::string& n, std::vector<int64_t> shape) {
    return NormalTensor(shape, noise, NamedSeed(seed, n));
  };
  torch::Tensor k = (*out)[name("k_proj")], v = (*out)[name("v_proj")];
  torch::Tensor q = (*out)[name("q_proj")], o = (*out)[name("o_proj")];
  torch::Tensor q_noise = random(name("q_proj"), {heads * head_dim, d});
  torch::Tensor o_noise = random(name("o_proj"), {d, heads * head_dim});
  for (int64_t r = 0; r < groups * head_dim; ++r) {
    k[r].zero_();
    k[r][coordinate(r)] = std::sqrt(a);
    v[r].zero_();
    v[r][coordinate(r)] = std::sqrt(b);
  }
  const double q_scale = std::sqrt(a), o_scale = std::sqrt(b) / static_cast<double>(per_group);
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t g = h / per_group;
    for (int64_t j = 0; j < head_dim; ++j) {
      const int64_t row = h * head_dim + j, c = coordinate(g * head_dim + j);
      q[row].copy_(q_noise[row] * q_scale);
      q[row][c] += q_scale;
      o.select(1, row).copy_(o_noise.select(1, row) * o_scale);
      o[c][row] -= o_scale;
    }
  }
}

}  // namespace

absl::Status ModelInitOptions::Validate() const {
  for (const auto& [field, value, lo, hi] :
       {std::make_tuple("hidden_size", hidden_size, int64_t{8}, int64_t{8192}),
        std::make_tuple("num_hidden_layers", num_hidden_layers, int64_t{1}, int64_t{256}),
        std::make_tuple("num_attention_heads", num_attention_heads, int64_t{1}, int64_t{256}),
        std::make_tuple("num_key_value_heads", num_key_value_heads, int64_t{1}, int64_t{256}),
        std::make_tuple("intermediate_size", intermediate_size, int64_t{1}, int64_t{65536}),
        std::make_tuple("max_position_embeddings", max_position_embeddings, int64_t{16}, int64_t{1} << 20)}) {
    absl::Status s = Range(field, value, lo, hi);
    if (!s.ok()) return s;
  }
  if (hidden_size % num_attention_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_attention_heads: ", num_attention_heads, " does not divide hidden_size ", hidden_size));
  }
  if ((hidden_size / num_attention_heads) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_attention_heads: head size hidden_size / ",
                                                   num_attention_heads, " = ", hidden_size / num_attention_heads,
                                                   " is odd (rotary embeddings need it even)"));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_key_value_heads: ", num_key_value_heads,
                                                   " does not divide num_attention_heads ", num_attention_heads));
  }
  if (!(rms_norm_eps > 0 && rms_norm_eps < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("rms_norm_eps: ", rms_norm_eps, " is not in (0, 1)"));
  }
  if (!(rope_theta > 0 && std::isfinite(rope_theta))) {
    return absl::InvalidArgumentError(absl::StrCat("rope_theta: ", rope_theta, " is not positive"));
  }
  if (!(initializer_range > 0 && initializer_range <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("initializer_range: ", initializer_range, " is not in (0, 1]"));
  }
  if (!(mimetic_attention >= 0 && mimetic_attention <= 4)) {
    return absl::InvalidArgumentError(absl::StrCat("mimetic_attention: ", mimetic_attention, " is not in [0, 4]"));
  }
  if (mimetic_layers < 0 || mimetic_layers > num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("mimetic_layers: ", mimetic_layers, " is not in [0, num_hidden_layers ",
                                                   num_hidden_layers, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelInitVocabulary> ReadModelInitVocabulary(const std::string& tokenizer_json,
                                                            const std::string& tokenizer_config_json) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromJson(tokenizer_json);
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", tokenizer.status().message()));
  }
  ModelInitVocabulary vocab;
  vocab.vocab_size = (*tokenizer)->vocab_size();
  if ((*tokenizer)->bos_id()) vocab.bos_token_id = *(*tokenizer)->bos_id();
  if ((*tokenizer)->eos_id()) vocab.eos_token_id = *(*tokenizer)->eos_id();
  if (tokenizer_config_json.empty()) return vocab;
  nlohmann::json config = nlohmann::json::parse(tokenizer_config_json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return absl::InvalidArgumentError("tokenizer_config.json: not a JSON object");
  const std::pair<const char*, std::optional<int64_t>*> keys[] = {
      {"bos_token", &vocab.bos_token_id}, {"eos_token", &vocab.eos_token_id}, {"pad_token", &vocab.pad_token_id}};
  for (const auto& [key, id] : keys) {
    auto it = config.find(key);
    if (it == config.end() || !it->is_string()) continue;
    const std::string token = it->get<std::string>();
    std::optional<int32_t> found = (*tokenizer)->TokenToId(token);
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer_config.json: ", key, ": \"", token, "\" is not a token of tokenizer.json"));
    }
    *id = *found;
  }
  return vocab;
}

std::string ModelInitConfigJson(const ModelInitOptions& options, const ModelInitVocabulary& vocab) {
  ordered_json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", vocab.vocab_size},
      {"hidden_size", options.hidden_size},
      {"intermediate_size", options.intermediate_size},
      {"num_hidden_layers", options.num_hidden_layers},
      {"num_attention_heads", options.num_attention_heads},
      {"num_key_value_heads", options.num_key_value_heads},
      {"head_dim", options.hidden_size / options.num_attention_heads},
      {"hidden_act", "silu"},
      {"max_position_embeddings", options.max_position_embeddings},
      {"initializer_range", options.initializer_range},
      {"rms_norm_eps", options.rms_norm_eps},
      {"rope_theta", options.rope_theta},
      {"rope_scaling", nullptr},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"mlp_bias", false},
      {"tie_word_embeddings", options.tie_word_embeddings},
      {"torch_dtype", "float32"},
      {"use_cache", true},
  };
  if (vocab.bos_token_id) config["bos_token_id"] = *vocab.bos_token_id;
  if (vocab.eos_token_id) config["eos_token_id"] = *vocab.eos_token_id;
  if (vocab.pad_token_id) config["pad_token_id"] = *vocab.pad_token_id;
  return config.dump(2) + "\n";
}

std::map<std::string, torch::Tensor> InitialModelWeights(const ModelConfig& config,
                                                         const ModelInitOptions& options) {
  const double initializer_range = options.initializer_range;
  const uint64_t seed = options.seed;
  const int64_t first_mimetic = options.mimetic_layers == 0 ? 0 : config.num_hidden_layers - options.mimetic_layers;
  std::map<std::string, torch::Tensor> out;
  auto normal = [&](const std::string& name, std::vector<int64_t> shape) {
    out[name] = NormalTensor(shape, initializer_range, NamedSeed(seed, name));
  };
  auto ones = [&](const std::string& name, int64_t size) { out[name] = torch::ones({size}, torch::kFloat); };
  normal("model.embed_tokens.weight", {config.vocab_size, config.hidden_size});
  ones("model.norm.weight", config.hidden_size);
  if (!config.tie_word_embeddings) normal("lm_head.weight", {config.vocab_size, config.hidden_size});
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const std::string p = LayerPrefix(l);
    ones(p + "input_layernorm.weight", config.hidden_size);
    ones(p + "post_attention_layernorm.weight", config.hidden_size);
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraTarget target = static_cast<LoraTarget>(t);
      auto [out_features, in_features] = LoraTargetShape(config, target);
      normal(absl::StrCat(p, LoraTargetGroup(target), ".", LoraTargetName(target), ".weight"),
             {out_features, in_features});
    }
    if (options.mimetic_attention > 0 && l >= first_mimetic) {
      MimeticAttention(config, options.mimetic_attention, seed, p, &out);
    }
  }
  return out;
}

int64_t CountModelParameters(const ModelConfig& config) {
  int64_t total = config.vocab_size * config.hidden_size * (config.tie_word_embeddings ? 1 : 2);
  total += config.hidden_size;  // final norm
  int64_t per_layer = 2 * config.hidden_size;
  for (int t = 0; t < kNumLoraTargets; ++t) {
    auto [out_features, in_features] = LoraTargetShape(config, static_cast<LoraTarget>(t));
    per_layer += out_features * in_features;
  }
  return total + per_layer * config.num_hidden_layers;
}

absl::StatusOr<ModelConfig> WriteInitialModel(const std::string& dir, const ModelInitOptions& options,
                                              const std::string& tokenizer_json,
                                              const std::string& tokenizer_config_json) {
  absl::Status valid = options.Validate();
  if (!valid.ok()) return valid;
  absl::StatusOr<ModelInitVocabulary> vocab = ReadModelInitVocabulary(tokenizer_json, tokenizer_config_json);
  if (!vocab.ok()) return vocab.status();
  const std::string config_json = ModelInitConfigJson(options, *vocab);
  absl::StatusOr<ModelConfig> config = ParseModelConfig(config_json);
  if (!config.ok()) return config.status();

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const std::filesystem::path root(dir);
  absl::Status s = WriteSafetensors((root / "model.safetensors").string(),
                                    InitialModelWeights(*config, options),
                                    {{"format", "pt"}});
  if (s.ok()) s = WriteFileAtomically((root / "tokenizer.json").string(), tokenizer_json);
  if (s.ok() && !tokenizer_config_json.empty()) {
    s = WriteFileAtomically((root / "tokenizer_config.json").string(), tokenizer_config_json);
  }
  // config.json last: a folder with one is complete.
  if (s.ok()) s = WriteFileAtomically((root / "config.json").string(), config_json);
  if (!s.ok()) return s;
  return config;
}

}  // namespace dsm
