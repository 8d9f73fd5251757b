// `dsm run CONFIG [--fresh]`: the main job on one machine. With the built-in
// default (builtin.domain: chain, e.g. configs/tiny.yaml) it
//   1. initialises the tiny model and warms it up (phase 0, full-parameter
//      SFT) when model.path holds no model yet, and writes the chain domain's
//      data (runs/<name>/data/*.jsonl);
//   2. writes the services' effective config (runs/<name>/config.yaml: the
//      pipeline on, every address on loopback) and starts every service as a
//      child process (`dsm serve ROLE`), restarting a child that dies;
//   3. imports the data, starts the run, and shows a progress line per phase
//      until the run ends;
//   4. writes runs/<name>/summary.json and runs/<name>/report.html, stops the
//      services, and exits 0 when the run SUCCEEDED (1 otherwise).
// An interrupted `dsm run` (Ctrl-C, or a crash) carries on where it stopped
// when started again with the same config; a run that already ended is
// reported, not repeated (--fresh deletes runs/<name> and starts over).
// Bad config: exit 2 with one line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/config.h"
#include "common/file_io.h"
#include "common/grpc_client.h"
#include "common/shutdown_signal.h"
#include "common/run_states.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/cli/app.h"
#include "services/coordinator/run_store.h"
#include "services/report/run_report.h"
#include "services/runner/builtin_setup.h"
#include "services/runner/progress_line.h"
#include "services/runner/run_event_follower.h"
#include "services/runner/run_monitor.h"
#include "services/runner/run_summary.h"
#include "services/runner/service_supervisor.h"
#include "tasks/jsonl_export.h"
#include "torch/torch.h"

