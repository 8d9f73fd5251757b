#include "services/coordinator/coordinator_process.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"
#include "common/run_states.h"
#include "model/tokenizer.h"
#include "services/coordinator/warmup_targets.h"

namespace dsm {
namespace {


std::string RandomId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

// Phase 0's options: the model's tokenizer, its EOS token, and the targets in the formats of
// the generator's (self-evaluation) and the meta-verifier's templates.
absl::StatusOr<WarmupPhaseOptions> WarmupOptions(const CoordinatorPipelineSettings& s,
                                                 const OutputMarkers& self_evaluation,
                                                 const OutputMarkers& meta_verifier) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator.warmup_epochs: phase 0 tokenizes its examples with ", s.tokenizer_path, ": ", why));
  };
  absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = Tokenizer::FromFile(s.tokenizer_path);
  if (!loaded.ok()) return bad(loaded.status().message());
  std::shared_ptr<const Tokenizer> tokenizer = *std::move(loaded);
  if (!tokenizer->eos_id().has_value()) {
    return bad("it has no EOS token to end the examples (tokenizer_config.json's eos_token)");
  }
  WarmupPhaseOptions w;
  w.encode = [tokenizer](const std::string& text, bool add_special_tokens) -> absl::StatusOr<std::vector<int32_t>> {
    return tokenizer->Encode(text, add_special_tokens);
  };
  w.eos_token_id = *tokenizer->eos_id();
  w.meta_completion = [meta_verifier](const v1::LabelledAnalysis& a) { return MetaVerifierTarget(a, meta_verifier); };
  w.generator_completion = [self_evaluation](const v1::ProblemRecord&, const v1::LabelledProof& p) {
    return GeneratorTarget(p, self_evaluation);
  };
  w.shuffle_seed = s.options.verifier.shuffle_seed;
  return w;
}

}  // namespace

CoordinatorProcessOptions CoordinatorOptionsFromConfig(const DsmConfig& config, const std::string& config_yaml) {
  CoordinatorProcessOptions o;
  o.runs_dir = config.run.runs_dir;
  o.run_name = config.run.name;
  o.config_yaml = config_yaml;
  o.dispatcher.lease_ttl = absl::Seconds(config.coordinator.lease_ttl_seconds);
  o.dispatcher.heartbeat_interval = absl::Seconds(config.coordinator.heartbeat_seconds);
  o.dispatcher.max_leases_per_worker = static_cast<uint32_t>(config.coordinator.max_leases_per_worker);
  o.store.queue.max_attempts = static_cast<uint32_t>(config.coordinator.max_attempts);
  o.max_message_bytes = static_cast<uint32_t>(config.server.max_message_bytes);
  if (config.coordinator.pipeline) {
    CoordinatorPipelineSettings p;
    p.learner = config.coordinator.learner;
    p.verifier = config.coordinator.verifier;
    p.meta_verifier = config.coordinator.meta_verifier;
    p.prompts_dir = config.coordinator.prompts_dir;
    p.channel = ChannelOptions::From(config.server, config.client);
    const auto group = static_cast<uint32_t>(config.coordinator.group_size);
    p.options.iterations = static_cast<uint32_t>(config.coordinator.iterations);
    p.options.verifier.group_size = group;
    p.options.meta_verifier.group_size = group;
    p.options.generator.group_size = group;
    p.options.auto_label.proofs_per_problem = group;
    p.options.generator_problems = static_cast<uint32_t>(config.coordinator.generator_problems);
    p.options.generator_epochs = static_cast<uint32_t>(config.coordinator.generator_epochs);
    // Phase 4 samples no further ahead of training than the learner keeps samples.
    p.options.generator_window = static_cast<uint32_t>(config.learner.groups_per_step) *
                                 static_cast<uint32_t>(std::max(1, config.learner.max_policy_lag));
    p.options.auto_label_problems = static_cast<uint32_t>(config.coordinator.auto_label_problems);
    p.options.generator.verifications = static_cast<uint32_t>(config.coordinator.verifications);
    p.options.generator.meta_verifications = static_cast<uint32_t>(config.coordinator.meta_verifications);
    p.options.generator.reward.alpha = config.coordinator.alpha;
    p.options.generator.reward.beta = config.coordinator.beta;
    p.options.auto_label.n = static_cast<uint32_t>(config.coordinator.auto_label_n);
    p.options.auto_label.m = static_cast<uint32_t>(config.coordinator.auto_label_m);
    p.options.auto_label.correct_n = static_cast<uint32_t>(config.coordinator.auto_label_correct_n);
    p.options.auto_label.max_n_per_request = static_cast<uint32_t>(config.limits.max_n);
    p.options.auto_label.rule.k = config.coordinator.auto_label_k;
    p.options.auto_label.rule.drop_conflicts = config.coordinator.auto_label_drop_conflicts;
    p.options.auto_label.rule.unanimous_correct = config.coordinator.auto_label_unanimous_correct;
    p.options.auto_label.scoring_params.set_temperature(static_cast<float>(config.coordinator.auto_label_temperature));
    p.options.verifier.meta_samples = static_cast<uint32_t>(config.coordinator.enhanced_meta_verifications);
    p.options.verifier.meta_params.set_temperature(static_cast<float>(config.coordinator.enhanced_meta_temperature));
    p.options.enhanced_analyses = config.coordinator.enhanced_analyses;
    if (config.coordinator.lockstep) p.options.lockstep_round = p.options.generator_window;
    // Every sampling request gets a seed derived from the run's and its id (ScoringClient, work items).
    p.seed = static_cast<uint64_t>(config.run.seed);
    p.options.generator.seed = p.seed;
    p.options.auto_label.seed = p.seed;
    if (config.coordinator.shuffle) {
      p.options.verifier.shuffle_seed = static_cast<uint64_t>(config.run.seed);
      p.options.meta_verifier.shuffle_seed = static_cast<uint64_t>(config.run.seed);
    }
    p.options.warmup_epochs = static_cast<uint32_t>(config.coordinator.warmup_epochs);
    p.tokenizer_path = (std::filesystem::path(config.model.path) / "tokenizer.json").string();
    p.options.verifier_epochs = static_cast<uint32_t>(config.coordinator.verifier_epochs);
    p.options.meta_verifier_epochs = static_cast<uint32_t>(config.coordinator.meta_verifier_epochs);
    // Progress is recorded after each batch of this many items.
    p.options.verifier.max_proofs = 8;
    // Phase 3 asks for the meta-verification of every analysis of those 8 proofs at once: as many
    // side by side as a sampler decodes together.
    p.options.verifier.max_concurrent_calls = std::max<uint32_t>(16, static_cast<uint32_t>(config.model.max_batch));
    p.options.meta_verifier.max_analyses = 8;
    p.options.meta_verifier.max_concurrent_calls = p.options.verifier.max_concurrent_calls;
    // Evaluations are greedy: one deterministic answer per held-out item.
    p.options.evaluation.params.set_temperature(0);
    p.options.generator_evaluation.params.set_temperature(0);
    p.options.evaluation.max_proofs = static_cast<uint32_t>(config.coordinator.evaluation_proofs);
    p.options.generator_evaluation.max_problems = static_cast<uint32_t>(config.coordinator.evaluation_problems);
    o.pipeline = std::move(p);
  }
  return o;
}

