#include "common/config.h"

#include <cstdlib>
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
server: {host: 0.0.0.0, drain_seconds: 0.5}
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
            "test.yaml: unknown key \"runn\" (allowed at the top level: client, coordinator, learner, limits, "
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
  EXPECT_EQ(ErrorOf("run: {name: demo}\nworker: {capacity: 0}\n"),
            "test.yaml: worker.capacity: 0 is out of range [1, 4096]");
}

TEST(Config, EveryMessageIsOneLine) {
  for (const char* yaml : {"runn: 1\n", "run: {name: [1, 2]}\n", "run: {name: x}\nlog: {format: \"a\\nb\"}\n"}) {
    const std::string error = ErrorOf(yaml);
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

TEST(Config, LearnerSection) {
  absl::StatusOr<DsmConfig> config = ParseConfig(
      "run: {name: d}\nlearner: {learning_rate: 0.001, grpo: {kl_beta: 0, scale_rewards: false, "
      "aggregation: token}}\nlora: {r: 4, target_modules: [q_proj, v_proj]}\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->learner.learning_rate, 0.001);
  EXPECT_DOUBLE_EQ(config->learner.grpo.kl_beta, 0);
  EXPECT_FALSE(config->learner.grpo.scale_rewards);
  EXPECT_EQ(config->learner.grpo.aggregation, "token");
  EXPECT_EQ(config->lora.r, 4);
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
  absl::StatusOr<DsmConfig> config = LoadConfig("/nonexistent/x.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), "/nonexistent/x.yaml: cannot open the config file");
}

}  // namespace
}  // namespace dsm
