#include "common/config.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/auth_policy.h"
#include "common/auth_token.h"
#include "common/file_io.h"
#include "common/tls_credentials.h"

namespace dsm {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Every key of the configuration is declared once, in the Visit() functions
// below, with its range. Three visitors walk that declaration: one reads YAML,
// one checks ranges of an in-memory config, one writes YAML.

struct Required {
  bool value = false;
};

template <typename V>
void Visit(V& v, RunOptions& o) {
  v.Str("name", &o.name, Required{true});
  v.Str("runs_dir", &o.runs_dir);
  v.Int("seed", &o.seed, 0, kInt64Max);
}

template <typename V>
void Visit(V& v, LogOptions& o) {
  v.Enum("level", &o.level, {"trace", "debug", "info", "warn", "error"});
  v.Enum("format", &o.format, {"text", "json"});
}

template <typename V>
void Visit(V& v, RuntimeOptions& o) {
  v.Int("threads", &o.threads, 1, 256);
}

template <typename V>
void Visit(V& v, ServerOptions& o) {
  v.Str("host", &o.host);
  v.Str("metrics_host", &o.metrics_host);
  v.Int("max_message_bytes", &o.max_message_bytes, 1 << 20, int64_t{1} << 30);
  v.Num("keepalive_time_seconds", &o.keepalive_time_seconds, 1, 86400);
  v.Num("keepalive_timeout_seconds", &o.keepalive_timeout_seconds, 1, 3600);
  v.Num("drain_seconds", &o.drain_seconds, 0, 600);
  v.Num("shutdown_grace_seconds", &o.shutdown_grace_seconds, 0, 3600);
  v.Str("tls_cert_file", &o.tls_cert_file);
  v.Str("tls_key_file", &o.tls_key_file);
  v.Str("tls_client_ca_file", &o.tls_client_ca_file);
  v.Str("token_file", &o.token_file);
  v.Bool("allow_insecure", &o.allow_insecure);
}

template <typename V>
void Visit(V& v, Endpoint& o) {
  v.Int("port", &o.port, 0, 65535);
  v.Int("metrics_port", &o.metrics_port, 0, 65535);
}

template <typename V>
void Visit(V& v, ServicesOptions& o) {
  v.Section("coordinator", [&](V& s) { Visit(s, o.coordinator); });
  v.Section("learner", [&](V& s) { Visit(s, o.learner); });
  v.Section("worker", [&](V& s) { Visit(s, o.worker); });
  v.Section("verifier", [&](V& s) { Visit(s, o.verifier); });
  v.Section("meta_verifier", [&](V& s) { Visit(s, o.meta_verifier); });
}

template <typename V>
void Visit(V& v, ClientOptions& o) {
  v.Num("deadline_seconds", &o.deadline_seconds, 0.001, 86400);
  v.Int("max_attempts", &o.max_attempts, 1, 5);  // gRPC caps retry attempts at 5
  v.Num("initial_backoff_seconds", &o.initial_backoff_seconds, 0.001, 60);
  v.Num("max_backoff_seconds", &o.max_backoff_seconds, 0.001, 600);
  v.Num("backoff_multiplier", &o.backoff_multiplier, 1, 10);
  v.Str("tls_ca_file", &o.tls_ca_file);
  v.Str("tls_cert_file", &o.tls_cert_file);
  v.Str("tls_key_file", &o.tls_key_file);
  v.Str("tls_server_name", &o.tls_server_name);
}

template <typename V>
void Visit(V& v, LimitsOptions& o) {
  v.Int("max_prompt_tokens", &o.max_prompt_tokens, 1, 1 << 20);
  v.Int("max_completion_tokens", &o.max_completion_tokens, 1, 1 << 20);
  v.Int("max_n", &o.max_n, 1, 4096);
}

template <typename V>
void Visit(V& v, ModelOptions& o) {
  v.Str("path", &o.path);
  v.Enum("dtype", &o.dtype, {"float32", "bfloat16", "float16"});
  v.Int("max_batch", &o.max_batch, 1, 4096);
  v.Int("max_len", &o.max_len, 2, 1 << 20);
}

template <typename V>
void Visit(V& v, WorkerOptions& o) {
  v.Roles("roles", &o.roles, {"generator", "verifier", "meta_verifier"});
  v.Int("keep_versions", &o.keep_versions, 1, 64);
  v.Str("learner", &o.learner);
  v.Str("coordinator", &o.coordinator);
  v.Str("id", &o.id);
  v.Int("capacity", &o.capacity, 1, 4096);
}

template <typename V>
void Visit(V& v, LoraOptions& o) {
  v.Int("r", &o.r, 1, 1024);
  v.Num("alpha", &o.alpha, 1e-6, 1e6);
  v.Num("dropout", &o.dropout, 0, 0.99);
  v.Roles("target_modules", &o.target_modules,
          {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"});
}

template <typename V>
void Visit(V& v, GrpoConfig& o) {
  v.Num("epsilon_low", &o.epsilon_low, 0, 1);
  v.Num("epsilon_high", &o.epsilon_high, 0, 10);
  v.Num("kl_beta", &o.kl_beta, 0, 10);
  v.Bool("scale_rewards", &o.scale_rewards);
  v.Enum("aggregation", &o.aggregation, {"sequence", "token", "constant"});
  v.Bool("dynamic_sampling", &o.dynamic_sampling);
  v.Bool("importance_correction", &o.importance_correction);
}

template <typename V>
void Visit(V& v, LearnerConfig& o) {
  v.Roles("roles", &o.roles, {"generator", "verifier", "meta_verifier"});
  v.Num("learning_rate", &o.learning_rate, 1e-9, 1);
  v.Int("warmup_steps", &o.warmup_steps, 0, 1 << 24);
  v.Num("max_grad_norm", &o.max_grad_norm, 0, 1e6);
  v.Num("weight_decay", &o.weight_decay, 0, 1);
  v.Int("groups_per_step", &o.groups_per_step, 1, 65536);
  v.Int("max_policy_lag", &o.max_policy_lag, 0, 1000);
  v.Int("max_buffered_groups", &o.max_buffered_groups, 1, 1 << 20);
  v.Int("micro_batch_tokens", &o.micro_batch_tokens, 16, 1 << 24);
  v.Num("temperature", &o.temperature, 0.01, 10);
  v.Str("checkpoint_dir", &o.checkpoint_dir);
  v.Int("checkpoint_every_steps", &o.checkpoint_every_steps, 1, 1 << 30);
  v.Int("keep_checkpoints", &o.keep_checkpoints, 1, 1000);
  v.Bool("bulk_transfer", &o.bulk_transfer);
  v.Int("bulk_port", &o.bulk_port, 0, 65535);
  v.Str("bulk_host", &o.bulk_host);
  v.Int("threads", &o.threads, 0, 256);
  v.Section("grpo", [&](V& s) { Visit(s, o.grpo); });
}

template <typename V>
void Visit(V& v, CoordinatorConfig& o) {
  v.Num("lease_ttl_seconds", &o.lease_ttl_seconds, 0.1, 86400);
  v.Num("heartbeat_seconds", &o.heartbeat_seconds, 0.01, 3600);
  v.Int("max_leases_per_worker", &o.max_leases_per_worker, 1, 4096);
  v.Int("max_attempts", &o.max_attempts, 1, 100);
  v.Bool("pipeline", &o.pipeline);
  v.Str("learner", &o.learner);
  v.Str("verifier", &o.verifier);
  v.Str("meta_verifier", &o.meta_verifier);
  v.Str("prompts_dir", &o.prompts_dir);
  v.Int("iterations", &o.iterations, 1, 1000);
  v.Int("group_size", &o.group_size, 1, 1024);
  v.Int("verifier_epochs", &o.verifier_epochs, 1, 100);
  v.Int("meta_verifier_epochs", &o.meta_verifier_epochs, 1, 100);
  v.Int("warmup_epochs", &o.warmup_epochs, 0, 100);
  v.Int("enhanced_meta_verifications", &o.enhanced_meta_verifications, 1, 64);
  v.Num("enhanced_meta_temperature", &o.enhanced_meta_temperature, 0, 2);
  v.Bool("enhanced_analyses", &o.enhanced_analyses);
  v.Bool("lockstep", &o.lockstep);
  v.Bool("shuffle", &o.shuffle);
  v.Int("generator_problems", &o.generator_problems, 1, 1 << 20);
  v.Int("generator_epochs", &o.generator_epochs, 1, 100);
  v.Int("auto_label_problems", &o.auto_label_problems, 1, 1 << 20);
  v.Int("verifications", &o.verifications, 1, 64);
  v.Int("meta_verifications", &o.meta_verifications, 1, 64);
  v.Num("alpha", &o.alpha, 0, 1);
  v.Num("beta", &o.beta, 0, 1);
  v.Int("auto_label_n", &o.auto_label_n, 1, 64);
  v.Int("auto_label_m", &o.auto_label_m, 1, 64);
  v.Int("auto_label_k", &o.auto_label_k, 1, 64);
  v.Int("auto_label_correct_n", &o.auto_label_correct_n, 0, 64);
  v.Bool("auto_label_drop_conflicts", &o.auto_label_drop_conflicts);
  v.Bool("auto_label_unanimous_correct", &o.auto_label_unanimous_correct);
  v.Num("auto_label_temperature", &o.auto_label_temperature, 0, 2);
  v.Int("evaluation_proofs", &o.evaluation_proofs, 1, 1 << 20);
  v.Int("evaluation_problems", &o.evaluation_problems, 1, 1 << 20);
  v.Str("grader", &o.grader);
}

template <typename V>
void Visit(V& v, BuiltinConfig& o) {
  v.Str("domain", &o.domain);
  v.Int("train_problems", &o.train_problems, 1, 1000000);
  v.Int("eval_problems", &o.eval_problems, 1, 1000000);
  v.Int("unlabelled_problems", &o.unlabelled_problems, 0, 1000000);
  v.Int("proofs_per_problem", &o.proofs_per_problem, 0, 64);
  v.Int("own_proofs_per_problem", &o.own_proofs_per_problem, 0, 64);
  v.Num("correct_fraction", &o.correct_fraction, 0, 1);
  v.Int("analyses_per_proof", &o.analyses_per_proof, 0, 64);
  v.Int("num_variables", &o.num_variables, 3, 26);
  v.Int("min_chain_length", &o.min_chain_length, 2, 25);
  v.Int("max_chain_length", &o.max_chain_length, 2, 25);
  v.Int("min_distractors", &o.min_distractors, 0, 23);
  v.Int("max_distractors", &o.max_distractors, 0, 23);
  v.Int("hidden_size", &o.hidden_size, 8, 8192);
  v.Int("num_hidden_layers", &o.num_hidden_layers, 1, 256);
  v.Int("num_attention_heads", &o.num_attention_heads, 1, 256);
  v.Int("num_key_value_heads", &o.num_key_value_heads, 1, 256);
  v.Int("intermediate_size", &o.intermediate_size, 1, 65536);
  v.Int("vocab_size", &o.vocab_size, 64, 1 << 20);
  v.Num("initializer_range", &o.initializer_range, 1e-6, 1);
  v.Num("mimetic_attention", &o.mimetic_attention, 0, 4);
  v.Int("mimetic_layers", &o.mimetic_layers, 0, 256);
  v.Int("warmup_steps", &o.warmup_steps, 0, 1 << 24);
  v.Num("warmup_max_seconds", &o.warmup_max_seconds, 0, 1e7);
  v.Num("warmup_learning_rate", &o.warmup_learning_rate, 1e-9, 1);
  v.Int("warmup_lr_warmup_steps", &o.warmup_lr_warmup_steps, 0, 1 << 24);
  v.Int("warmup_batch", &o.warmup_batch, 1, 4096);
  v.Num("warmup_own_proof_share", &o.warmup_own_proof_share, 0, 1);
  v.Num("warmup_correct_fraction", &o.warmup_correct_fraction, 0, 1);
  v.Enum("warmup_generator_flaw", &o.warmup_generator_flaw,
         {"none", "fact_not_given", "gap", "wrong_step_conclusion", "unfinished_chain", "wrong_final_line",
          "fact_backwards", "missing_final_line", "step_after_goal"});  // tasks/chain_domain.h's ChainFlawName
  v.Num("warmup_generator_flaw_share", &o.warmup_generator_flaw_share, 0, 1);
  v.Num("warmup_generator_overclaim_share", &o.warmup_generator_overclaim_share, 0, 1);
  v.Num("warmup_scrambled_proof_share", &o.warmup_scrambled_proof_share, 0, 1);
  v.Num("warmup_meta_own_proof_share", &o.warmup_meta_own_proof_share, 0, 1);
  v.Num("warmup_meta_scrambled_proof_share", &o.warmup_meta_scrambled_proof_share, 0, 1);
  v.Int("warmup_lookup_drill_steps", &o.warmup_lookup_drill_steps, 0, 1 << 24);
  v.Int("warmup_lookup_drill_every", &o.warmup_lookup_drill_every, 0, 1 << 24);
  v.Num("warmup_lookup_drill_meta_share", &o.warmup_lookup_drill_meta_share, 0, 1);
  v.Bool("warmup_lookup_drill_note_only", &o.warmup_lookup_drill_note_only);
  v.Bool("warmup_lookup_drill_issue_in_mix", &o.warmup_lookup_drill_issue_in_mix);
  v.Bool("warmup_lr_restart_after_drill", &o.warmup_lr_restart_after_drill);
  v.Bool("warmup_scrambled_leading_on", &o.warmup_scrambled_leading_on);
  v.Int("warmup_micro_batch", &o.warmup_micro_batch, 0, 4096);
  v.Int("warmup_data_parallel", &o.warmup_data_parallel, 1, 64);
  v.Int("warmup_eval_every", &o.warmup_eval_every, 0, 1 << 24);
  v.Int("warmup_threads", &o.warmup_threads, 0, 256);
  v.Enum("warmup_precision", &o.warmup_precision, {"auto", "float32", "bfloat16"});
}

template <typename V>
void Visit(V& v, DsmConfig& c) {
  v.Section("run", [&](V& s) { Visit(s, c.run); });
  v.Section("log", [&](V& s) { Visit(s, c.log); });
  v.Section("runtime", [&](V& s) { Visit(s, c.runtime); });
  v.Section("server", [&](V& s) { Visit(s, c.server); });
  v.Section("services", [&](V& s) { Visit(s, c.services); });
  v.Section("client", [&](V& s) { Visit(s, c.client); });
  v.Section("limits", [&](V& s) { Visit(s, c.limits); });
  v.Section("model", [&](V& s) { Visit(s, c.model); });
  v.Section("worker", [&](V& s) { Visit(s, c.worker); });
  v.Section("lora", [&](V& s) { Visit(s, c.lora); });
  v.Section("learner", [&](V& s) { Visit(s, c.learner); });
  v.Section("coordinator", [&](V& s) { Visit(s, c.coordinator); });
  v.Section("builtin", [&](V& s) { Visit(s, c.builtin); });
}

std::string FormatNumber(double value) { return absl::StrFormat("%g", value); }

// Checks ranges and required keys of an in-memory config.
class CheckVisitor {
 public:
  explicit CheckVisitor(std::string path = "") : path_(std::move(path)) {}

  template <typename T>
  void Int(const char* key, T* value, int64_t lo, int64_t hi) {
    if (*value < lo || *value > hi) {
      Fail(absl::StrCat(Join(key), ": ", *value, " is out of range [", lo, ", ", hi, "]"));
    }
  }
  void Num(const char* key, double* value, double lo, double hi) {
    if (!(*value >= lo && *value <= hi)) {
      Fail(absl::StrCat(Join(key), ": ", FormatNumber(*value), " is out of range [",
                        FormatNumber(lo), ", ", FormatNumber(hi), "]"));
    }
  }
  void Str(const char* key, std::string* value, Required required = {}) {
    if (required.value && value->empty()) Fail(absl::StrCat("missing required key \"", Join(key), "\""));
  }
  void Enum(const char* key, std::string* value, const std::vector<std::string>& allowed) {
    for (const auto& a : allowed) {
      if (a == *value) return;
    }
    Fail(absl::StrCat(Join(key), ": ", QuoteValue(*value), " is not one of ", absl::StrJoin(allowed, ", ")));
  }
  void Bool(const char*, bool*) {}
  void Roles(const char* key, std::vector<std::string>* values, const std::vector<std::string>& allowed) {
    if (values->empty()) Fail(absl::StrCat(Join(key), ": needs at least one of ", absl::StrJoin(allowed, ", ")));
    for (const std::string& value : *values) {
      if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
        Fail(absl::StrCat(Join(key), ": ", QuoteValue(value), " is not one of ", absl::StrJoin(allowed, ", ")));
      }
    }
  }
  template <typename F>
  void Section(const char* key, F&& visit) {
    CheckVisitor child(Join(key));
    visit(child);
    if (error_.empty()) error_ = child.error_;
  }
  const std::string& error() const { return error_; }

 private:
  std::string Join(const char* key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
  }
  void Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }
  std::string path_;
  std::string error_;
};

// Reads YAML into the config, then range-checks each value as it is read.
class ReadVisitor {
 public:
  explicit ReadVisitor(ConfigReader reader) : reader_(std::move(reader)) {}

