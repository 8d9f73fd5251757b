#include "common/config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsm {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<DsmConfig> config = ParseConfig(yaml, "test.yaml");
  EXPECT_FALSE(config.ok()) << "expected an error for:\n" << yaml;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(Config, MinimalConfigGetsDefaults) {
  absl::StatusOr<DsmConfig> config = ParseConfig("run: {name: demo}\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->run.name, "demo");
  EXPECT_EQ(config->run.runs_dir, "runs");
  EXPECT_EQ(config->runtime.threads, 2);
  EXPECT_EQ(config->log.format, "text");
  EXPECT_EQ(config->services.learner.port, 50052);
  EXPECT_EQ(config->limits.max_n, 64);
}

TEST(Config, ReadsEveryKind) {
  absl::StatusOr<DsmConfig> config = ParseConfig(R"(
run: {name: demo, seed: 7}
log: {level: debug, format: json}
runtime: {threads: 8}
server: {host: 0.0.0.0, drain_seconds: 0.5, allow_insecure: true}
services: {verifier: {port: 6000, metrics_port: 0}}
)", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->run.seed, 7);
  EXPECT_EQ(config->log.level, "debug");
  EXPECT_EQ(config->log.format, "json");
  EXPECT_EQ(config->runtime.threads, 8);
  EXPECT_EQ(config->server.host, "0.0.0.0");
  EXPECT_DOUBLE_EQ(config->server.drain_seconds, 0.5);
  EXPECT_EQ(config->services.verifier.port, 6000);
  EXPECT_EQ(config->services.verifier.metrics_port, 0);
}

TEST(Config, UnknownTopLevelKey) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nrunn: 1\n"),
            "test.yaml: unknown key \"runn\" (allowed at the top level: builtin, client, coordinator, learner, limits, "
            "log, lora, model, run, runtime, server, services, worker)");
}

TEST(Config, UnknownNestedKey) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nlog: {levl: info}\n"),
            "test.yaml: unknown key \"log.levl\" (allowed in \"log\": format, level)");
}

TEST(Config, WrongTypeInteger) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nruntime: {threads: two}\n"),
            "test.yaml: runtime.threads: expected an integer, got \"two\"");
}

TEST(Config, WrongTypeMapWhereScalarExpected) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {host: {a: 1}}\n"),
            "test.yaml: server.host: expected a string, got a map");
}

TEST(Config, WrongTypeScalarWhereSectionExpected) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nlog: loud\n"),
            "test.yaml: log: expected a map, got \"loud\"");
}

TEST(Config, WrongTypeNumber) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {drain_seconds: soon}\n"),
            "test.yaml: server.drain_seconds: expected a number, got \"soon\"");
}

TEST(Config, IntegerOutOfRange) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nruntime: {threads: 0}\n"),
            "test.yaml: runtime.threads: 0 is out of range [1, 256]");
}

TEST(Config, PortOutOfRange) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nservices: {learner: {port: 70000}}\n"),
            "test.yaml: services.learner.port: 70000 is out of range [0, 65535]");
}

TEST(Config, NumberOutOfRange) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nclient: {deadline_seconds: -1}\n"),
            "test.yaml: client.deadline_seconds: -1 is out of range [0.001, 86400]");
}

TEST(Config, EnumNotAllowed) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nlog: {format: xml}\n"),
            "test.yaml: log.format: \"xml\" is not one of text, json");
}

TEST(Config, MissingRequired) {
  EXPECT_EQ(ErrorOf("log: {level: info}\n"), "test.yaml: missing required key \"run.name\"");
}

TEST(Config, EmptyRequiredString) {
  EXPECT_EQ(ErrorOf("run: {name: \"\"}\n"), "test.yaml: missing required key \"run.name\"");
}

TEST(Config, InvalidYamlNamesLine) {
  EXPECT_THAT(ErrorOf("run: {name: demo\nlog: [\n"), HasSubstr("test.yaml: line "));
}

