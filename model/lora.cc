#include "model/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "model/safetensors.h"

namespace dsm {
namespace {

using Json = nlohmann::json;

constexpr const char* kTargetNames[kNumLoraTargets] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
constexpr LoraTarget kAllTargets[kNumLoraTargets] = {LoraTarget::kQ,    LoraTarget::kK,  LoraTarget::kV,
                                                     LoraTarget::kO,    LoraTarget::kGate,
                                                     LoraTarget::kUp,   LoraTarget::kDown};

absl::Status MakeDirs(const std::string& dir) {
  std::string path;
  std::stringstream parts(dir);
  std::string part;
  if (!dir.empty() && dir[0] == '/') path = "/";
  while (std::getline(parts, part, '/')) {
    if (part.empty()) continue;
    path += part;
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("mkdir ", path, ": ", std::strerror(errno)));
    }
    path += "/";
  }
  return absl::OkStatus();
}

}  // namespace

const char* LoraTargetName(LoraTarget target) { return kTargetNames[static_cast<int>(target)]; }

absl::StatusOr<LoraTarget> LoraTargetFromName(const std::string& name) {
  for (int i = 0; i < kNumLoraTargets; ++i) {
    if (name == kTargetNames[i]) return kAllTargets[i];
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown LoRA target module \"", name,
                                                 "\" (known: ", absl::StrJoin(kTargetNames, ", "), ")"));
}

const char* LoraTargetGroup(LoraTarget target) {
  switch (target) {
    case LoraTarget::kGate:
    case LoraTarget::kUp:
    case LoraTarget::kDown:
      return "mlp";
    default:
      return "self_attn";
  }
}

std::pair<int64_t, int64_t> LoraTargetShape(const ModelConfig& c, LoraTarget target) {
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  switch (target) {
    case LoraTarget::kQ: return {q_out, c.hidden_size};
    case LoraTarget::kK: return {kv_out, c.hidden_size};
    case LoraTarget::kV: return {kv_out, c.hidden_size};
    case LoraTarget::kO: return {c.hidden_size, q_out};
    case LoraTarget::kGate: return {c.intermediate_size, c.hidden_size};
    case LoraTarget::kUp: return {c.intermediate_size, c.hidden_size};
    case LoraTarget::kDown: return {c.hidden_size, c.intermediate_size};
  }
  return {0, 0};
}

std::string LoraTensorName(int64_t layer, LoraTarget target, const char* which) {
  return absl::StrCat("base_model.model.model.layers.", layer, ".", LoraTargetGroup(target), ".",
                      LoraTargetName(target), ".", which, ".weight");
}

// ------------------------------------------------------------------ LoraConfig

absl::Status LoraConfig::Validate() const {
  auto bad = [](const std::string& key, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("adapter_config.json: ", key, ": ", what));
  };
  if (r <= 0) return bad("r", absl::StrCat(r, " must be positive"));
  if (!(lora_alpha > 0)) return bad("lora_alpha", absl::StrCat(lora_alpha, " must be positive"));
  if (!(lora_dropout >= 0 && lora_dropout < 1)) {
    return bad("lora_dropout", absl::StrCat(lora_dropout, " is outside [0, 1)"));
  }
  if (target_modules.empty()) return bad("target_modules", "must not be empty");
  std::set<std::string> seen;
  for (const std::string& m : target_modules) {
    absl::StatusOr<LoraTarget> t = LoraTargetFromName(m);
    if (!t.ok()) return bad("target_modules", std::string(t.status().message()));
    if (!seen.insert(m).second) return bad("target_modules", absl::StrCat("\"", m, "\" listed twice"));
  }
  if (bias != "none") return bad("bias", absl::StrCat("\"", bias, "\" is not supported (only \"none\")"));
  return absl::OkStatus();
}

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

bool LoraConfig::Targets(LoraTarget target) const {
  return std::find(target_modules.begin(), target_modules.end(), LoraTargetName(target)) != target_modules.end();
}