  template <typename T>
  void Int(const char* key, T* value, int64_t lo, int64_t hi) {
    reader_.Optional(key, value);
    Check(key, [&](CheckVisitor& c) { c.Int(key, value, lo, hi); });
  }
  void Num(const char* key, double* value, double lo, double hi) {
    reader_.Optional(key, value);
    Check(key, [&](CheckVisitor& c) { c.Num(key, value, lo, hi); });
  }
  void Str(const char* key, std::string* value, Required required = {}) {
    if (required.value) {
      reader_.Required(key, value);
    } else {
      reader_.Optional(key, value);
    }
    Check(key, [&](CheckVisitor& c) { c.Str(key, value, required); });
  }
  void Enum(const char* key, std::string* value, const std::vector<std::string>& allowed) {
    reader_.OneOf(key, allowed, value);
  }
  void Bool(const char* key, bool* value) { reader_.Optional(key, value); }
  void Roles(const char* key, std::vector<std::string>* values, const std::vector<std::string>& allowed) {
    reader_.Optional(key, values);
    Check(key, [&](CheckVisitor& c) { c.Roles(key, values, allowed); });
  }
  template <typename F>
  void Section(const char* key, F&& visit) {
    ReadVisitor child(reader_.Section(key));
    visit(child);
  }

 private:
  template <typename F>
  void Check(const char* key, F&& check) {
    if (!reader_.Has(key)) return;  // defaults are checked by ValidateConfig
    CheckVisitor checker(reader_.path());
    check(checker);
    if (!checker.error().empty()) reader_.Fail(checker.error());
  }
  ConfigReader reader_;
};

// Writes every key, defaults included.
class YamlVisitor {
 public:
  explicit YamlVisitor(YAML::Emitter* out) : out_(out) {}

