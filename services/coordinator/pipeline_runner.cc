#include "services/coordinator/pipeline_runner.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "common/status_conversion.h"
#include "google/protobuf/util/time_util.h"
#include "spdlog/spdlog.h"

namespace dsm {
namespace {

absl::Status Stopped() { return absl::CancelledError("the run was stopped"); }

}  // namespace

PipelineRunner::PipelineRunner(RunStore* store, LeaseDispatcher* dispatcher, ScoringClient* scoring,
                               GroupFeeder* feeder, v1::Learner::StubInterface* learner, PipelineTemplates templates,
                               PipelineOptions options)
    : store_(store),
      dispatcher_(dispatcher),
      scoring_(scoring),
      feeder_(feeder),
      learner_(learner),
      templates_(std::move(templates)),
      options_(std::move(options)) {}

void PipelineRunner::Wake() {
  if (feeder_ != nullptr) feeder_->Wake();
}

absl::Status PipelineRunner::Run(const std::atomic<bool>* stop) {
  absl::Status status = absl::OkStatus();
  if (options_.warmup.has_value()) status = RunPhase(v1::PHASE_WARMUP_SFT, 0, stop);
  for (uint32_t it = 1; status.ok() && it <= options_.iterations; ++it) {
    std::vector<v1::Phase> phases = {v1::PHASE_ENHANCED_VERIFIER_RL, v1::PHASE_GENERATOR_RL, v1::PHASE_AUTO_LABEL};
    if (it == 1) phases.insert(phases.begin(), {v1::PHASE_VERIFIER_RL, v1::PHASE_META_VERIFIER_RL});
    for (v1::Phase phase : phases) {
      status = RunPhase(phase, it, stop);
      if (!status.ok()) break;
    }
  }
  const absl::Time now = absl::Now();
  absl::StatusOr<v1::RunStatus> ended =
      status.ok() ? store_->SetRunState(v1::RUN_STATE_SUCCEEDED, "every phase finished", now)
      : absl::IsCancelled(status) ? store_->SetRunState(v1::RUN_STATE_CANCELLED, std::string(status.message()), now)
                                  : store_->SetRunState(v1::RUN_STATE_FAILED, std::string(status.message()), now);
  if (!ended.ok()) spdlog::error("coordinator: recording the run's end: {}", std::string(ended.status().message()));
  return status;
}

absl::Status PipelineRunner::RunPhase(v1::Phase phase, uint32_t iteration, const std::atomic<bool>* stop) {
  if (stop != nullptr && stop->load()) return Stopped();
  const absl::Time started = absl::Now();
  if (absl::Status s = store_->StartPhase(phase, iteration, started); !s.ok()) return s;
  spdlog::info("coordinator: phase {} (iteration {}) started", v1::Phase_Name(phase), iteration);
  absl::Status status;
  switch (phase) {
    case v1::PHASE_WARMUP_SFT: {
      WarmupPhase warmup(store_, WarmupTemplates{templates_.generator, templates_.verifier, templates_.meta_verifier},
                         *options_.warmup);
      while (status.ok()) {
        absl::StatusOr<WarmupProgress> p = warmup.RunOnce();
        if (!p.ok()) {
          status = p.status();
          break;
        }
        Wake();
        if (p->verifier + p->meta_verifier + p->generator == 0) break;
      }
      break;
    }
    case v1::PHASE_VERIFIER_RL:
      status = Evaluate(phase, iteration, v1::EVALUATION_POINT_BEFORE);
      if (status.ok()) status = Scoring(phase, iteration);
      if (status.ok()) status = Evaluate(phase, iteration, v1::EVALUATION_POINT_AFTER);
      break;
    case v1::PHASE_META_VERIFIER_RL:
      status = Scoring(phase, iteration);
      break;
    case v1::PHASE_ENHANCED_VERIFIER_RL:
      status = Scoring(phase, iteration);
      if (status.ok()) status = Evaluate(phase, iteration, v1::EVALUATION_POINT_AFTER);
      break;
    case v1::PHASE_GENERATOR_RL: {
      if (iteration == 1) status = InitGeneratorFromVerifier();
      if (!status.ok()) break;
      GeneratorPhaseOptions o = options_.generator;
      o.iteration = iteration;
      GeneratorPhase generator(store_, dispatcher_, scoring_, templates_.generator, templates_.verifier_markers, o,
                               [this] { Wake(); });
      absl::StatusOr<GeneratorPhaseProgress> enqueued = generator.Enqueue(options_.generator_problems);
      if (!enqueued.ok()) {
        status = enqueued.status();
        break;
      }
      status = AwaitQueue([&generator] { return generator.ProcessResults().status(); }, stop);
      break;
    }
    case v1::PHASE_AUTO_LABEL: {
      AutoLabelPhaseOptions o = options_.auto_label;
      o.iteration = iteration;
      AutoLabelPhase labeller(store_, dispatcher_, scoring_, templates_.generator, templates_.verifier_markers, o);
      absl::StatusOr<AutoLabelProgress> enqueued = labeller.Enqueue(options_.auto_label_problems);
      if (!enqueued.ok()) {
        status = enqueued.status();
        break;
      }
      status = AwaitQueue([&labeller] { return labeller.ProcessResults().status(); }, stop);
      break;
    }
    default:
      status = absl::InvalidArgumentError(absl::StrCat("phase: ", v1::Phase_Name(phase), " is not runnable"));
  }
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(v1::Phase_Name(phase), " (iteration ", iteration,
                                                    "): ", status.message()));
  }
  v1::RunEvent finished;
  finished.mutable_phase_finished()->set_phase(phase);
  finished.mutable_phase_finished()->set_iteration(iteration);
  *finished.mutable_phase_finished()->mutable_elapsed() =
      google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(absl::Now() - started));
  if (absl::StatusOr<uint64_t> s = store_->AppendEvent(finished, absl::Now()); !s.ok()) return s.status();
  return absl::OkStatus();
}