absl::StatusOr<std::unique_ptr<CoordinatorProcess>> CoordinatorProcess::Create(CoordinatorProcessOptions options,
                                                                               MetricsRegistry* metrics) {
  if (absl::Status s = RunStore::ValidateRunName(options.run_name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("run.", s.message()));
  }
  if (options.dispatcher.coordinator_id.empty()) options.dispatcher.coordinator_id = RandomId();
  options.dispatcher.run_name = options.run_name;
  if (absl::Status s = options.dispatcher.Validate(); !s.ok()) return s;
  std::unique_ptr<CoordinatorProcess> p(new CoordinatorProcess(options));
  if (metrics != nullptr) {
    auto m = CoordinatorMetrics::Create(*metrics);
    if (!m.ok()) return m.status();
    p->metrics_ = *std::move(m);
  }
  auto store = RunStore::Open(RunStore::StatePath(options.runs_dir, options.run_name), options.store);
  if (!store.ok()) return store.status();
  p->store_ = *std::move(store);
  if (absl::StatusOr<v1::RunStatus> run = p->store_->GetRun(); absl::IsNotFound(run.status())) {
    auto created = p->store_->CreateRun(options.run_name, options.config_yaml, v1::RUN_STATE_PENDING, absl::Now());
    if (!created.ok()) return created.status();
  } else if (!run.ok()) {
    return run.status();
  }
  p->dispatcher_ = std::make_unique<LeaseDispatcher>(p->store_.get(), options.dispatcher, p->metrics_.get());
  if (options.pipeline.has_value()) {
    if (absl::Status s = p->CreatePipeline(metrics); !s.ok()) return s;
  }
  p->ticker_ = std::thread([raw = p.get()] {
    while (!raw->stop_.WaitForNotificationWithTimeout(raw->options_.tick)) raw->dispatcher_->Tick();
  });
  p->StartPipelineIfRunning();  // a restarted coordinator carries on
  return p;
}