TEST(Config, NotAMap) {
  EXPECT_EQ(ErrorOf("- a\n- b\n"), "test.yaml: the document must be a map, got a list");
}

TEST(Config, CrossFieldCheck) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nclient: {initial_backoff_seconds: 10, max_backoff_seconds: 1}\n"),
            "test.yaml: client.max_backoff_seconds: 1 is below client.initial_backoff_seconds (10)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {lease_ttl_seconds: 5, heartbeat_seconds: 5}\n"),
            "test.yaml: coordinator.heartbeat_seconds: 5 must be below coordinator.lease_ttl_seconds (5)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {pipeline: true, learner: \"h:1\", verifier: \"h:2\"}\n"),
            "test.yaml: coordinator.meta_verifier: required with coordinator.pipeline: true (host:port)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {auto_label_n: 2, auto_label_k: 3}\n"),
            "test.yaml: coordinator.auto_label_k: 3 is over coordinator.auto_label_n (2): no proof could be labelled");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {auto_label_n: 8, auto_label_correct_n: 6}\n"),
            "test.yaml: coordinator.auto_label_correct_n: 6 is under coordinator.auto_label_n (8): 0, or n analyses "
            "or more");
  // A request's n over the services' limit: refused at load, not as work left out mid-run.
  EXPECT_EQ(ErrorOf("run: {name: demo}\nlimits: {max_n: 16}\ncoordinator: {auto_label_n: 24}\n"),
            "test.yaml: coordinator.auto_label_n: 24 is over limits.max_n (16): the services refuse requests for "
            "more");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nlimits: {max_n: 4}\ncoordinator: {group_size: 8}\n"),
            "test.yaml: coordinator.group_size: 8 is over limits.max_n (4): the services refuse requests for more");
  // auto_label_correct_n is not one request: the analyses past n go in requests of max_n at most.
  EXPECT_TRUE(
      ParseConfig("run: {name: demo}\nlimits: {max_n: 16}\ncoordinator: {auto_label_correct_n: 40}\n", "t.yaml").ok());
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {auto_label_temperature: 2.5}\n"),
            "test.yaml: coordinator.auto_label_temperature: 2.5 is out of range [0, 2]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {enhanced_meta_temperature: -0.5}\n"),
            "test.yaml: coordinator.enhanced_meta_temperature: -0.5 is out of range [0, 2]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {enhanced_meta_verifications: 0}\n"),
            "test.yaml: coordinator.enhanced_meta_verifications: 0 is out of range [1, 64]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {enhanced_analyses: maybe}\n"),
            "test.yaml: coordinator.enhanced_analyses: expected true or false, got \"maybe\"");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {lockstep: 2}\n"),
            "test.yaml: coordinator.lockstep: expected true or false, got \"2\"");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {warmup_epochs: -1}\n"),
            "test.yaml: coordinator.warmup_epochs: -1 is out of range [0, 100]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {shuffle: sometimes}\n"),
            "test.yaml: coordinator.shuffle: expected true or false, got \"sometimes\"");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {evaluation_proofs: 0}\n"),
            "test.yaml: coordinator.evaluation_proofs: 0 is out of range [1, 1048576]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {alpha: 1.5}\n"),
            "test.yaml: coordinator.alpha: 1.5 is out of range [0, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_own_proof_share: -0.1}\n"),
            "test.yaml: builtin.warmup_own_proof_share: -0.1 is out of range [0, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_threads: 300}\n"),
            "test.yaml: builtin.warmup_threads: 300 is out of range [0, 256]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_scrambled_proof_share: 2}\n"),
            "test.yaml: builtin.warmup_scrambled_proof_share: 2 is out of range [0, 1]");
  // A key written twice: YAML forbids it, and the parser would keep one value silently.
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin:\n  train_problems: 8\n  warmup_steps: 10\n  train_problems: 9\n"),
            "test.yaml: duplicate key \"builtin.train_problems\" (line 5)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nrun: {name: other}\n"), "test.yaml: duplicate key \"run\" (line 2)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_meta_own_proof_share: 1.5}\n"),
            "test.yaml: builtin.warmup_meta_own_proof_share: 1.5 is out of range [0, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_meta_scrambled_proof_share: -1}\n"),
            "test.yaml: builtin.warmup_meta_scrambled_proof_share: -1 is out of range [0, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_steps: 100, warmup_lookup_drill_steps: 101}\n"),
            "test.yaml: builtin.warmup_lookup_drill_steps: 101 is over builtin.warmup_steps (100)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {initializer_range: 0}\n"),
            "test.yaml: builtin.initializer_range: 0 is out of range [1e-06, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {mimetic_attention: -1}\n"),
            "test.yaml: builtin.mimetic_attention: -1 is out of range [0, 4]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\ncoordinator: {grader: exact}\n"),
            "test.yaml: coordinator.grader: \"exact\" is not one of \"\", chain");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {domain: algebra}\n"),
            "test.yaml: builtin.domain: \"algebra\" is not one of \"\", chain");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_batch: 0}\n"),
            "test.yaml: builtin.warmup_batch: 0 is out of range [1, 4096]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_micro_batch: -1}\n"),
            "test.yaml: builtin.warmup_micro_batch: -1 is out of range [0, 4096]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_data_parallel: 0}\n"),
            "test.yaml: builtin.warmup_data_parallel: 0 is out of range [1, 64]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_precision: fp16}\n"),
            "test.yaml: builtin.warmup_precision: \"fp16\" is not one of auto, float32, bfloat16");
  EXPECT_THAT(ErrorOf("run: {name: demo}\nbuiltin: {warmup_generator_flaw: typo}\n"),
              testing::StartsWith("test.yaml: builtin.warmup_generator_flaw: \"typo\" is not one of none, "));
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_generator_flaw_share: 2}\n"),
            "test.yaml: builtin.warmup_generator_flaw_share: 2 is out of range [0, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_generator_overclaim_share: -0.1}\n"),
            "test.yaml: builtin.warmup_generator_overclaim_share: -0.1 is out of range [0, 1]");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nbuiltin: {warmup_eval_every: -5}\n"),
            "test.yaml: builtin.warmup_eval_every: -5 is out of range [0, 16777216]");
  EXPECT_THAT(ErrorOf("run: {name: demo}\nbuiltin: {warmup_lookup_drill_note_only: 3}\n"),
              HasSubstr("builtin.warmup_lookup_drill_note_only"));
  EXPECT_THAT(ErrorOf("run: {name: demo}\nbuiltin: {warmup_lookup_drill_issue_in_mix: maybe}\n"),
              HasSubstr("builtin.warmup_lookup_drill_issue_in_mix"));
  absl::StatusOr<DsmConfig> drill = ParseConfig(
      "run: {name: demo}\nbuiltin: {warmup_lookup_drill_note_only: true, warmup_scrambled_leading_on: true, "
      "warmup_lr_restart_after_drill: true, warmup_lookup_drill_issue_in_mix: true}\n",
      "test.yaml");
  ASSERT_TRUE(drill.ok()) << drill.status();
  EXPECT_TRUE(drill->builtin.warmup_lookup_drill_note_only);
  EXPECT_TRUE(drill->builtin.warmup_lookup_drill_issue_in_mix);
  EXPECT_TRUE(drill->builtin.warmup_scrambled_leading_on);
  EXPECT_TRUE(drill->builtin.warmup_lr_restart_after_drill);
  EXPECT_EQ(ErrorOf("run: {name: demo}\nworker: {capacity: 0}\n"),
            "test.yaml: worker.capacity: 0 is out of range [1, 4096]");
}

