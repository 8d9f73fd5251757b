// CoordinatorProcess: everything `dsm serve coordinator` runs, wired from the
// config. It serves ONE run at a time: the config's run.name, whose state
// lives in <run.runs_dir>/<run.name>/state.db (created on first start,
// carried on after a restart: leases, results, datasets, events). It owns
// the RunStore, the LeaseDispatcher, the metrics and a ticker thread that
// expires leases and refreshes gauges every tick.
//
// The run-control calls below are the domain behind the Coordinator RPCs
// (coordinator_service.h); errors name the field (INVALID_ARGUMENT),
// NOT_FOUND for another run name, FAILED_PRECONDITION for a run this
// coordinator does not serve.
//
// Thread-safe.
#ifndef DSM_SERVICES_COORDINATOR_COORDINATOR_PROCESS_H_
#define DSM_SERVICES_COORDINATOR_COORDINATOR_PROCESS_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_client.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/metrics_registry.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/group_feeder.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/pipeline_runner.h"
#include "services/coordinator/scoring_client.h"
#include "services/coordinator/run_store.h"

namespace dsm {

// Where the pipeline's peers are and how it runs (coordinator.pipeline: true).
struct CoordinatorPipelineSettings {
  std::string learner;        // host:port
  std::string verifier;       // target (one or several replicas)
  std::string meta_verifier;  // target
  std::string prompts_dir;    // generator.txt, verifier.txt, meta_verifier.txt
  ChannelOptions channel;     // TLS, token, retries, from the config
  PipelineOptions options;
  // Phase 0 (options.warmup_epochs > 0, coordinator.warmup_epochs): its SFT examples are
  // tokenized with this tokenizer.json (model.path's) and end in its EOS token.
  std::string tokenizer_path;
  // The run's seed: every sampling request without a seed of its own gets one derived from it
  // and the request's id (ScoringClientOptions::seed, GenerationWorkSpec::seed).
  std::optional<uint64_t> seed;
};

struct CoordinatorProcessOptions {
  std::string runs_dir;
  std::string run_name;
  std::string config_yaml;  // stored with a new run
  DispatcherOptions dispatcher;
  RunStoreOptions store;
  absl::Duration tick = absl::Milliseconds(250);
  uint64_t max_import_records = 1000000;  // per ImportRecords stream
  uint32_t max_message_bytes = 16 << 20;
  // Set: the pipeline runs whenever the run is RUNNING (started, or found
  // running after a restart).
  std::optional<CoordinatorPipelineSettings> pipeline;
};

// From the config: runs_dir, run name, coordinator.* and limits.
CoordinatorProcessOptions CoordinatorOptionsFromConfig(const DsmConfig& config, const std::string& config_yaml);

class CoordinatorProcess {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorProcess>> Create(CoordinatorProcessOptions options,
                                                                    MetricsRegistry* metrics);
  ~CoordinatorProcess();  // stops the pipeline and the ticker

  LeaseDispatcher* dispatcher() { return dispatcher_.get(); }
  RunStore* store() { return store_.get(); }
  const CoordinatorProcessOptions& options() const { return options_; }

  // --- Run control (the Coordinator RPCs) ---------------------------------
  absl::StatusOr<v1::RunStatus> StartRun(const v1::StartRunRequest& request);
  absl::StatusOr<v1::RunStatus> GetRun(const std::string& name);
  absl::StatusOr<v1::ListRunsResponse> ListRuns(const v1::ListRunsRequest& request);
  absl::StatusOr<v1::RunStatus> CancelRun(const v1::CancelRunRequest& request);
  // Checks one streamed record before it is buffered (run name, one record set).
  absl::Status CheckImport(const v1::ImportRecordsRequest& request) const;
  absl::StatusOr<v1::ImportRecordsResponse> Import(const std::vector<v1::ImportRecordsRequest>& records);
  // Events of `name` from `from_sequence` on, at most `limit`.
  absl::StatusOr<std::vector<v1::RunEvent>> Events(const std::string& name, uint64_t from_sequence, uint32_t limit);

 private:
  explicit CoordinatorProcess(CoordinatorProcessOptions options) : options_(std::move(options)) {}
  absl::Status CheckName(const std::string& name, const char* field) const;
  absl::Status CreatePipeline(MetricsRegistry* metrics);
  // Starts the pipeline thread if configured, not running, and the run is RUNNING.
  void StartPipelineIfRunning();

  const CoordinatorProcessOptions options_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<LeaseDispatcher> dispatcher_;
  // The pipeline and its peers (only with options_.pipeline).
  std::unique_ptr<ScoringClient> scoring_;
  std::unique_ptr<GroupFeeder> feeder_;
  std::unique_ptr<v1::Learner::Stub> learner_;
  std::unique_ptr<PipelineRunner> runner_;
  std::atomic<bool> stop_pipeline_{false};
  absl::Mutex pipeline_mu_;
  std::thread pipeline_thread_ ABSL_GUARDED_BY(pipeline_mu_);
  absl::Notification stop_;
  std::thread ticker_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_COORDINATOR_PROCESS_H_