absl::StatusOr<LoraConfig> ParseLoraConfig(const std::string& json_text, const std::string& source) {
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not JSON: ", e.what()));
  }
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  auto bad = [&source](const std::string& key, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": ", what));
  };
  auto present = [&root](const char* key) { return root.contains(key) && !root[key].is_null(); };
  LoraConfig c;
  if (present("peft_type") && root["peft_type"] != "LORA") {
    return bad("peft_type", absl::StrCat(root["peft_type"].dump(), " is not supported (only \"LORA\")"));
  }
  if (!present("r") || !root["r"].is_number_integer()) return bad("r", "must be an integer");
  c.r = root["r"].get<int64_t>();
  if (present("lora_alpha")) {
    if (!root["lora_alpha"].is_number()) return bad("lora_alpha", "must be a number");
    c.lora_alpha = root["lora_alpha"].get<double>();
  } else {
    c.lora_alpha = 8;  // PEFT's default
  }
  if (present("lora_dropout")) {
    if (!root["lora_dropout"].is_number()) return bad("lora_dropout", "must be a number");
    c.lora_dropout = root["lora_dropout"].get<double>();
  }
  if (present("use_rslora")) {
    if (!root["use_rslora"].is_boolean()) return bad("use_rslora", "must be true or false");
    c.use_rslora = root["use_rslora"].get<bool>();
  }
  if (present("bias")) {
    if (!root["bias"].is_string()) return bad("bias", "must be a string");
    c.bias = root["bias"].get<std::string>();
  }
  if (present("base_model_name_or_path") && root["base_model_name_or_path"].is_string()) {
    c.base_model_name_or_path = root["base_model_name_or_path"].get<std::string>();
  }
  if (!present("target_modules")) return bad("target_modules", "is required");
  const Json& tm = root["target_modules"];
  c.target_modules.clear();
  if (tm.is_string()) {
    if (tm.get<std::string>() != "all-linear") {
      return bad("target_modules", absl::StrCat(tm.dump(), ": regular expressions are not supported; "
                                                          "use a list of module names or \"all-linear\""));
    }
    for (const char* name : kTargetNames) c.target_modules.push_back(name);
  } else if (tm.is_array()) {
    for (const Json& m : tm) {
      if (!m.is_string()) return bad("target_modules", "must be a list of strings");
      c.target_modules.push_back(m.get<std::string>());
    }
    // Canonical order, whatever order PEFT wrote its set in.
    std::sort(c.target_modules.begin(), c.target_modules.end(), [](const std::string& a, const std::string& b) {
      auto ia = LoraTargetFromName(a), ib = LoraTargetFromName(b);
      if (!ia.ok() || !ib.ok()) return a < b;
      return static_cast<int>(*ia) < static_cast<int>(*ib);
    });
  } else {
    return bad("target_modules", "must be a list of module names or \"all-linear\"");
  }
  // Features this runtime does not implement: refuse rather than misread.
  for (const char* key : {"use_dora", "fan_in_fan_out"}) {
    if (present(key) && root[key] != false) return bad(key, absl::StrCat(root[key].dump(), " is not supported"));
  }
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (present(key) && !(root[key].is_object() && root[key].empty())) {
      return bad(key, "per-module ranks/alphas are not supported");
    }
  }
  for (const char* key : {"modules_to_save", "layers_to_transform", "layer_replication"}) {
    if (present(key)) return bad(key, absl::StrCat(root[key].dump(), " is not supported"));
  }
  absl::Status valid = c.Validate();
  if (!valid.ok()) {
    std::string msg(valid.message());
    const std::string prefix = "adapter_config.json";
    if (msg.compare(0, prefix.size(), prefix) == 0) msg = source + msg.substr(prefix.size());
    return absl::InvalidArgumentError(msg);
  }
  return c;
}

std::string LoraConfigToJson(const LoraConfig& c) {
  Json j;
  j["alpha_pattern"] = Json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = c.base_model_name_or_path;
  j["bias"] = c.bias;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  if (c.lora_alpha == std::floor(c.lora_alpha) && std::abs(c.lora_alpha) < 1e15) {
    j["lora_alpha"] = static_cast<int64_t>(c.lora_alpha);
  } else {
    j["lora_alpha"] = c.lora_alpha;
  }
  j["lora_dropout"] = c.lora_dropout;
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["rank_pattern"] = Json::object();
  j["revision"] = nullptr;
  j["target_modules"] = c.target_modules;
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = false;
  j["use_rslora"] = c.use_rslora;
  return j.dump(2) + "\n";
}

