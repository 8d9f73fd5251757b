#include "model/model_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace dsm {
namespace {

using Json = nlohmann::json;

// Reads typed keys out of one JSON object; the first error wins and names the key.
class JsonReader {
 public:
  JsonReader(const Json& obj, std::string source) : obj_(obj), source_(std::move(source)) {}

  const absl::Status& status() const { return status_; }

  bool Has(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }

  void Int(const char* key, int64_t* out, bool required) {
    if (!status_.ok()) return;
    if (!Has(key)) {
      if (required) Fail(key, "is required");
      return;
    }
    const Json& v = obj_.at(key);
    if (v.is_number_integer()) {
      *out = v.get<int64_t>();
    } else if (v.is_number_float() && std::abs(v.get<double>()) < 9.0e15 &&
               v.get<double>() == std::floor(v.get<double>())) {
      *out = static_cast<int64_t>(v.get<double>());  // e.g. 4096.0
    } else {
      Fail(key, absl::StrCat("must be an integer, got ", v.dump()));
    }
  }

  void Double(const char* key, double* out) {
    if (!status_.ok() || !Has(key)) return;
    const Json& v = obj_.at(key);
    if (!v.is_number()) return Fail(key, absl::StrCat("must be a number, got ", v.dump()));
    *out = v.get<double>();
  }

  void Bool(const char* key, bool* out) {
    if (!status_.ok() || !Has(key)) return;
    const Json& v = obj_.at(key);
    if (!v.is_boolean()) return Fail(key, absl::StrCat("must be true or false, got ", v.dump()));
    *out = v.get<bool>();
  }

  void String(const char* key, std::string* out) {
    if (!status_.ok() || !Has(key)) return;
    const Json& v = obj_.at(key);
    if (!v.is_string()) return Fail(key, absl::StrCat("must be a string, got ", v.dump()));
    *out = v.get<std::string>();
  }

  // An int, a list of ints, or null.
  void IntList(const char* key, std::vector<int64_t>* out) {
    if (!status_.ok() || !Has(key)) return;
    const Json& v = obj_.at(key);
    if (v.is_number_integer()) {
      out->push_back(v.get<int64_t>());
      return;
    }
    if (v.is_array()) {
      for (const Json& e : v) {
        if (!e.is_number_integer()) {
          return Fail(key, absl::StrCat("must be an integer or a list of integers, got ", v.dump()));
        }
        out->push_back(e.get<int64_t>());
      }
      return;
    }
    Fail(key, absl::StrCat("must be an integer or a list of integers, got ", v.dump()));
  }

  void Fail(const std::string& key, const std::string& what) {
    if (status_.ok()) status_ = absl::InvalidArgumentError(absl::StrCat(source_, ": ", key, ": ", what));
  }

 private:
  const Json& obj_;
  std::string source_;
  absl::Status status_;
};

absl::Status ParseRopeScaling(const Json& v, const std::string& source, ModelConfig* c) {
  const std::string key = "rope_scaling";
  if (v.is_null()) return absl::OkStatus();
  if (!v.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": must be an object or null"));
  }
  JsonReader r(v, absl::StrCat(source, ": ", key));
  RopeScaling rs;
  r.String("type", &rs.rope_type);       // older spelling
  r.String("rope_type", &rs.rope_type);  // wins when both are present
  if (!r.status().ok()) return r.status();
  if (rs.rope_type.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ".rope_type: is required"));
  }
  if (rs.rope_type == "default") return absl::OkStatus();
  if (rs.rope_type == "linear") {
    if (!r.Has("factor")) r.Fail("factor", "is required");
    r.Double("factor", &rs.factor);
  } else if (rs.rope_type == "llama3") {
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor",
                          "original_max_position_embeddings"}) {
      if (!r.Has(k)) r.Fail(k, "is required for rope_type \"llama3\"");
    }
    r.Double("factor", &rs.factor);
    r.Double("low_freq_factor", &rs.low_freq_factor);
    r.Double("high_freq_factor", &rs.high_freq_factor);
    r.Int("original_max_position_embeddings", &rs.original_max_position_embeddings, true);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": ", key, ".rope_type: \"", rs.rope_type,
        "\" is not supported (supported: null, \"default\", \"linear\", \"llama3\")"));
  }
  if (!r.status().ok()) return r.status();
  c->rope_scaling = rs;
  return absl::OkStatus();
}

}  // namespace

