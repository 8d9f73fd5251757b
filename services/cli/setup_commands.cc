// `dsm prepare` and `dsm start`: a run's set-up around services that others
// start (docker-compose.yml's one-shot `init` and `start` services,
// Kubernetes jobs) — what `dsm run` does before and after it starts its own.
//
// `dsm prepare CONFIG [--data DIR] [--warmup-steps N]`: for the built-in
// default (builtin.domain: chain) phase 0 — a fresh tiny model at model.path,
// warmed up; skipped when a model is there — and the domain's data as JSONL
// in DIR (default runs_dir/<run.name>/data). A config without
// builtin.domain has nothing to prepare (exit 0, one line saying so).
//
// `dsm start CONFIG --coordinator HOST:PORT [--data DIR] [--resume]`: waits
// for the coordinator (--wait seconds), then, if the run is PENDING, imports
// DIR's problems.jsonl, proofs.jsonl, analyses.jsonl (every line checked
// first) and starts the run with CONFIG. A run already RUNNING or SUCCEEDED
// is left as it is (exit 0), so starting twice is harmless; a FAILED or
// CANCELLED one is carried on only with --resume.
//
// Exit codes: 0 done; 1 failed (the coordinator unreachable, no data, a
// failed run); 2 bad flags, config or data (one line naming what).
#include <ATen/Parallel.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "common/shutdown_signal.h"
#include "common/status_conversion.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "services/cli/app.h"
#include "services/runner/builtin_setup.h"
#include "services/runner/progress_line.h"

namespace dsm::cli {
namespace {

namespace fs = std::filesystem;

struct PrepareFlags {
  std::string config;
  std::string data;
  int warmup_steps = 0;  // 0 = builtin.warmup_steps
};

struct StartFlags {
  std::string config;
  std::string coordinator;
  std::string data;
  bool resume = false;
  double wait_seconds = 300;
};

int Prepare(const PrepareFlags& flags) {
  absl::StatusOr<DsmConfig> loaded = LoadConfig(flags.config);
  if (!loaded.ok()) return UsageError(std::string(loaded.status().message()));
  DsmConfig config = *std::move(loaded);
  if (config.builtin.domain.empty()) {
    std::cout << flags.config << ": builtin.domain is empty: nothing to prepare (the model is the one at "
              << "model.path; import the data with `dsm import` or `dsm start --data`)\n";
    return kExitOk;
  }
  if (config.model.path.empty()) {
    return UsageError("prepare: model.path is empty: the services load the model phase 0 writes from there");
  }
  if (flags.warmup_steps != 0) config.builtin.warmup_steps = flags.warmup_steps;
  // Phase 0 runs for minutes: SIGTERM / Ctrl-C end it at once (a later
  // `dsm prepare` starts phase 0 again; nothing half-written is used).
  std::thread([] { _exit(128 + WaitForShutdownSignal()); }).detach();
  at::set_num_threads(BuiltinThreads(config));

  const std::string run_dir = RunDirOf(config);
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) return UsageError(absl::StrCat("run.runs_dir: cannot create ", run_dir, ": ", ec.message()));
  absl::StatusOr<std::map<std::string, double>> warmed = PrepareBuiltinModel(config, run_dir);
  if (!warmed.ok()) {
    std::cerr << "dsm: prepare: phase 0: " << warmed.status().message() << "\n";
    return absl::IsInvalidArgument(warmed.status()) ? kExitUsage : kExitFailed;
  }
  const std::string data_dir = flags.data.empty() ? run_dir + "/data" : flags.data;
  absl::StatusOr<ChainDatasetCounts> counts = WriteBuiltinData(config, data_dir);
  if (!counts.ok()) {
    std::cerr << "dsm: prepare: writing the data: " << counts.status().message() << "\n";
    return absl::IsInvalidArgument(counts.status()) ? kExitUsage : kExitFailed;
  }
  std::cout << "data: " << counts->problems << " problems, " << counts->proofs << " labelled proofs, "
            << counts->analyses << " labelled analyses in " << data_dir << "\n";
  return kExitOk;
}

// The run's status once the coordinator answers (it may still be starting).
absl::StatusOr<v1::RunStatus> AwaitRun(v1::Coordinator::Stub* stub, const std::string& name,
                                       absl::Duration wait) {
  const absl::Time until = absl::Now() + wait;
  while (true) {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(5));
    v1::GetRunRequest request;
    request.set_name(name);
    v1::RunStatus run;
    const grpc::Status s = stub->GetRun(&context, request, &run);
    if (s.ok()) return run;
    const bool retry = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retry) return absl::Status(FromGrpcStatus(s).code(), absl::StrCat("GetRun(", name, "): ", s.error_message()));
    if (absl::Now() >= until) return absl::UnavailableError(s.error_message());
    absl::SleepFor(absl::Seconds(1));
  }
}