// ----------------------------------------------------------------- LoraAdapter

absl::StatusOr<std::unique_ptr<LoraAdapter>> LoraAdapter::Create(const ModelConfig& model,
                                                                 const LoraConfig& config, uint64_t seed,
                                                                 torch::ScalarType dtype,
                                                                 torch::Device device) {
  absl::Status valid = config.Validate();
  if (!valid.ok()) return valid;
  std::unique_ptr<LoraAdapter> adapter(new LoraAdapter());
  adapter->config_ = config;
  adapter->scaling_ = config.scaling();
  adapter->layers_.resize(static_cast<size_t>(model.num_hidden_layers));
  try {
    torch::NoGradGuard no_grad;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (int64_t l = 0; l < model.num_hidden_layers; ++l) {
      for (LoraTarget t : kAllTargets) {
        if (!config.Targets(t)) continue;
        auto [out_features, in_features] = LoraTargetShape(model, t);
        // kaiming_uniform_(a=sqrt(5)): gain sqrt(2/(1+5)), bound gain*sqrt(3/fan_in) = 1/sqrt(fan_in).
        const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
        torch::Tensor a = torch::empty({config.r, in_features}, torch::kFloat);
        a.uniform_(-bound, bound, gen);
        LoraWeights& w = adapter->layers_[static_cast<size_t>(l)][static_cast<int>(t)];
        w.a = a.to(torch::TensorOptions().dtype(dtype).device(device));
        w.b = torch::zeros({out_features, config.r}, torch::TensorOptions().dtype(dtype).device(device));
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("initialising LoRA adapter: ", e.what_without_backtrace()));
  }
  return adapter;
}

absl::StatusOr<std::unique_ptr<LoraAdapter>> LoraAdapter::FromTensors(
    const ModelConfig& model, const LoraConfig& config, const std::map<std::string, torch::Tensor>& tensors,
    torch::ScalarType dtype, torch::Device device) {
  absl::Status valid = config.Validate();
  if (!valid.ok()) return valid;
  std::unique_ptr<LoraAdapter> adapter(new LoraAdapter());
  adapter->config_ = config;
  adapter->scaling_ = config.scaling();
  adapter->layers_.resize(static_cast<size_t>(model.num_hidden_layers));
  std::set<std::string> used;
  for (int64_t l = 0; l < model.num_hidden_layers; ++l) {
    for (LoraTarget t : kAllTargets) {
      if (!config.Targets(t)) continue;
      auto [out_features, in_features] = LoraTargetShape(model, t);
      LoraWeights& w = adapter->layers_[static_cast<size_t>(l)][static_cast<int>(t)];
      for (const char* which : {"lora_A", "lora_B"}) {
        const std::string name = LoraTensorName(l, t, which);
        auto it = tensors.find(name);
        if (it == tensors.end()) return absl::InvalidArgumentError(absl::StrCat("LoRA tensor \"", name, "\" is missing"));
        const bool is_a = which[5] == 'A';
        const std::vector<int64_t> want = is_a ? std::vector<int64_t>{config.r, in_features}
                                               : std::vector<int64_t>{out_features, config.r};
        if (it->second.sizes().vec() != want) {
          return absl::InvalidArgumentError(absl::StrCat("LoRA tensor \"", name, "\" has shape [",
                                                         absl::StrJoin(it->second.sizes().vec(), ", "),
                                                         "], expected [", absl::StrJoin(want, ", "), "]"));
        }
        if (!it->second.is_floating_point()) {
          return absl::InvalidArgumentError(absl::StrCat("LoRA tensor \"", name, "\" is not floating point"));
        }
        try {
          torch::Tensor copy = it->second.detach().to(torch::TensorOptions().dtype(dtype).device(device),
                                                      /*non_blocking=*/false, /*copy=*/true);
          (is_a ? w.a : w.b) = copy.contiguous();
        } catch (const c10::Error& e) {
          return absl::InternalError(absl::StrCat("loading ", name, ": ", e.what_without_backtrace()));
        }
        used.insert(name);
      }
    }
  }
  for (const auto& [name, t] : tensors) {
    if (used.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected tensor \"", name, "\" (not a lora_A/lora_B of a targeted module of a ",
          model.num_hidden_layers, "-layer model)"));
    }
  }
  return adapter;
}