absl::Status ModelConfig::Validate() const {
  auto bad = [](const std::string& key, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, ": ", what));
  };
  const std::pair<const char*, int64_t> positive[] = {
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_dim},
      {"max_position_embeddings", max_position_embeddings},
  };
  for (const auto& [key, value] : positive) {
    if (value <= 0) return bad(key, absl::StrCat(value, " must be positive"));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return bad("num_key_value_heads", absl::StrCat(num_key_value_heads, " does not divide num_attention_heads ",
                                                   num_attention_heads));
  }
  if (head_dim % 2 != 0) return bad("head_dim", absl::StrCat(head_dim, " must be even (rotary embedding)"));
  if (!(rms_norm_eps > 0)) return bad("rms_norm_eps", absl::StrCat(rms_norm_eps, " must be positive"));
  if (!(rope_theta > 0)) return bad("rope_theta", absl::StrCat(rope_theta, " must be positive"));
  if (rope_scaling.has_value()) {
    const RopeScaling& rs = *rope_scaling;
    if (!(rs.factor > 0)) return bad("rope_scaling.factor", absl::StrCat(rs.factor, " must be positive"));
    if (rs.rope_type == "llama3") {
      if (!(rs.low_freq_factor > 0)) {
        return bad("rope_scaling.low_freq_factor", absl::StrCat(rs.low_freq_factor, " must be positive"));
      }
      if (!(rs.high_freq_factor > rs.low_freq_factor)) {
        return bad("rope_scaling.high_freq_factor",
                   absl::StrCat(rs.high_freq_factor, " must exceed low_freq_factor ", rs.low_freq_factor));
      }
      if (rs.original_max_position_embeddings <= 0) {
        return bad("rope_scaling.original_max_position_embeddings",
                   absl::StrCat(rs.original_max_position_embeddings, " must be positive"));
      }
    }
  }
  if (bos_token_id.has_value() && *bos_token_id < 0) {
    return bad("bos_token_id", absl::StrCat(*bos_token_id, " must not be negative"));
  }
  for (int64_t id : eos_token_ids) {
    if (id < 0) return bad("eos_token_id", absl::StrCat(id, " must not be negative"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not JSON: ", e.what()));
  }
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));

  ModelConfig c;
  auto arch_it = root.find("architectures");
  if (arch_it == root.end() || !arch_it->is_array() || arch_it->empty() || !(*arch_it)[0].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": architectures: must be a non-empty list of names"));
  }
  c.architecture = (*arch_it)[0].get<std::string>();
  if (c.architecture == "LlamaForCausalLM") {
    c.arch = ModelArch::kLlama;
  } else if (c.architecture == "Qwen2ForCausalLM") {
    c.arch = ModelArch::kQwen2;
    c.max_position_embeddings = 32768;
  } else if (c.architecture == "Qwen3ForCausalLM") {
    c.arch = ModelArch::kQwen3;
    c.max_position_embeddings = 32768;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": architectures: \"", c.architecture,
        "\" is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"));
  }

  JsonReader r(root, source);
  r.String("model_type", &c.model_type);
  r.Int("vocab_size", &c.vocab_size, true);
  r.Int("hidden_size", &c.hidden_size, true);
  r.Int("intermediate_size", &c.intermediate_size, true);
  r.Int("num_hidden_layers", &c.num_hidden_layers, true);
  r.Int("num_attention_heads", &c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  r.Int("num_key_value_heads", &c.num_key_value_heads, false);
  if (c.arch == ModelArch::kQwen3) {
    c.head_dim = 128;  // Qwen3Config's default
  } else if (c.num_attention_heads > 0) {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  r.Int("head_dim", &c.head_dim, false);
  r.Int("max_position_embeddings", &c.max_position_embeddings, false);
  r.Double("rms_norm_eps", &c.rms_norm_eps);
  r.Double("rope_theta", &c.rope_theta);
  r.Bool("tie_word_embeddings", &c.tie_word_embeddings);
  bool attention_bias = false;
  r.Bool("attention_bias", &attention_bias);
  if (c.arch == ModelArch::kQwen2) {
    c.qkv_bias = true;  // Qwen2Attention hard-codes bias on q/k/v, none on o
    c.o_bias = false;
  } else {
    c.qkv_bias = attention_bias;
    c.o_bias = attention_bias;
  }
  c.qk_norm = c.arch == ModelArch::kQwen3;
  r.String("torch_dtype", &c.torch_dtype);
  if (c.torch_dtype.empty()) r.String("dtype", &c.torch_dtype);  // newer transformers
  std::vector<int64_t> bos;
  r.IntList("bos_token_id", &bos);
  if (!bos.empty()) c.bos_token_id = bos.front();
  r.IntList("eos_token_id", &c.eos_token_ids);

  std::string hidden_act = "silu";
  r.String("hidden_act", &hidden_act);
  if (r.status().ok() && hidden_act != "silu") {
    r.Fail("hidden_act", absl::StrCat("\"", hidden_act, "\" is not supported (only \"silu\")"));
  }
  bool flag = false;
  r.Bool("mlp_bias", &flag);
  if (r.status().ok() && flag) r.Fail("mlp_bias", "true is not supported");
  flag = false;
  r.Bool("use_sliding_window", &flag);
  if (r.status().ok() && flag) r.Fail("use_sliding_window", "true is not supported");
  if (!r.status().ok()) return r.status();

  if (auto it = root.find("rope_scaling"); it != root.end()) {
    absl::Status s = ParseRopeScaling(*it, source, &c);
    if (!s.ok()) return s;
  }
  absl::Status valid = c.Validate();
  if (!valid.ok()) {
    // Validate() says "config.json"; use the caller's source name instead.
    std::string msg(valid.message());
    const std::string prefix = "config.json";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg = source + msg.substr(prefix.size());
    return absl::InvalidArgumentError(msg);
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseModelConfig(*text, path);
}

}  // namespace dsm