CoordinatorProcess::~CoordinatorProcess() {
  stop_pipeline_ = true;
  {
    absl::MutexLock lock(&pipeline_mu_);
    if (pipeline_thread_.joinable()) pipeline_thread_.join();
  }
  if (feeder_) feeder_->Stop();
  stop_.Notify();
  if (ticker_.joinable()) ticker_.join();
}

absl::Status CoordinatorProcess::CreatePipeline(MetricsRegistry* metrics) {
  const CoordinatorPipelineSettings& s = *options_.pipeline;
  std::vector<PromptTemplate> loaded;
  for (PromptRole role : {PromptRole::kGenerator, PromptRole::kVerifier, PromptRole::kMetaVerifier}) {
    absl::StatusOr<PromptTemplate> t = PromptTemplate::LoadRole(s.prompts_dir, role);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("coordinator.prompts_dir: ", t.status().message()));
    loaded.push_back(*std::move(t));
  }
  PipelineOptions options = s.options;
  if (s.options.warmup_epochs > 0) {
    absl::StatusOr<WarmupPhaseOptions> warmup = WarmupOptions(s, loaded[0].markers(), loaded[2].markers());
    if (!warmup.ok()) return warmup.status();
    options.warmup = *std::move(warmup);
  }
  PipelineTemplates templates{loaded[0], loaded[1], loaded[2], loaded[1].markers()};
  ScoringClientOptions scoring;
  scoring.verifier_target = s.verifier;
  scoring.meta_verifier_target = s.meta_verifier;
  scoring.channel = s.channel;
  scoring.seed = s.seed;
  // A scorer that dies is restarted within seconds (compose, Kubernetes, `dsm run`): its calls are tried
  // again for about two minutes (back-off up to max_backoff) before they fail the phase.
  scoring.max_attempts = 30;
  auto client = ScoringClient::Create(scoring, metrics);
  if (!client.ok()) return client.status();
  scoring_ = *std::move(client);
  GroupFeederOptions feeder;
  feeder.learner_target = s.learner;
  feeder.channel = s.channel;
  feeder_ = std::make_unique<GroupFeeder>(store_.get(), feeder);
  learner_ = v1::Learner::NewStub(MakeChannel(s.learner, s.channel));
  runner_ = std::make_unique<PipelineRunner>(store_.get(), dispatcher_.get(), scoring_.get(), feeder_.get(),
                                             learner_.get(), std::move(templates), std::move(options));
  return absl::OkStatus();
}

void CoordinatorProcess::StartPipelineIfRunning() {
  if (runner_ == nullptr) return;
  absl::StatusOr<v1::RunStatus> run = store_->GetRun();
  if (!run.ok() || run->state() != v1::RUN_STATE_RUNNING) return;
  absl::MutexLock lock(&pipeline_mu_);
  if (pipeline_thread_.joinable()) return;  // already running (or ran: one pipeline per process)
  pipeline_thread_ = std::thread([this] {
    absl::Status s = runner_->Run(&stop_pipeline_);
    if (s.ok()) {
      spdlog::info("coordinator: the pipeline finished");
    } else {
      spdlog::error("coordinator: the pipeline stopped: {}", std::string(s.message()));
    }
  });
}