TEST(Config, EveryMessageIsOneLine) {
  for (const char* yaml : {"runn: 1\n", "run: {name: [1, 2]}\n", "run: {name: x}\nlog: {format: \"a\\nb\"}\n"}) {
    const std::string error = ErrorOf(yaml);
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

TEST(Config, LearnerBulkTransferKeys) {
  absl::StatusOr<DsmConfig> defaults = ParseConfig("run: {name: d}\n", "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_TRUE(defaults->learner.bulk_transfer);
  EXPECT_EQ(defaults->learner.bulk_port, 0);
  EXPECT_EQ(defaults->learner.bulk_host, "");
  absl::StatusOr<DsmConfig> config =
      ParseConfig("run: {name: d}\nlearner: {bulk_transfer: false, bulk_port: 50060, bulk_host: learner-0}\n",
                  "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->learner.bulk_transfer);
  EXPECT_EQ(config->learner.bulk_port, 50060);
  EXPECT_EQ(config->learner.bulk_host, "learner-0");
  EXPECT_EQ(ErrorOf("run: {name: d}\nlearner: {bulk_port: 70000}\n"),
            "test.yaml: learner.bulk_port: 70000 is out of range [0, 65535]");
  EXPECT_EQ(ErrorOf("run: {name: d}\nlearner: {bulk_transfer: maybe}\n"),
            "test.yaml: learner.bulk_transfer: expected true or false, got \"maybe\"");
}

TEST(Config, LearnerThreadsDefaultToTheRuntimes) {
  absl::StatusOr<DsmConfig> defaults = ParseConfig("run: {name: d}\n", "test.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->learner.threads, 0);  // runtime.threads
  absl::StatusOr<DsmConfig> config = ParseConfig("run: {name: d}\nlearner: {threads: 2}\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->learner.threads, 2);
  EXPECT_EQ(ErrorOf("run: {name: d}\nlearner: {threads: -1}\n"),
            "test.yaml: learner.threads: -1 is out of range [0, 256]");
}

TEST(Config, LearnerSection) {
  absl::StatusOr<DsmConfig> config = ParseConfig(
      "run: {name: d}\nlearner: {learning_rate: 0.001, warmup_steps: 3, grpo: {kl_beta: 0, scale_rewards: false, "
      "aggregation: token}}\nlora: {r: 4, target_modules: [q_proj, v_proj]}\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->learner.learning_rate, 0.001);
  EXPECT_EQ(config->learner.warmup_steps, 3);
  EXPECT_DOUBLE_EQ(config->learner.grpo.kl_beta, 0);
  EXPECT_FALSE(config->learner.grpo.scale_rewards);
  EXPECT_EQ(config->learner.grpo.aggregation, "token");
  EXPECT_EQ(config->lora.r, 4);
  EXPECT_EQ(ErrorOf("run: {name: d}\nlearner: {warmup_steps: -1}\n"),
            "test.yaml: learner.warmup_steps: -1 is out of range [0, 16777216]");
  EXPECT_EQ(ErrorOf("run: {name: d}\nlearner: {grpo: {scale_rewards: maybe}}\n"),
            "test.yaml: learner.grpo.scale_rewards: expected true or false, got \"maybe\"");
  EXPECT_EQ(ErrorOf("run: {name: d}\nlora: {target_modules: [q_proj, qkv]}\n"),
            "test.yaml: lora.target_modules: \"qkv\" is not one of q_proj, k_proj, v_proj, o_proj, "
            "gate_proj, up_proj, down_proj");
}

TEST(Config, ListOfRoles) {
  absl::StatusOr<DsmConfig> config =
      ParseConfig("run: {name: d}\nworker: {roles: [generator, verifier]}\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->worker.roles, (std::vector<std::string>{"generator", "verifier"}));
  EXPECT_EQ(ErrorOf("run: {name: d}\nworker: {roles: [generator, judge]}\n"),
            "test.yaml: worker.roles: \"judge\" is not one of generator, verifier, meta_verifier");
  EXPECT_EQ(ErrorOf("run: {name: d}\nworker: {roles: []}\n"),
            "test.yaml: worker.roles: needs at least one of generator, verifier, meta_verifier");
  EXPECT_EQ(ErrorOf("run: {name: d}\nworker: {roles: generator}\n"),
            "test.yaml: worker.roles: expected a list of strings, got \"generator\"");
}

TEST(Config, ValidateCatchesProgrammaticValues) {
  DsmConfig config;
  config.run.name = "x";
  config.limits.max_n = 0;
  EXPECT_EQ(ValidateConfig(config).message(), "limits.max_n: 0 is out of range [1, 4096]");
}

TEST(Config, YamlRoundTrip) {
  absl::StatusOr<DsmConfig> config = ParseConfig("run: {name: demo, seed: 9}\nruntime: {threads: 3}\n", "a");
  ASSERT_TRUE(config.ok()) << config.status();
  const std::string yaml = ConfigToYaml(*config);
  absl::StatusOr<DsmConfig> again = ParseConfig(yaml, "b");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
  EXPECT_EQ(ConfigToYaml(*again), yaml);
  EXPECT_EQ(again->run.seed, 9);
  EXPECT_EQ(again->runtime.threads, 3);
}

TEST(Config, ShippedConfigsAreValid) {
  const char* source_dir = std::getenv("DSM_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr);
  absl::StatusOr<DsmConfig> config = LoadConfig(std::string(source_dir) + "/configs/tiny.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->run.name, "tiny");
}

TEST(Config, MissingFileNamesThePath) {
  std::string text = "untouched";
  absl::StatusOr<DsmConfig> config = LoadConfig("/nonexistent/x.yaml", &text);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), "/nonexistent/x.yaml: cannot open the config file");
  EXPECT_EQ(text, "untouched");
}

// `dsm serve` and `dsm start` hand the coordinator the text LoadConfig parsed, not a second read.
TEST(Config, LoadConfigGivesBackTheTextItParsed) {
  const std::string path = ::testing::TempDir() + "/config_text.yaml";
  const std::string yaml = "run:\n  name: texted   # a comment survives\n";
  { std::ofstream(path) << yaml; }
  std::string text;
  absl::StatusOr<DsmConfig> config = LoadConfig(path, &text);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->run.name, "texted");
  EXPECT_EQ(text, yaml);
  { std::ofstream(path) << "run: [\n"; }
  text = "untouched";
  EXPECT_FALSE(LoadConfig(path, &text).ok());
  EXPECT_EQ(text, "untouched");
}

// Security keys (README "Security"). The files only need to be readable PEM
// for the config; real certificates are in tests/integration/grpc_security_test.

// Clears DSM_AUTH_TOKEN (or sets it) for one test.
class TokenEnv {
 public:
  explicit TokenEnv(const char* value) {
    if (const char* old = std::getenv("DSM_AUTH_TOKEN")) {
      saved_ = old;
      had_ = true;
    }
    if (value == nullptr) {
      unsetenv("DSM_AUTH_TOKEN");
    } else {
      setenv("DSM_AUTH_TOKEN", value, 1);
    }
  }
  ~TokenEnv() {
    if (had_) {
      setenv("DSM_AUTH_TOKEN", saved_.c_str(), 1);
    } else {
      unsetenv("DSM_AUTH_TOKEN");
    }
  }

 private:
  bool had_ = false;
  std::string saved_;
};

class ConfigSecurity : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dsm-config-security-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    Write("server.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    Write("server.key", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n");
    Write("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    Write("token", "0123456789abcdef-token\n");
    Write("short-token", "abc\n");
    Write("not-pem", "hello\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = Path(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  // A config with TLS and a token on every interface.
  std::string Secure(const std::string& extra_server = "", const std::string& client = "") const {
    return "run: {name: demo}\nserver: {host: 0.0.0.0, tls_cert_file: " + Path("server.crt") +
           ", tls_key_file: " + Path("server.key") + ", token_file: " + Path("token") + extra_server + "}\n" +
           "client: {tls_ca_file: " + Path("ca.crt") + client + "}\n";
  }

  TokenEnv no_env_token_{nullptr};
  std::filesystem::path dir_;
};

TEST_F(ConfigSecurity, DefaultsAreOffOnLoopback) {
  absl::StatusOr<DsmConfig> config = ParseConfig("run: {name: demo}\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.tls_cert_file, "");
  EXPECT_EQ(config->server.token_file, "");
  EXPECT_FALSE(config->server.allow_insecure);
  EXPECT_EQ(config->client.tls_ca_file, "");
}

TEST_F(ConfigSecurity, ReadsEveryKey) {
  absl::StatusOr<DsmConfig> config =
      ParseConfig(Secure(", tls_client_ca_file: " + Path("ca.crt"),
                         ", tls_cert_file: " + Path("server.crt") + ", tls_key_file: " + Path("server.key") +
                             ", tls_server_name: learner.internal"),
                  "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server.tls_cert_file, Path("server.crt"));
  EXPECT_EQ(config->server.tls_key_file, Path("server.key"));
  EXPECT_EQ(config->server.tls_client_ca_file, Path("ca.crt"));
  EXPECT_EQ(config->server.token_file, Path("token"));
  EXPECT_EQ(config->client.tls_ca_file, Path("ca.crt"));
  EXPECT_EQ(config->client.tls_cert_file, Path("server.crt"));
  EXPECT_EQ(config->client.tls_server_name, "learner.internal");
  // `config show` prints the paths, never the token.
  const std::string yaml = ConfigToYaml(*config);
  EXPECT_THAT(yaml, HasSubstr("token_file: \"" + Path("token") + "\""));
  EXPECT_THAT(yaml, HasSubstr("allow_insecure: false"));
  EXPECT_EQ(yaml.find("0123456789abcdef-token"), std::string::npos);
  EXPECT_TRUE(ParseConfig(yaml, "shown.yaml").ok());
}

TEST_F(ConfigSecurity, NonLoopbackHostWithoutTlsNamesTheKey) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {host: 0.0.0.0}\n"),
            "test.yaml: server.tls_cert_file: required because server.host \"0.0.0.0\" is not a loopback "
            "address (or set server.allow_insecure: true)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {host: 10.0.0.7, tls_cert_file: " + Path("server.crt") +
                    ", tls_key_file: " + Path("server.key") + "}\n"),
            "test.yaml: server.token_file: required because server.host \"10.0.0.7\" is not a loopback "
            "address (or set DSM_AUTH_TOKEN, or server.allow_insecure: true)");
  EXPECT_TRUE(ParseConfig("run: {name: demo}\nserver: {host: 0.0.0.0, allow_insecure: true}\n", "t").ok());
  EXPECT_TRUE(ParseConfig(Secure(), "t").ok());
}

TEST_F(ConfigSecurity, TokenFromTheEnvironmentCounts) {
  const std::string tls_only = "run: {name: demo}\nserver: {host: 0.0.0.0, tls_cert_file: " + Path("server.crt") +
                               ", tls_key_file: " + Path("server.key") + "}\n";
  TokenEnv env("0123456789abcdef-from-env");
  EXPECT_TRUE(ParseConfig(tls_only, "t").ok());
  TokenEnv short_env("abc");
  EXPECT_EQ(ErrorOf(tls_only), "test.yaml: DSM_AUTH_TOKEN: the token is 3 characters; at least 16 are needed");
}

TEST_F(ConfigSecurity, TokenWithoutTlsIsRefusedEvenOnLoopback) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {token_file: " + Path("token") + "}\n"),
            "test.yaml: server.token_file: a bearer token (server.token_file or DSM_AUTH_TOKEN) needs TLS: set "
            "server.tls_cert_file and server.tls_key_file (the token is never sent in clear text)");
}

TEST_F(ConfigSecurity, KeysThatGoInPairs) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {tls_cert_file: " + Path("server.crt") + "}\n"),
            "test.yaml: server.tls_key_file: required when server.tls_cert_file is set");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {tls_key_file: " + Path("server.key") + "}\n"),
            "test.yaml: server.tls_cert_file: required when server.tls_key_file is set");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {tls_client_ca_file: " + Path("ca.crt") + "}\n"),
            "test.yaml: server.tls_client_ca_file: mutual TLS needs server.tls_cert_file and server.tls_key_file");
  EXPECT_EQ(ErrorOf(Secure("", ", tls_cert_file: " + Path("server.crt"))),
            "test.yaml: client.tls_key_file: required when client.tls_cert_file is set");
  EXPECT_EQ(ErrorOf(Secure(", tls_client_ca_file: " + Path("ca.crt"))),
            "test.yaml: client.tls_cert_file: required because server.tls_client_ca_file is set (mutual TLS: "
            "dsm's own clients must show a certificate)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nclient: {tls_cert_file: " + Path("server.crt") + ", tls_key_file: " +
                    Path("server.key") + "}\n"),
            "test.yaml: client.tls_cert_file: a client certificate needs TLS: set client.tls_ca_file (or "
            "server.tls_cert_file)");
}

