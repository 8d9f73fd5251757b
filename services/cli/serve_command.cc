// `dsm serve ROLE[,ROLE...]`: one or more services in one process, sharing
// one base model, each on its configured port, with /metrics and health.
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/auth_policy.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/metrics_http_server.h"
#include "common/metrics_registry.h"
#include "common/shutdown_signal.h"
#include "services/cli/app.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/coordinator_process.h"
#include "services/coordinator/coordinator_service.h"
#include "services/learner/learner_process.h"
#include "services/runner/builtin_setup.h"
#include "services/verifier/generation_engine.h"
#include "services/verifier/lease_scoring.h"
#include "services/verifier/scoring_process.h"
#include "services/worker/worker_process.h"
#include "tasks/chain_grader.h"

namespace dsm::cli {
namespace {

struct ServeFlags {
  std::string roles;
  std::string config;
  std::string learner;
  std::string coordinator;
  std::string prompts;  // empty = the config's coordinator.prompts_dir
  // The coordinator runs the pipeline (coordinator.pipeline on), calling the
  // learner (--learner) and scorers at these addresses (empty = the config's).
  bool pipeline = false;
  std::string verifier;
  std::string meta_verifier;
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
  std::string yaml;  // the file as read, for the coordinator's run
  absl::StatusOr<DsmConfig> config = LoadConfig(flags.config, &yaml);
  if (!config.ok()) return UsageError(std::string(config.status().message()));
  std::vector<std::string> roles = absl::StrSplit(flags.roles, ',', absl::SkipEmpty());
  const std::string available = "(available: coordinator, worker, learner, verifier, meta-verifier)";
  if (roles.empty()) return UsageError("serve: no service named " + available);
  for (const std::string& role : roles) {
    if (role != "coordinator" && role != "worker" && role != "learner" && role != "verifier" &&
        role != "meta-verifier") {
      return UsageError("serve: unknown or not yet available service \"" + role + "\" " + available);
    }
  }
  {
    // Addresses given on the command line obey the same security rule as the config's.
    const SecuritySettings security = ChannelOptions::From(config->server, config->client).security.settings();
    for (const auto& [flag, target] : {std::pair<const char*, std::string>{"--learner", flags.learner},
                                       {"--coordinator", flags.coordinator},
                                       {"--verifier", flags.verifier},
                                       {"--meta-verifier", flags.meta_verifier}}) {
      if (target.empty()) continue;
      if (absl::Status s = CheckClientTarget(flag, target, security); !s.ok()) {
        return UsageError(std::string(s.message()));
      }
    }
  }
  auto hosts = [&roles](const char* role) { return std::find(roles.begin(), roles.end(), role) != roles.end(); };
  if (!flags.pipeline && (!flags.verifier.empty() || !flags.meta_verifier.empty())) {
    return UsageError("serve: --verifier and --meta-verifier need --pipeline");
  }
  if (flags.pipeline && !hosts("coordinator")) return UsageError("serve: --pipeline is the coordinator's");
  if (absl::Status s = InitLogging(config->log, flags.roles); !s.ok()) return UsageError(std::string(s.message()));
  auto fail = [](const std::string& role, const absl::Status& s) {
    std::cerr << "dsm: serve " << role << ": " << s.message() << "\n";
    return absl::IsInvalidArgument(s) ? kExitUsage : kExitFailed;
  };