int Start(const StartFlags& flags) {
  std::string yaml;  // the file as read, for the run the coordinator starts
  absl::StatusOr<DsmConfig> config = LoadConfig(flags.config, &yaml);
  if (!config.ok()) return UsageError(std::string(config.status().message()));
  const std::string& name = config->run.name;
  const std::string data_dir = flags.data.empty() ? RunDirOf(*config) + "/data" : flags.data;
  auto stub = v1::Coordinator::NewStub(
      MakeChannel(flags.coordinator, ChannelOptions::From(config->server, config->client)));
  absl::StatusOr<v1::RunStatus> run = AwaitRun(stub.get(), name, absl::Seconds(flags.wait_seconds));
  if (absl::IsUnavailable(run.status())) {
    std::cerr << "dsm: start: the coordinator at " << flags.coordinator << " did not answer within "
              << flags.wait_seconds << " s: " << run.status().message() << "\n";
    return kExitFailed;
  }
  if (!run.ok()) {
    std::cerr << "dsm: start: " << run.status().message() << "\n";
    return kExitFailed;
  }
  const std::string state = v1::RunState_Name(run->state());
  switch (run->state()) {
    case v1::RUN_STATE_PENDING: {
      const std::vector<std::string> files = DataFilesIn(data_dir);
      if (files.empty()) {
        std::cerr << "dsm: start: no data in " << data_dir
                  << " (problems.jsonl, proofs.jsonl, analyses.jsonl; docs/jsonl-formats.md): `dsm prepare "
                  << flags.config << "` writes the built-in default's\n";
        return kExitFailed;
      }
      absl::StatusOr<v1::RunStatus> started = ImportAndStartRun(stub.get(), name, files, yaml);
      if (!started.ok()) {
        std::cerr << "dsm: start: " << started.status().message() << "\n";
        return absl::IsInvalidArgument(started.status()) ? kExitUsage : kExitFailed;
      }
      std::cout << "run " << name << " " << v1::RunState_Name(started->state()) << "\n";
      return kExitOk;
    }
    case v1::RUN_STATE_RUNNING:
      std::cout << "run " << name << " is already RUNNING (" << PhaseLabel(run->phase()) << ")\n";
      return kExitOk;
    case v1::RUN_STATE_SUCCEEDED:
      std::cout << "run " << name << " already SUCCEEDED\n";
      return kExitOk;
    default:
      break;
  }
  if (!flags.resume) {
    std::cerr << "dsm: start: run " << name << " is " << state << (run->error().empty() ? "" : ": ")
              << run->error() << " (dsm start --resume carries it on)\n";
    return kExitFailed;
  }
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(30));
  v1::StartRunRequest request;
  request.set_name(name);
  request.set_resume(true);
  v1::RunStatus resumed;
  if (const grpc::Status s = stub->StartRun(&context, request, &resumed); !s.ok()) {
    std::cerr << "dsm: start: StartRun: " << s.error_message() << "\n";
    return kExitFailed;
  }
  std::cout << "run " << name << " " << state << " -> " << v1::RunState_Name(resumed.state()) << "\n";
  return kExitOk;
}

}  // namespace

void AddSetupCommands(CLI::App& app, Action* action) {
  auto prepare = std::make_shared<PrepareFlags>();
  CLI::App* p = app.add_subcommand(
      "prepare", "Prepare the built-in default for services started elsewhere: phase 0 and the domain's data");
  p->add_option("CONFIG", prepare->config, "YAML configuration file, e.g. deploy/compose/tiny.yaml")->required();
  p->add_option("--data", prepare->data, "Folder for the JSONL data (default runs_dir/<run.name>/data)");
  p->add_option("--warmup-steps", prepare->warmup_steps, "Phase 0's steps instead of builtin.warmup_steps")
      ->envname("DSM_WARMUP_STEPS")
      ->check(CLI::Range(1, 1000000));
  p->callback([action, prepare] { *action = [prepare] { return Prepare(*prepare); }; });

  auto start = std::make_shared<StartFlags>();
  CLI::App* s = app.add_subcommand(
      "start", "Import the run's data into the coordinator and start the run (if it is not running yet)");
  s->add_option("CONFIG", start->config, "YAML configuration file of the run")->required();
  s->add_option("--coordinator", start->coordinator, "Coordinator host:port")->required();
  s->add_option("--data", start->data,
                "Folder with problems.jsonl, proofs.jsonl, analyses.jsonl (default runs_dir/<run.name>/data)");
  s->add_flag("--resume", start->resume, "Carry on a FAILED or CANCELLED run");
  s->add_option("--wait", start->wait_seconds, "Seconds to wait for the coordinator to answer (default 300)")
      ->check(CLI::Range(0.0, 86400.0));
  s->callback([action, start] { *action = [start] { return Start(*start); }; });
}

}  // namespace dsm::cli