absl::Status CoordinatorProcess::CheckName(const std::string& name, const char* field) const {
  if (absl::Status s = RunStore::ValidateRunName(name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
  }
  if (name != options_.run_name) {
    return absl::NotFoundError(absl::StrCat(field, ": no run \"", name, "\" on this coordinator (it serves \"",
                                            options_.run_name, "\")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RunStatus> CoordinatorProcess::GetRun(const std::string& name) {
  if (absl::Status s = CheckName(name, "name"); !s.ok()) return s;
  auto run = store_->GetRun();
  if (!run.ok()) return run.status();
  run->set_workers_connected(dispatcher_->workers_connected());
  return run;
}

absl::StatusOr<v1::RunStatus> CoordinatorProcess::StartRun(const v1::StartRunRequest& request) {
  if (absl::Status s = RunStore::ValidateRunName(request.name()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("name: ", s.message()));
  }
  if (request.name() != options_.run_name) {
    return absl::FailedPreconditionError(absl::StrCat("name: this coordinator serves run \"", options_.run_name,
                                                      "\"; start one with run.name: ", request.name()));
  }
  if (request.config_yaml().size() > store_->options().limits.max_text_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("config_yaml: ", request.config_yaml().size(), " bytes > ",
                                                   store_->options().limits.max_text_bytes));
  }
  auto run = store_->GetRun();
  if (!run.ok()) return run.status();
  const v1::RunState state = run->state();
  if (state == v1::RUN_STATE_RUNNING || state == v1::RUN_STATE_SUCCEEDED ||
      (IsTerminalRunState(state) && !request.resume())) {
    return absl::AlreadyExistsError(absl::StrCat("name: run \"", request.name(), "\" is ",
                                                 v1::RunState_Name(state),
                                                 IsTerminalRunState(state) && state != v1::RUN_STATE_SUCCEEDED
                                                     ? " (resume: true carries it on)"
                                                     : ""));
  }
  const absl::Time now = absl::Now();
  if (!request.config_yaml().empty()) {
    if (absl::Status s = store_->SetConfig(request.config_yaml(), now); !s.ok()) return s;
  }
  if (request.create_only()) return GetRun(request.name());
  auto started = store_->SetRunState(v1::RUN_STATE_RUNNING, request.resume() ? "resumed" : "started", now);
  if (!started.ok()) return started.status();
  StartPipelineIfRunning();
  return GetRun(request.name());
}

absl::StatusOr<v1::ListRunsResponse> CoordinatorProcess::ListRuns(const v1::ListRunsRequest& request) {
  if (request.page_size() > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", request.page_size(), " not in [1, 1000]"));
  }
  uint64_t offset = 0;
  if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &offset)) {
    return absl::InvalidArgumentError("page_token: not a token from a previous ListRuns reply");
  }
  std::vector<v1::RunStatus> runs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.runs_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!std::filesystem::exists(entry.path() / "state.db") || !RunStore::ValidateRunName(name).ok()) continue;
    absl::StatusOr<v1::RunStatus> run;
    if (name == options_.run_name) {
      run = GetRun(name);
    } else {
      auto other = RunStore::Open(RunStore::StatePath(options_.runs_dir, name), options_.store);
      if (!other.ok()) continue;
      run = (*other)->GetRun();
    }
    if (!run.ok()) continue;
    if (request.state() != v1::RUN_STATE_UNSPECIFIED && run->state() != request.state()) continue;
    run->clear_config_yaml();
    runs.push_back(*std::move(run));
  }
  std::sort(runs.begin(), runs.end(), [](const v1::RunStatus& a, const v1::RunStatus& b) {
    return a.created_at().seconds() != b.created_at().seconds() ? a.created_at().seconds() > b.created_at().seconds()
                                                                : a.name() < b.name();
  });
  const uint64_t page = request.page_size() == 0 ? 100 : request.page_size();
  v1::ListRunsResponse response;
  for (uint64_t i = offset; i < runs.size() && i < offset + page; ++i) *response.add_runs() = runs[i];
  if (offset + page < runs.size()) response.set_next_page_token(absl::StrCat(offset + page));
  return response;
}

absl::StatusOr<v1::RunStatus> CoordinatorProcess::CancelRun(const v1::CancelRunRequest& request) {
  if (absl::Status s = CheckName(request.name(), "name"); !s.ok()) return s;
  auto run = store_->GetRun();
  if (!run.ok()) return run.status();
  if (IsTerminalRunState(run->state())) return GetRun(request.name());
  const std::string reason = request.reason().empty() ? "cancelled by user" : request.reason();
  stop_pipeline_ = true;
  if (absl::Status s = dispatcher_->CancelAll(reason); !s.ok()) return s;
  auto cancelled = store_->SetRunState(v1::RUN_STATE_CANCELLED, reason, absl::Now());
  if (!cancelled.ok()) return cancelled.status();
  return GetRun(request.name());
}

absl::Status CoordinatorProcess::CheckImport(const v1::ImportRecordsRequest& request) const {
  if (!request.run_name().empty() && request.run_name() != options_.run_name) {
    return absl::NotFoundError(absl::StrCat("run_name: no run \"", request.run_name(),
                                            "\" on this coordinator (it serves \"", options_.run_name, "\")"));
  }
  if (request.record_case() == v1::ImportRecordsRequest::RECORD_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat("record: line ", request.line(),
                                                   " has none of problem, proof, analysis"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ImportRecordsResponse> CoordinatorProcess::Import(
    const std::vector<v1::ImportRecordsRequest>& records) {
  const bool atomic = !records.empty() && records.front().atomic();
  return store_->ImportRecords(records, atomic);
}

absl::StatusOr<std::vector<v1::RunEvent>> CoordinatorProcess::Events(const std::string& name, uint64_t from_sequence,
                                                                     uint32_t limit) {
  if (absl::Status s = CheckName(name, "name"); !s.ok()) return s;
  return store_->EventsFrom(from_sequence, limit);
}

}  // namespace dsm