  template <typename T>
  void Int(const char* key, T* value, int64_t, int64_t) {
    *out_ << YAML::Key << key << YAML::Value << static_cast<long long>(*value);
  }
  void Num(const char* key, double* value, double, double) {
    *out_ << YAML::Key << key << YAML::Value << *value;
  }
  void Str(const char* key, std::string* value, Required = {}) {
    *out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << *value;
  }
  void Enum(const char* key, std::string* value, const std::vector<std::string>&) {
    *out_ << YAML::Key << key << YAML::Value << *value;
  }
  void Bool(const char* key, bool* value) { *out_ << YAML::Key << key << YAML::Value << *value; }
  void Roles(const char* key, std::vector<std::string>* values, const std::vector<std::string>&) {
    *out_ << YAML::Key << key << YAML::Value << YAML::Flow << *values;
  }
  template <typename F>
  void Section(const char* key, F&& visit) {
    *out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    visit(*this);
    *out_ << YAML::EndMap;
  }

 private:
  YAML::Emitter* out_;
};

// The pairs of security keys, then the loopback rule (auth_policy.h).
absl::Status ValidateSecurity(const DsmConfig& config) {
  const ServerOptions& server = config.server;
  const ClientOptions& client = config.client;
  auto both = [](const std::string& a_key, const std::string& a, const std::string& b_key,
                 const std::string& b) -> absl::Status {
    if (!a.empty() && b.empty()) return absl::InvalidArgumentError(absl::StrCat(b_key, ": required when ", a_key, " is set"));
    if (a.empty() && !b.empty()) return absl::InvalidArgumentError(absl::StrCat(a_key, ": required when ", b_key, " is set"));
    return absl::OkStatus();
  };
  if (absl::Status s = both("server.tls_cert_file", server.tls_cert_file, "server.tls_key_file", server.tls_key_file);
      !s.ok()) {
    return s;
  }
  if (!server.tls_client_ca_file.empty() && server.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "server.tls_client_ca_file: mutual TLS needs server.tls_cert_file and server.tls_key_file");
  }
  if (absl::Status s = both("client.tls_cert_file", client.tls_cert_file, "client.tls_key_file", client.tls_key_file);
      !s.ok()) {
    return s;
  }
  const bool client_tls = !client.tls_ca_file.empty() || !server.tls_cert_file.empty();
  if (!client.tls_cert_file.empty() && !client_tls) {
    return absl::InvalidArgumentError(
        "client.tls_cert_file: a client certificate needs TLS: set client.tls_ca_file (or server.tls_cert_file)");
  }
  if (!server.tls_client_ca_file.empty() && client.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "client.tls_cert_file: required because server.tls_client_ca_file is set (mutual TLS: dsm's own "
        "clients must show a certificate)");
  }
  const char* env_token = std::getenv(kAuthTokenEnvVar);
  const bool token = !server.token_file.empty() || (env_token != nullptr && env_token[0] != '\0');
  SecuritySettings server_settings;
  server_settings.tls = !server.tls_cert_file.empty();
  server_settings.mutual_tls = !server.tls_client_ca_file.empty();
  server_settings.token = token;
  server_settings.allow_insecure = server.allow_insecure;
  if (absl::Status s = CheckServerSecurity(server.host, server_settings); !s.ok()) return s;
  SecuritySettings client_settings;
  client_settings.tls = client_tls;
  client_settings.token = token;
  client_settings.allow_insecure = server.allow_insecure;
  if (absl::Status s = CheckClientTarget("worker.learner", config.worker.learner, client_settings); !s.ok()) {
    return s;
  }
  return CheckClientTarget("worker.coordinator", config.worker.coordinator, client_settings);
}

}  // namespace