namespace dsm::cli {
namespace {

namespace fs = std::filesystem;

struct RunFlags {
  std::string config;
  bool fresh = false;
  double poll_seconds = 0.5;
  double start_timeout_seconds = 300;
};

// Set by the signal waiter thread; the main loop stops the services and exits.
std::atomic<int> g_signal{0};
// True while phase 0 runs (then the signal waiter ends the process itself).
std::atomic<bool> g_in_phase0{false};


// The state of an existing run, or nullopt when there is none yet.
absl::StatusOr<std::optional<v1::RunStatus>> ExistingRun(const DsmConfig& config) {
  const std::string path = RunStore::StatePath(config.run.runs_dir, config.run.name);
  if (!fs::exists(path)) return std::optional<v1::RunStatus>();
  auto store = RunStore::Open(path, RunStoreOptions{});
  if (!store.ok()) return store.status();
  absl::StatusOr<v1::RunStatus> run = (*store)->GetRun();
  if (absl::IsNotFound(run.status())) return std::optional<v1::RunStatus>();
  if (!run.ok()) return run.status();
  return std::optional<v1::RunStatus>(*run);
}

// `host` (an IPv4 address; anything else is taken as loopback) and `port` as a socket address.
sockaddr_in Ipv4Address(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A free TCP port on `host` (an IPv4 address): bind to port 0, read it back, close.
absl::StatusOr<int> PickPort(const std::string& host) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::UnavailableError("socket: no free TCP port");
  sockaddr_in addr = Ipv4Address(host, 0);
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("no free TCP port on ", host));
  return static_cast<int>(ntohs(addr.sin_port));
}

// The five services `dsm run` starts, in start order: the config key under `services:`, the
// child's role name (`dsm serve ROLE`), and its endpoint.
struct ServiceSlot {
  const char* config_key;
  const char* role;
  Endpoint ServicesOptions::*endpoint;
};
constexpr ServiceSlot kServiceSlots[] = {{"coordinator", "coordinator", &ServicesOptions::coordinator},
                                         {"learner", "learner", &ServicesOptions::learner},
                                         {"verifier", "verifier", &ServicesOptions::verifier},
                                         {"meta_verifier", "meta-verifier", &ServicesOptions::meta_verifier},
                                         {"worker", "worker", &ServicesOptions::worker}};

// Whether nothing listens on `host`:`port`: a bind with SO_REUSEADDR (as the gRPC and metrics
// servers bind) fails only while another socket listens there, not for connections in TIME_WAIT.
bool PortFree(const std::string& host, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return true;  // cannot tell; the service's own bind will say
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = Ipv4Address(host, port);
  const bool in_use = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno == EADDRINUSE;
  close(fd);
  return !in_use;
}

// InvalidArgument naming the first configured port that something already listens on. Without
// this check a second `dsm run` on the same ports starts children that cannot bind, and then
// reads the other run's coordinator (same run name) as its own.
absl::Status CheckPortsFree(const DsmConfig& config) {
  for (const ServiceSlot& slot : kServiceSlots) {
    const Endpoint& e = config.services.*slot.endpoint;
    const std::pair<const char*, int> ports[] = {{"port", e.port}, {"metrics_port", e.metrics_port}};
    for (const auto& [field, port] : ports) {
      if (port == 0 || PortFree(config.server.host, port)) continue;
      return absl::InvalidArgumentError(absl::StrCat("services.", slot.config_key, ".", field, ": ",
                                                     config.server.host, ":", port,
                                                     " is in use (another dsm run, or a service still running?)"));
    }
  }
  return absl::OkStatus();
}

// The services' config: the pipeline on, every service on loopback (server.host), the worker pulling from
// the coordinator, the grader of the built-in domain, fixed ports.
absl::StatusOr<DsmConfig> ServicesConfig(DsmConfig config) {
  const std::string& host = config.server.host;
  for (const ServiceSlot& slot : kServiceSlots) {
    Endpoint& e = config.services.*slot.endpoint;
    if (e.port == 0) {
      absl::StatusOr<int> port = PickPort(host);
      if (!port.ok()) return port.status();
      e.port = *port;
    }
  }
  auto address = [&host](const Endpoint& e) { return absl::StrCat(host, ":", e.port); };
  config = WithPipeline(config, address(config.services.learner), address(config.services.verifier),
                      address(config.services.meta_verifier));
  config.worker.coordinator = address(config.services.coordinator);
  config.worker.learner = address(config.services.learner);
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  return config;
}

// Waits until `address` answers its health check SERVING (or the time runs out, or a child fails).
absl::Status AwaitServing(const std::string& name, const std::string& address, const ChannelOptions& channel,
                          ServiceSupervisor* supervisor, absl::Duration timeout) {
  ChannelOptions once = channel;
  once.max_attempts = 1;
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    // A new channel each time: one that found nothing listening waits out its reconnect backoff
    // before it tries again (seconds), however soon the service is up.
    auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address, once));
    if (g_signal.load() != 0) return absl::CancelledError("interrupted");
    std::vector<std::string> events;
    if (absl::Status s = supervisor->Poll(&events); !s.ok()) return s;
    for (const std::string& e : events) std::cout << "dsm run: " << e << "\n";
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(2));
    grpc::health::v1::HealthCheckResponse response;
    if (stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response).ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(name, " at ", address, " did not become healthy within ",
                                                  absl::FormatDuration(timeout), "; see ",
                                                  supervisor->LogPath(name)));
}

std::string EvaluationPointName(v1::EvaluationPoint p) {
  return p == v1::EVALUATION_POINT_BEFORE ? "before" : "after";
}