absl::Status PipelineRunner::Scoring(v1::Phase phase, uint32_t iteration) {
  const bool verifier = phase != v1::PHASE_META_VERIFIER_RL;
  const bool meta = phase != v1::PHASE_VERIFIER_RL;
  if (verifier) {
    VerifierPhaseOptions o = options_.verifier;
    o.phase = phase;
    o.iteration = iteration;
    VerifierPhase p(store_, scoring_, o, [this] { Wake(); });
    for (;;) {
      absl::StatusOr<ScoringPhaseProgress> done = p.RunOnce();
      if (!done.ok()) return done.status();
      if (done->items == 0) break;
    }
  }
  if (meta) {
    MetaVerifierPhaseOptions o = options_.meta_verifier;
    o.phase = phase;
    o.iteration = iteration;
    // Phase 3 trains the verifier adapter on the meta-verifier's data too.
    o.role = phase == v1::PHASE_ENHANCED_VERIFIER_RL ? v1::ADAPTER_ROLE_VERIFIER : v1::ADAPTER_ROLE_META_VERIFIER;
    MetaVerifierPhase p(store_, scoring_, o, [this] { Wake(); });
    for (;;) {
      absl::StatusOr<ScoringPhaseProgress> done = p.RunOnce();
      if (!done.ok()) return done.status();
      if (done->items == 0) break;
    }
  }
  return absl::OkStatus();
}

absl::Status PipelineRunner::AwaitQueue(const std::function<absl::Status()>& drain, const std::atomic<bool>* stop) {
  while (true) {
    if (stop != nullptr && stop->load()) return Stopped();
    if (absl::Status s = drain(); !s.ok()) return s;
    absl::StatusOr<QueueCounters> c = store_->queue().Counters();
    if (!c.ok()) return c.status();
    if (c->queued == 0 && c->leased == 0) return drain();  // the last results
    absl::SleepFor(options_.poll);
  }
}

absl::Status PipelineRunner::Evaluate(v1::Phase phase, uint32_t iteration, v1::EvaluationPoint point) {
  if (options_.grader == nullptr) return absl::OkStatus();
  VerifierEvaluationOptions o = options_.evaluation;
  o.phase = phase;
  o.iteration = iteration;
  o.point = point;
  absl::StatusOr<v1::Evaluation> e = EvaluateVerifier(store_, scoring_, *options_.grader, o);
  if (absl::IsFailedPrecondition(e.status())) {
    spdlog::info("coordinator: no verifier evaluation: {}", std::string(e.status().message()));
    return absl::OkStatus();
  }
  if (!e.ok()) return e.status();
  spdlog::info("coordinator: verifier after {} {}: agreement {:.3f}, hallucinated issues {:.3f}",
               v1::Phase_Name(phase), v1::EvaluationPoint_Name(point), e->metrics().at("verifier_agreement"),
               e->metrics().at("hallucinated_issue_rate"));
  return absl::OkStatus();
}

absl::Status PipelineRunner::InitGeneratorFromVerifier() {
  if (learner_ == nullptr) return absl::FailedPreconditionError("learner: no learner to initialise the generator");
  grpc::ClientContext context;
  SetDeadline(&context, options_.learner_deadline);
  v1::InitAdapterRequest request;
  request.set_role(v1::ADAPTER_ROLE_GENERATOR);
  request.set_copy_from(v1::ADAPTER_ROLE_VERIFIER);
  v1::InitAdapterResponse response;
  const grpc::Status s = learner_->InitAdapter(&context, request, &response);
  if (!s.ok()) return absl::Status(FromGrpcStatus(s).code(), absl::StrCat("InitAdapter: ", s.error_message()));
  return absl::OkStatus();
}

}  // namespace dsm
