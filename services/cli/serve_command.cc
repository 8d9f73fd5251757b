// `dsm serve ROLE[,ROLE...]`: one or more services in one process, sharing
// one base model, each on its configured port, with /metrics and health.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/metrics_http_server.h"
#include "common/metrics_registry.h"
#include "common/shutdown_signal.h"
#include "services/cli/app.h"
#include "services/worker/worker_process.h"

namespace dsm::cli {
namespace {

struct ServeFlags {
  std::string roles;
  std::string config;
  std::string learner;
};

int Serve(const ServeFlags& flags) {
  absl::StatusOr<DsmConfig> config = LoadConfig(flags.config);
  if (!config.ok()) return UsageError(std::string(config.status().message()));
  std::vector<std::string> roles = absl::StrSplit(flags.roles, ',', absl::SkipEmpty());
  for (const std::string& role : roles) {
    if (role != "worker") {
      return UsageError("serve: unknown or not yet available role \"" + role + "\" (available: worker)");
    }
  }
  if (absl::Status s = InitLogging(config->log, flags.roles); !s.ok()) return UsageError(std::string(s.message()));

  MetricsRegistry& metrics = DefaultRegistry();
  (void)RegisterProcessMetrics(metrics, DSM_VERSION);
  absl::StatusOr<std::unique_ptr<WorkerProcess>> worker = WorkerProcess::Create(*config, flags.learner, &metrics);
  if (!worker.ok()) {
    std::cerr << "dsm: serve worker: " << worker.status().message() << "\n";
    return absl::IsInvalidArgument(worker.status()) ? kExitUsage : kExitFailed;
  }
  const Endpoint& endpoint = config->services.worker;
  GrpcServer server(GrpcServerOptions::From(config->server, endpoint));
  server.RegisterService((*worker)->service(), v1::Sampler::service_full_name());
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "dsm: serve worker: " << s.message() << "\n";
    return kExitFailed;
  }
  MetricsHttpServerOptions http;
  http.address = config->server.metrics_host.empty() ? config->server.host : config->server.metrics_host;
  http.port = endpoint.metrics_port;
  MetricsHttpServer metrics_server(metrics, http);
  if (absl::Status s = metrics_server.Start(); !s.ok()) {
    std::cerr << "dsm: serve worker: /metrics: " << s.message() << "\n";
    return kExitFailed;
  }
  // One line a supervisor (or a test) can parse for the bound ports.
  std::cout << "dsm serve worker: grpc " << server.address() << " metrics " << http.address << ":"
            << metrics_server.port() << " learner " << (*worker)->learner_address() << std::endl;
  WaitForShutdownSignal();
  server.Drain();
  metrics_server.Stop();
  return kExitOk;
}

}  // namespace

void AddServeCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* serve = app.add_subcommand(
      "serve", "Run services (comma-separated: worker) in this process until SIGTERM/SIGINT");
  serve->add_option("ROLES", flags->roles, "Services to run, e.g. worker")->required();
  serve->add_option("--config", flags->config, "YAML configuration file")->required();
  serve->add_option("--learner", flags->learner, "Learner host:port (overrides the config)");
  serve->callback([action, flags] { *action = [flags] { return Serve(*flags); }; });
}

}  // namespace dsm::cli