absl::Status CheckSecurityFiles(const DsmConfig& config) {
  const std::pair<const char*, const std::string*> pem_files[] = {
      {"server.tls_cert_file", &config.server.tls_cert_file},
      {"server.tls_key_file", &config.server.tls_key_file},
      {"server.tls_client_ca_file", &config.server.tls_client_ca_file},
      {"client.tls_ca_file", &config.client.tls_ca_file},
      {"client.tls_cert_file", &config.client.tls_cert_file},
      {"client.tls_key_file", &config.client.tls_key_file},
  };
  for (const auto& [key, path] : pem_files) {
    if (path->empty()) continue;
    if (absl::StatusOr<std::string> pem = ReadPemFile(key, *path); !pem.ok()) return pem.status();
  }
  return LoadBearerToken(config.server.token_file).status();
}

absl::Status ValidateConfig(const DsmConfig& config) {
  DsmConfig copy = config;
  CheckVisitor checker;
  Visit(checker, copy);
  if (!checker.error().empty()) return absl::InvalidArgumentError(checker.error());
  if (config.client.max_backoff_seconds < config.client.initial_backoff_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "client.max_backoff_seconds: ", FormatNumber(config.client.max_backoff_seconds),
        " is below client.initial_backoff_seconds (", FormatNumber(config.client.initial_backoff_seconds),
        ")"));
  }
  if (config.coordinator.heartbeat_seconds >= config.coordinator.lease_ttl_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator.heartbeat_seconds: ", FormatNumber(config.coordinator.heartbeat_seconds),
        " must be below coordinator.lease_ttl_seconds (", FormatNumber(config.coordinator.lease_ttl_seconds), ")"));
  }
  if (config.coordinator.auto_label_k > config.coordinator.auto_label_n) {
    return absl::InvalidArgumentError(absl::StrCat("coordinator.auto_label_k: ", config.coordinator.auto_label_k,
                                                   " is over coordinator.auto_label_n (",
                                                   config.coordinator.auto_label_n, "): no proof could be labelled"));
  }
  if (config.coordinator.auto_label_correct_n != 0 &&
      config.coordinator.auto_label_correct_n < config.coordinator.auto_label_n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator.auto_label_correct_n: ", config.coordinator.auto_label_correct_n,
        " is under coordinator.auto_label_n (", config.coordinator.auto_label_n, "): 0, or n analyses or more"));
  }
  // Each of these is the n of one request to a worker or scorer, which refuse more than max_n.
  const CoordinatorConfig& c = config.coordinator;
  for (const auto& [name, n] : {std::pair<const char*, int>{"group_size", c.group_size},
                                {"verifications", c.verifications},
                                {"meta_verifications", c.meta_verifications},
                                {"enhanced_meta_verifications", c.enhanced_meta_verifications},
                                {"auto_label_n", c.auto_label_n},
                                {"auto_label_m", c.auto_label_m}}) {
    if (n > config.limits.max_n) {
      return absl::InvalidArgumentError(absl::StrCat("coordinator.", name, ": ", n, " is over limits.max_n (",
                                                     config.limits.max_n, "): the services refuse requests for more"));
    }
  }
  if (!config.coordinator.grader.empty() && config.coordinator.grader != "chain") {
    return absl::InvalidArgumentError(absl::StrCat("coordinator.grader: \"", config.coordinator.grader,
                                                   "\" is not one of \"\", chain"));
  }
  if (!config.builtin.domain.empty() && config.builtin.domain != "chain") {
    return absl::InvalidArgumentError(absl::StrCat("builtin.domain: \"", config.builtin.domain,
                                                   "\" is not one of \"\", chain"));
  }
  if (config.builtin.warmup_lookup_drill_steps > config.builtin.warmup_steps) {
    return absl::InvalidArgumentError(absl::StrCat("builtin.warmup_lookup_drill_steps: ",
                                                   config.builtin.warmup_lookup_drill_steps,
                                                   " is over builtin.warmup_steps (", config.builtin.warmup_steps, ")"));
  }
  if (config.coordinator.pipeline) {
    for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"learner", &config.coordinator.learner},
                                     {"verifier", &config.coordinator.verifier},
                                     {"meta_verifier", &config.coordinator.meta_verifier}}) {
      if (value->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("coordinator.", key, ": required with coordinator.pipeline: true (host:port)"));
      }
    }
  }
  return ValidateSecurity(config);
}