// summary.json and report.html from the run's evaluations and what the monitor saw.
absl::Status WriteResults(const DsmConfig& config, const std::string& run_dir, const v1::RunStatus& run,
                          const RunMonitor& monitor, const std::map<std::string, double>& extra,
                          double wall_seconds, absl::Time started) {
  std::vector<v1::Evaluation> evaluations(run.evaluations().begin(), run.evaluations().end());
  const RunSummary summary = SummarizeRun(evaluations, wall_seconds, extra);
  const std::string state = v1::RunState_Name(run.state());
  if (absl::Status s = WriteFileAtomically(run_dir + "/summary.json", RunSummaryJson(summary, config.run.name, state));
      !s.ok()) {
    return s;
  }
  RunReportData data;
  data.run_name = config.run.name;
  data.state = state;
  data.started_at = absl::FormatTime(absl::RFC3339_sec, started, absl::UTCTimeZone());
  data.wall_seconds = wall_seconds;
  data.config_yaml = ConfigToYaml(config);
  for (const MonitorPhaseSpan& p : monitor.phases()) {
    data.phases.push_back(ReportPhaseSpan{PhaseLabel(p.phase), p.iteration, p.start_seconds, p.end_seconds});
  }
  std::map<std::tuple<std::string, std::string, uint32_t>, size_t> index;
  for (const MonitorPoint& p : monitor.points()) {
    const std::string metric = absl::StrCat(p.metric, " (", p.role, ")");
    auto key = std::make_tuple(metric, PhaseLabel(p.phase), p.iteration);
    auto it = index.find(key);
    if (it == index.end()) {
      it = index.emplace(key, data.series.size()).first;
      data.series.push_back(ReportSeries{metric, PhaseLabel(p.phase), p.iteration, {}});
    }
    data.series[it->second].points.push_back(ReportPoint{p.seconds, p.value});
  }
  for (const v1::Evaluation& e : evaluations) {
    ReportEvaluation r;
    r.phase = PhaseLabel(e.phase());
    r.iteration = e.iteration();
    r.point = EvaluationPointName(e.point());
    r.metrics.insert(e.metrics().begin(), e.metrics().end());
    r.items = e.items();
    r.at_seconds = absl::ToDoubleSeconds(
                       absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(e.time())) -
                       started);
    data.evaluations.push_back(std::move(r));
  }
  for (const auto& [key, value] : summary.fields) {
    if (value.has_value()) data.summary[key] = *value;
  }
  for (const SummaryClaim& c : summary.claims) {
    data.claims.push_back(ReportClaim{c.name, c.description, c.before.value_or(std::nan("")),
                                      c.after.value_or(std::nan("")), c.held});
  }
  return WriteRunReport(data, run_dir + "/report.html");
}