  MetricsRegistry& metrics = DefaultRegistry();
  (void)RegisterProcessMetrics(metrics, DSM_VERSION);
  // Declared before `worker` so they are destroyed after it: the worker's
  // sampler stops first and ends every scoring request still running on it.
  std::unique_ptr<GenerationEngine> shared_engine;
  std::unique_ptr<ScoringProcess> scoring;
  std::unique_ptr<ScoringLeaseScorer> lease_scorer;
  std::unique_ptr<LearnerProcess> learner;
  std::unique_ptr<WorkerProcess> worker;
  // Declared last so it is destroyed first: its service (and ticker) stop
  // before anything else goes away.
  std::unique_ptr<CoordinatorProcess> coordinator;
  std::unique_ptr<CoordinatorService> coordinator_service;
  if (hosts("coordinator")) {
    DsmConfig coordinator_config = *config;
    if (flags.pipeline) {
      auto pick = [](const std::string& flag, const std::string& configured) {
        return flag.empty() ? configured : flag;
      };
      coordinator_config = WithPipeline(coordinator_config, pick(flags.learner, config->coordinator.learner),
                                        pick(flags.verifier, config->coordinator.verifier),
                                        pick(flags.meta_verifier, config->coordinator.meta_verifier));
      if (absl::Status s = ValidateConfig(coordinator_config); !s.ok()) {
        return UsageError(absl::StrCat("serve --pipeline: ", s.message()));
      }
    }
    CoordinatorProcessOptions options = CoordinatorOptionsFromConfig(coordinator_config, yaml);
    static const ChainGrader chain_grader;  // the built-in domain's exact checker, for evaluations
    if (options.pipeline.has_value() && coordinator_config.coordinator.grader == "chain") {
      options.pipeline->options.grader = &chain_grader;
    }
    absl::StatusOr<std::unique_ptr<CoordinatorProcess>> created = CoordinatorProcess::Create(options, &metrics);
    if (!created.ok()) return fail("coordinator", created.status());
    coordinator = std::move(*created);
    coordinator_service = std::make_unique<CoordinatorService>(coordinator.get());
  }
  if (hosts("learner")) {
    absl::StatusOr<std::unique_ptr<LearnerProcess>> created = LearnerProcess::Create(*config, metrics);
    if (!created.ok()) return fail("learner", created.status());
    learner = std::move(*created);
  }
  if (hosts("worker")) {
    // One model for every role of this process: the worker's subscriber also
    // brings the scorers' adapters.
    DsmConfig worker_config = *config;
    std::vector<std::string>& adapter_roles = worker_config.worker.roles;
    auto add = [&adapter_roles](const std::string& r) {
      if (std::find(adapter_roles.begin(), adapter_roles.end(), r) == adapter_roles.end()) adapter_roles.push_back(r);
    };
    if (hosts("verifier") || hosts("meta-verifier")) add("verifier");  // a meta-verifier samples with it too
    if (hosts("meta-verifier")) add("meta_verifier");
    LeaseClientOptions lease;
    lease.worker_id = config->worker.id;
    lease.capacity = config->worker.capacity;
    const std::string coordinator_address =
        !flags.coordinator.empty() ? flags.coordinator : config->worker.coordinator;
    absl::StatusOr<std::unique_ptr<WorkerProcess>> created =
        WorkerProcess::Create(worker_config, flags.learner, &metrics, coordinator_address, lease,
                              /*start_lease_client=*/false);
    if (!created.ok()) return fail("worker", created.status());
    worker = std::move(*created);
  }
  if (hosts("verifier") || hosts("meta-verifier")) {
    ScoringProcessOptions options;
    options.prompts_dir = flags.prompts.empty() ? config->coordinator.prompts_dir : flags.prompts;
    options.verifier = hosts("verifier");
    options.meta_verifier = hosts("meta-verifier");
    options.limits = ScoringLimitsFromConfig(config->limits);
    absl::StatusOr<std::unique_ptr<ScoringProcess>> created;
    if (worker != nullptr) {
      if (worker->tokenizer() == nullptr) {
        return fail("verifier", absl::InvalidArgumentError("model.path: no tokenizer.json (the scoring services "
                                                           "tokenize prompts)"));
      }
      shared_engine = std::make_unique<GenerationEngine>(worker->generation(), worker->tokenizer(),
                                                         worker->registry(), worker->model(),
                                                         ModelNameFromPath(config->model.path));
      created = ScoringProcess::CreateShared(shared_engine.get(), options, &metrics);
    } else {
      created = ScoringProcess::Create(*config, flags.learner, options, &metrics);
    }
    if (!created.ok()) return fail(options.verifier ? "verifier" : "meta-verifier", created.status());
    scoring = std::move(*created);
  }
  if (worker != nullptr) {
    // Scoring work from the coordinator goes to this process's scorers.
    if (scoring != nullptr) {
      lease_scorer = std::make_unique<ScoringLeaseScorer>(scoring->verifier_core(), scoring->meta_verifier_core());
    }
    worker->StartLeaseClient(lease_scorer.get());
  }
  std::vector<Hosted> hosted;
  for (const std::string& role : roles) {
    Hosted h;
    absl::Status status;
    if (role == "coordinator") {
      status = StartHosted(*config, role, config->services.coordinator, coordinator_service.get(),
                           v1::Coordinator::service_full_name(), metrics, &h);
    } else if (role == "learner") {
      status = StartHosted(*config, role, config->services.learner, learner->service(),
                           v1::Learner::service_full_name(), metrics, &h);
    } else if (role == "worker") {
      status = StartHosted(*config, role, config->services.worker, worker->service(),
                           v1::Sampler::service_full_name(), metrics, &h);
    } else if (role == "verifier") {
      status = StartHosted(*config, role, config->services.verifier, scoring->verifier_service(),
                           v1::Verifier::service_full_name(), metrics, &h);
    } else {
      status = StartHosted(*config, role, config->services.meta_verifier, scoring->meta_verifier_service(),
                           v1::MetaVerifier::service_full_name(), metrics, &h);
    }
    if (!status.ok()) return fail(role, status);
    hosted.push_back(std::move(h));
  }
  WaitForShutdownSignal();
  if (coordinator != nullptr) {
    coordinator->dispatcher()->DrainAll("the coordinator is shutting down",
                                        absl::Seconds(config->server.drain_seconds));
  }
  for (Hosted& h : hosted) h.server->Drain();
  for (Hosted& h : hosted) h.metrics->Stop();
  return kExitOk;
}

}  // namespace

void AddServeCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* serve = app.add_subcommand(
      "serve",
      "Run services (comma-separated: coordinator, worker, learner, verifier, meta-verifier) in this process "
      "until "
      "SIGTERM/SIGINT");
  serve->add_option("ROLES", flags->roles, "Services to run, e.g. learner or worker,verifier,meta-verifier")
      ->required();
  serve->add_option("--config", flags->config, "YAML configuration file")->required();
  serve->add_option("--learner", flags->learner,
                    "Learner host:port (overrides the config; with --pipeline also the coordinator's)");
  serve->add_option("--coordinator", flags->coordinator,
                    "Coordinator host:port a worker pulls work from (overrides worker.coordinator)");
  serve->add_option("--prompts", flags->prompts,
                    "Folder of the prompt templates verifier.txt, meta_verifier.txt (default: the config's "
                    "coordinator.prompts_dir, configs/prompts unless set)");
  serve->add_flag("--pipeline", flags->pipeline,
                  "The coordinator runs the pipeline (coordinator.pipeline: true) with --learner, --verifier, "
                  "--meta-verifier (default: the config's coordinator.learner, ...)");
  serve->add_option("--verifier", flags->verifier, "With --pipeline: the verifier's host:port (or DNS name:port)");
  serve->add_option("--meta-verifier", flags->meta_verifier, "With --pipeline: the meta-verifier's host:port");
  serve->callback([action, flags] { *action = [flags] { return Serve(*flags); }; });
}

}  // namespace dsm::cli
