// `dsm serve ROLE[,ROLE...]`: one or more services in one process, sharing
// one base model, each on its configured port, with /metrics and health.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/metrics_http_server.h"
#include "common/metrics_registry.h"
#include "common/shutdown_signal.h"
#include "services/cli/app.h"
#include "services/learner/learner_process.h"
#include "services/worker/worker_process.h"

namespace dsm::cli {
namespace {

struct ServeFlags {
  std::string roles;
  std::string config;
  std::string learner;
};

// One service of this process: its gRPC server and /metrics endpoint.
struct Hosted {
  std::string role;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<MetricsHttpServer> metrics;
};

absl::Status StartHosted(const DsmConfig& config, const std::string& role, const Endpoint& endpoint,
                         grpc::Service* service, const std::string& service_name, MetricsRegistry& metrics,
                         Hosted* hosted) {
  hosted->role = role;
  hosted->server = std::make_unique<GrpcServer>(GrpcServerOptions::From(config.server, endpoint));
  hosted->server->RegisterService(service, service_name);
  if (absl::Status s = hosted->server->Start(); !s.ok()) return s;
  MetricsHttpServerOptions http;
  http.address = config.server.metrics_host.empty() ? config.server.host : config.server.metrics_host;
  http.port = endpoint.metrics_port;
  hosted->metrics = std::make_unique<MetricsHttpServer>(metrics, http);
  if (absl::Status s = hosted->metrics->Start(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("/metrics: ", s.message()));
  }
  // One line a supervisor (or a test) can parse for the bound ports.
  std::cout << "dsm serve " << role << ": grpc " << hosted->server->address() << " metrics " << http.address
            << ":" << hosted->metrics->port() << std::endl;
  return absl::OkStatus();
}

int Serve(const ServeFlags& flags) {
  absl::StatusOr<DsmConfig> config = LoadConfig(flags.config);
  if (!config.ok()) return UsageError(std::string(config.status().message()));
  std::vector<std::string> roles = absl::StrSplit(flags.roles, ',', absl::SkipEmpty());
  if (roles.empty()) return UsageError("serve: no service named (available: worker, learner)");
  for (const std::string& role : roles) {
    if (role != "worker" && role != "learner") {
      return UsageError("serve: unknown or not yet available service \"" + role + "\" (available: worker, learner)");
    }
  }
  if (absl::Status s = InitLogging(config->log, flags.roles); !s.ok()) return UsageError(std::string(s.message()));
  auto fail = [](const std::string& role, const absl::Status& s) {
    std::cerr << "dsm: serve " << role << ": " << s.message() << "\n";
    return absl::IsInvalidArgument(s) ? kExitUsage : kExitFailed;
  };

  MetricsRegistry& metrics = DefaultRegistry();
  (void)RegisterProcessMetrics(metrics, DSM_VERSION);
  std::unique_ptr<LearnerProcess> learner;
  std::unique_ptr<WorkerProcess> worker;
  std::vector<Hosted> hosted;
  for (const std::string& role : roles) {
    Hosted h;
    absl::Status status;
    if (role == "learner") {
      absl::StatusOr<std::unique_ptr<LearnerProcess>> created = LearnerProcess::Create(*config, metrics);
      if (!created.ok()) return fail(role, created.status());
      learner = std::move(*created);
      status = StartHosted(*config, role, config->services.learner, learner->service(),
                           v1::Learner::service_full_name(), metrics, &h);
    } else {
      absl::StatusOr<std::unique_ptr<WorkerProcess>> created = WorkerProcess::Create(*config, flags.learner, &metrics);
      if (!created.ok()) return fail(role, created.status());
      worker = std::move(*created);
      status = StartHosted(*config, role, config->services.worker, worker->service(),
                           v1::Sampler::service_full_name(), metrics, &h);
    }
    if (!status.ok()) return fail(role, status);
    hosted.push_back(std::move(h));
  }
  WaitForShutdownSignal();
  for (Hosted& h : hosted) h.server->Drain();
  for (Hosted& h : hosted) h.metrics->Stop();
  return kExitOk;
}

}  // namespace

void AddServeCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* serve = app.add_subcommand(
      "serve", "Run services (comma-separated: worker, learner) in this process until SIGTERM/SIGINT");
  serve->add_option("ROLES", flags->roles, "Services to run, e.g. learner or worker")->required();
  serve->add_option("--config", flags->config, "YAML configuration file")->required();
  serve->add_option("--learner", flags->learner, "Learner host:port (overrides the config)");
  serve->callback([action, flags] { *action = [flags] { return Serve(*flags); }; });
}

}  // namespace dsm::cli