int RunPipeline(const RunFlags& flags) {
  const absl::Time started = absl::Now();
  absl::StatusOr<DsmConfig> loaded = LoadConfig(flags.config);
  if (!loaded.ok()) return UsageError(std::string(loaded.status().message()));
  DsmConfig config = *std::move(loaded);
  if (config.builtin.domain.empty()) {
    return UsageError(flags.config +
                      ": builtin.domain is empty: `dsm run` prepares and runs the built-in default "
                      "(builtin.domain: chain); with your own model and data start the services with "
                      "`dsm serve` and import the data with `dsm import` (README: Bringing a real model)");
  }
  const std::string run_dir = absl::StrCat(config.run.runs_dir, "/", config.run.name);
  if (config.model.path.empty()) config.model.path = run_dir + "/model";
  std::error_code ec;
  if (flags.fresh) {
    if (absl::Status s = CheckPortsFree(config); !s.ok()) return UsageError(std::string(s.message()));
    fs::remove_all(run_dir, ec);
  }
  fs::create_directories(run_dir + "/logs", ec);
  if (ec) return UsageError(absl::StrCat("run.runs_dir: cannot create ", run_dir, ": ", ec.message()));

  // A run that already ended is reported, not repeated.
  absl::StatusOr<std::optional<v1::RunStatus>> existing = ExistingRun(config);
  if (!existing.ok()) {
    std::cerr << "dsm: run: " << existing.status().message() << "\n";
    return kExitFailed;
  }
  if (existing->has_value() && IsTerminalRunState((*existing)->state())) {
    std::cout << "run " << config.run.name << " already ended " << v1::RunState_Name((*existing)->state())
              << "; its results: " << run_dir << "/summary.json, " << run_dir
              << "/report.html (dsm run --fresh starts it over)\n";
    return (*existing)->state() == v1::RUN_STATE_SUCCEEDED ? kExitOk : kExitFailed;
  }
  if (!flags.fresh) {  // --fresh checked before it deleted the run
    if (absl::Status s = CheckPortsFree(config); !s.ok()) return UsageError(std::string(s.message()));
  }

  // Phase 0 runs for minutes with no service up yet: a signal then ends the run at once (the
  // next `dsm run` starts phase 0 again; nothing half-written is used). Later, the run stops
  // its services in order.
  std::thread([] {
    g_signal = WaitForShutdownSignal();
    if (g_in_phase0.load()) {
      std::cout << "\ndsm run: interrupted in phase 0; `dsm run` starts it again" << std::endl;
      _exit(130);
    }
  }).detach();
  torch::set_num_threads(BuiltinThreads(config));  // this process runs phase 0; the services are children

  // 1. The built-in default's model and data.
  g_in_phase0 = true;
  absl::StatusOr<std::map<std::string, double>> extra = PrepareBuiltinModel(config, run_dir);
  g_in_phase0 = false;
  if (!extra.ok()) {
    std::cerr << "dsm: run: phase 0: " << extra.status().message() << "\n";
    return extra.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  if (g_signal.load() != 0) return 130;
  const std::string data_dir = run_dir + "/data";
  absl::StatusOr<ChainDatasetCounts> counts = WriteBuiltinData(config, data_dir);
  if (absl::IsInvalidArgument(counts.status())) return UsageError(std::string(counts.status().message()));
  if (!counts.ok()) {
    std::cerr << "dsm: run: writing the data: " << counts.status().message() << "\n";
    return kExitFailed;
  }

  // 2. The services, as children.
  absl::StatusOr<DsmConfig> services = ServicesConfig(config);
  if (!services.ok()) return UsageError(std::string(services.status().message()));
  // Phase 0 took minutes: something may have taken a port since.
  if (absl::Status s = CheckPortsFree(*services); !s.ok()) return UsageError(std::string(s.message()));
  const std::string services_yaml = run_dir + "/config.yaml";
  const std::string services_text = ConfigToYaml(*services);
  if (absl::Status s = WriteFileAtomically(services_yaml, services_text); !s.ok()) {
    std::cerr << "dsm: run: " << s.message() << "\n";
    return kExitFailed;
  }
  SupervisorOptions so;
  so.binary = fs::canonical("/proc/self/exe", ec).string();
  so.log_dir = run_dir + "/logs";
  ServiceSupervisor supervisor(so);
  // Stopped clients first: the worker (it streams from the coordinator and the learner), then the
  // coordinator (it streams groups to the learner), then the rest together.
  auto stop_stage = [](const std::string& role) { return role == "worker" ? 0 : role == "coordinator" ? 1 : 2; };
  std::vector<SupervisedChild> children;
  for (const ServiceSlot& slot : kServiceSlots) {
    children.push_back(
        SupervisedChild{slot.role, {"serve", slot.role, "--config", services_yaml}, stop_stage(slot.role)});
  }
  if (absl::Status s = supervisor.Start(children); !s.ok()) {
    std::cerr << "dsm: run: " << s.message() << "\n";
    return kExitFailed;
  }
  std::cout << "services:";
  for (const ServiceSlot& slot : kServiceSlots) {
    std::cout << " " << slot.role << " " << services->server.host << ":" << (services->services.*slot.endpoint).port
              << " (pid " << supervisor.pid(slot.role) << ")";
  }
  std::cout << "; logs in " << so.log_dir << "\n";
  const ChannelOptions channel = ChannelOptions::From(services->server, services->client);
  for (const ServiceSlot& slot : kServiceSlots) {
    const std::string address = absl::StrCat(services->server.host, ":", (services->services.*slot.endpoint).port);
    if (absl::Status s = AwaitServing(slot.role, address, channel, &supervisor,
                                      absl::Seconds(flags.start_timeout_seconds));
        !s.ok()) {
      std::cerr << "dsm: run: " << s.message() << "\n";
      return absl::IsCancelled(s) ? 130 : kExitFailed;
    }
  }

  // 3. Data in, run started, progress until it ends.
  auto coordinator = v1::Coordinator::NewStub(MakeChannel(services->worker.coordinator, channel));
  auto learner = v1::Learner::NewStub(MakeChannel(services->coordinator.learner, channel));
  RunMonitor monitor(coordinator.get(), learner.get(), config.run.name, absl::Seconds(10));
  absl::StatusOr<v1::RunStatus> run = monitor.Poll();
  if (run.ok() && run->state() == v1::RUN_STATE_PENDING) {
    absl::StatusOr<v1::RunStatus> started_run =
        ImportAndStartRun(coordinator.get(), config.run.name, DataFilesIn(data_dir), services_text);
    if (!started_run.ok()) {
      std::cerr << "dsm: run: " << started_run.status().message() << "\n";
      return kExitFailed;
    }
  } else if (!run.ok()) {
    std::cerr << "dsm: run: " << run.status().message() << "\n";
    return kExitFailed;
  }
  // Events from the run's first one (or, for a run carried on, from where it is now): every phase is
  // shown and timed, however short.
  const uint64_t first_event = run.ok() && run->state() != v1::RUN_STATE_PENDING ? run->last_event_sequence() + 1 : 1;
  RunEventFollower events(coordinator.get(), config.run.name, first_event);
  const bool tty = isatty(STDOUT_FILENO) != 0;
  PhaseProgressDisplay display(&std::cout, tty);
  auto show_events = [&] {
    for (const v1::RunEvent& e : events.Drain()) {
      monitor.OnEvent(e);
      display.OnEvent(e);
    }
  };
  v1::RunStatus last;
  while (true) {
    if (g_signal.load() != 0) {
      display.EndLine();
      std::cout << "dsm run: interrupted; the services stop, and `dsm run " << flags.config
                << "` carries on from here\n";
      return 130;
    }
    std::vector<std::string> events_seen;
    if (absl::Status s = supervisor.Poll(&events_seen); !s.ok()) {
      display.EndLine();
      std::cerr << "dsm: run: " << s.message() << "\n";
      return kExitFailed;
    }
    if (!events_seen.empty()) display.EndLine();
    for (const std::string& e : events_seen) std::cout << "dsm run: " << e << "\n";
    show_events();
    absl::StatusOr<v1::RunStatus> polled = monitor.Poll();
    if (polled.ok()) {
      last = *polled;
      if (IsTerminalRunState(last.state())) {
        // The last phase's end is in the events still on their way.
        events.WaitForEnd(absl::Seconds(5));
        show_events();
        break;
      }
      display.OnStatus(last, absl::Now());
    }
    absl::SleepFor(absl::Seconds(flags.poll_seconds));
  }
  display.EndLine();
  monitor.Finish();

  // 4. Results.
  const double wall = absl::ToDoubleSeconds(absl::Now() - started);
  if (absl::Status s = WriteResults(config, run_dir, last, monitor, *extra, wall, started); !s.ok()) {
    std::cerr << "dsm: run: " << s.message() << "\n";
    return kExitFailed;
  }
  // Our own connections go first: a server waits out its whole grace period for a client that holds
  // a connection open after the server said goodbye.
  events.Stop();
  coordinator.reset();
  learner.reset();
  supervisor.StopAll();
  std::cout << "run " << config.run.name << " " << v1::RunState_Name(last.state());
  if (!last.error().empty()) std::cout << ": " << last.error();
  std::cout << absl::StrFormat(" in %.0f s\n", wall);
  std::vector<v1::Evaluation> evaluations(last.evaluations().begin(), last.evaluations().end());
  for (const SummaryClaim& c : SummarizeRun(evaluations, wall, *extra).claims) {
    auto num = [](const std::optional<double>& v) { return v.has_value() ? absl::StrFormat("%.3f", *v) : "n/a"; };
    std::cout << "  " << (c.held ? "held      " : "NOT held  ") << c.description << ": " << num(c.before) << " -> "
              << num(c.after) << "\n";
  }
  std::cout << "results: " << run_dir << "/summary.json, " << run_dir << "/report.html\n";
  return last.state() == v1::RUN_STATE_SUCCEEDED ? kExitOk : kExitFailed;
}

}  // namespace

void AddRunCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* run = app.add_subcommand(
      "run", "Run the whole training pipeline on this machine, every service a child process");
  run->add_option("CONFIG", flags->config, "YAML configuration file, e.g. configs/tiny.yaml")->required();
  run->add_flag("--fresh", flags->fresh, "Delete runs/<name> first and start the run over");
  run->add_option("--poll-seconds", flags->poll_seconds, "How often the progress is refreshed (default 0.5)");
  run->callback([action, flags] { *action = [flags] { return RunPipeline(*flags); }; });
}

}  // namespace dsm::cli
