// `dsm config`, `dsm health`: the commands that deal with configs and
// running services (`dsm run` is run_command.cc).
#include <iostream>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/cli/app.h"

namespace dsm::cli {
namespace {

int ConfigCheck(const std::string& path, bool show) {
  absl::StatusOr<DsmConfig> config = LoadConfig(path);
  if (!config.ok()) return UsageError(std::string(config.status().message()));
  if (show) {
    std::cout << ConfigToYaml(*config);
  } else {
    std::cout << path << ": ok\n";
  }
  return kExitOk;
}

struct HealthFlags {
  std::string address;
  std::string service;
  std::string config;  // for TLS and the token
  double timeout_seconds = 5;
};

// Prints SERVING / NOT_SERVING / ... ; exit 0 only when SERVING, so it can be
// a container or Kubernetes health probe.
int Health(const HealthFlags& flags) {
  ChannelOptions options;
  if (!flags.config.empty()) {
    absl::StatusOr<DsmConfig> config = LoadConfig(flags.config);
    if (!config.ok()) return UsageError(std::string(config.status().message()));
    options = ChannelOptions::From(config->server, config->client);
  }
  options.max_attempts = 1;
  auto channel = MakeChannel(flags.address, options);
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(flags.timeout_seconds));
  context.set_wait_for_ready(false);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(flags.service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "dsm: health check of " << flags.address << " failed: " << status.error_message()
              << "\n";
    return kExitFailed;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitFailed;
}

}  // namespace

void AddServiceCommands(CLI::App& app, Action* action) {
  CLI::App* config = app.add_subcommand("config", "Check a configuration file or print it in full");
  config->require_subcommand(1);
  auto config_path = std::make_shared<std::string>();
  CLI::App* check = config->add_subcommand(
      "check", "Validate CONFIG; on error print one line naming the key, exit 2");
  check->add_option("CONFIG", *config_path, "YAML configuration file")->required();
  check->callback([action, config_path] { *action = [config_path] { return ConfigCheck(*config_path, false); }; });
  CLI::App* show = config->add_subcommand(
      "show", "Print the effective configuration of CONFIG, every default included");
  show->add_option("CONFIG", *config_path, "YAML configuration file")->required();
  show->callback([action, config_path] { *action = [config_path] { return ConfigCheck(*config_path, true); }; });

  auto health = std::make_shared<HealthFlags>();
  CLI::App* health_cmd = app.add_subcommand(
      "health", "Ask a dsm service for its grpc.health.v1 status; exit 0 only if SERVING");
  health_cmd->add_option("ADDRESS", health->address, "host:port of the service's gRPC port")->required();
  health_cmd->add_option("--service", health->service,
                         "Service name to ask about (e.g. dsm.v1.Learner); empty = the whole server");
  health_cmd->add_option("--config", health->config,
                         "The service's config: its TLS settings and token are used (needed when they are on)");
  health_cmd->add_option("--timeout", health->timeout_seconds, "Seconds to wait for the answer")
      ->check(CLI::Range(0.01, 3600.0));
  health_cmd->callback([action, health] { *action = [health] { return Health(*health); }; });
}

}  // namespace dsm::cli