TEST_F(ConfigSecurity, UnreadableOrNonPemFilesNameTheKey) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nclient: {tls_ca_file: " + Path("missing.crt") + "}\n"),
            "test.yaml: client.tls_ca_file: cannot read \"" + Path("missing.crt") + "\"");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {tls_cert_file: " + Path("not-pem") + ", tls_key_file: " +
                    Path("server.key") + "}\n"),
            "test.yaml: server.tls_cert_file: \"" + Path("not-pem") + "\" is not PEM (no \"-----BEGIN\" line)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {host: 0.0.0.0, tls_cert_file: " + Path("server.crt") +
                    ", tls_key_file: " + Path("server.key") + ", token_file: " + Path("short-token") + "}\n"),
            "test.yaml: server.token_file: the token is 3 characters; at least 16 are needed");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nserver: {host: 0.0.0.0, tls_cert_file: " + Path("server.crt") +
                    ", tls_key_file: " + Path("server.key") + ", token_file: " + Path("nope") + "}\n"),
            "test.yaml: server.token_file: cannot read \"" + Path("nope") + "\"");
}

TEST_F(ConfigSecurity, RemoteTargetsOfAWorkerNeedClientSecurity) {
  EXPECT_EQ(ErrorOf("run: {name: demo}\nworker: {learner: \"10.0.0.5:50052\"}\n"),
            "test.yaml: worker.learner: \"10.0.0.5:50052\" is not a loopback address, so clients need TLS: set "
            "client.tls_ca_file (or set server.allow_insecure: true)");
  EXPECT_EQ(ErrorOf("run: {name: demo}\nworker: {coordinator: \"head:50051\"}\n"),
            "test.yaml: worker.coordinator: \"head:50051\" is not a loopback address, so clients need TLS: set "
            "client.tls_ca_file (or set server.allow_insecure: true)");
  EXPECT_TRUE(ParseConfig("run: {name: demo}\nworker: {learner: \"127.0.0.1:50052\"}\n", "t").ok());
  EXPECT_TRUE(ParseConfig(Secure() + "worker: {learner: \"10.0.0.5:50052\", coordinator: \"head:50051\"}\n", "t").ok());
}

TEST_F(ConfigSecurity, ValidateSeesProgrammaticValues) {
  DsmConfig config;
  config.run.name = "x";
  config.server.host = "192.168.1.2";
  EXPECT_EQ(ValidateConfig(config).message(),
            "server.tls_cert_file: required because server.host \"192.168.1.2\" is not a loopback address (or "
            "set server.allow_insecure: true)");
  config.server.allow_insecure = true;
  EXPECT_TRUE(ValidateConfig(config).ok());
}

}  // namespace
}  // namespace dsm