absl::StatusOr<std::unique_ptr<LoraAdapter>> LoraAdapter::Load(const std::string& dir,
                                                               const ModelConfig& model,
                                                               torch::ScalarType dtype,
                                                               torch::Device device) {
  const std::string config_path = dir + "/adapter_config.json";
  absl::StatusOr<std::string> text = ReadFileToString(config_path);
  if (!text.ok()) return text.status();
  absl::StatusOr<LoraConfig> config = ParseLoraConfig(*text, config_path);
  if (!config.ok()) return config.status();
  const std::string weights_path = dir + "/adapter_model.safetensors";
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(weights_path);
  if (!file.ok()) return file.status();
  std::map<std::string, torch::Tensor> tensors;
  for (const std::string& name : (*file)->Names()) {
    absl::StatusOr<torch::Tensor> view = (*file)->View(name);
    if (!view.ok()) return view.status();
    tensors[name] = *view;  // FromTensors copies out of the mapping
  }
  absl::StatusOr<std::unique_ptr<LoraAdapter>> adapter = FromTensors(model, *config, tensors, dtype, device);
  if (!adapter.ok()) {
    return absl::Status(adapter.status().code(), absl::StrCat(weights_path, ": ", adapter.status().message()));
  }
  return adapter;
}

absl::Status LoraAdapter::Save(const std::string& dir) const {
  absl::Status s = MakeDirs(dir);
  if (!s.ok()) return s;
  s = WriteSafetensors(dir + "/adapter_model.safetensors", NamedTensors(), {{"format", "pt"}});
  if (!s.ok()) return s;
  return WriteFileAtomically(dir + "/adapter_config.json", LoraConfigToJson(config_));
}

std::map<std::string, torch::Tensor> LoraAdapter::NamedTensors() const {
  std::map<std::string, torch::Tensor> out;
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (LoraTarget t : kAllTargets) {
      const LoraWeights& w = layers_[l][static_cast<int>(t)];
      if (!w.a.defined()) continue;
      out[LoraTensorName(static_cast<int64_t>(l), t, "lora_A")] = w.a;
      out[LoraTensorName(static_cast<int64_t>(l), t, "lora_B")] = w.b;
    }
  }
  return out;
}

std::vector<torch::Tensor> LoraAdapter::Parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& layer : layers_) {
    for (const LoraWeights& w : layer) {
      if (!w.a.defined()) continue;
      out.push_back(w.a);
      out.push_back(w.b);
    }
  }
  return out;
}

void LoraAdapter::SetRequiresGrad(bool requires_grad) {
  for (auto& layer : layers_) {
    for (LoraWeights& w : layer) {
      if (!w.a.defined()) continue;
      w.a.set_requires_grad(requires_grad);
      w.b.set_requires_grad(requires_grad);
    }
  }
}

std::unique_ptr<LoraAdapter> LoraAdapter::Clone() const {
  std::unique_ptr<LoraAdapter> copy(new LoraAdapter());
  copy->config_ = config_;
  copy->scaling_ = scaling_;
  copy->layers_.resize(layers_.size());
  torch::NoGradGuard no_grad;
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraWeights& w = layers_[l][t];
      if (!w.a.defined()) continue;
      copy->layers_[l][t] = {w.a.detach().clone(), w.b.detach().clone()};
    }
  }
  return copy;
}

const LoraWeights* LoraAdapter::Find(int64_t layer, LoraTarget target) const {
  const LoraWeights& w = layers_.at(static_cast<size_t>(layer))[static_cast<int>(target)];
  return w.a.defined() ? &w : nullptr;
}

}  // namespace dsm