absl::StatusOr<DsmConfig> ParseConfig(const std::string& yaml_text, const std::string& source) {
  auto prefixed = [&](const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  };
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1,
                                                   ": invalid YAML: ", e.msg));
  }
  DsmConfig config;
  ConfigReader reader(root, "");
  ReadVisitor visitor(reader);
  Visit(visitor, config);
  if (absl::Status s = reader.Finish(); !s.ok()) return prefixed(s);
  if (absl::Status s = ValidateConfig(config); !s.ok()) return prefixed(s);
  if (absl::Status s = CheckSecurityFiles(config); !s.ok()) return prefixed(s);
  return config;
}

absl::StatusOr<DsmConfig> LoadConfig(const std::string& path, std::string* text) {
  absl::StatusOr<std::string> read = ReadFileToString(path);
  if (absl::IsNotFound(read.status())) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open the config file"));
  }
  if (!read.ok()) return absl::InvalidArgumentError(read.status().message());
  absl::StatusOr<DsmConfig> config = ParseConfig(*read, path);
  if (config.ok() && text != nullptr) *text = *std::move(read);
  return config;
}

std::string ConfigToYaml(const DsmConfig& config) {
  DsmConfig copy = config;
  YAML::Emitter out;
  out << YAML::BeginMap;
  YamlVisitor visitor(&out);
  Visit(visitor, copy);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace dsm
