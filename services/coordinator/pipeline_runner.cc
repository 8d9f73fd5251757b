#include "services/coordinator/pipeline_runner.h"

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "common/status_conversion.h"
#include "services/coordinator/generation_window.h"
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
  absl::Status status = PublishFreshAdapters();
  if (status.ok() && options_.warmup.has_value()) status = RunPhase(v1::PHASE_WARMUP_SFT, 0, stop);
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
  // Trains the role on everything the phase produced; `version` gets the result.
  uint64_t version = 0;
  auto finish = [&](v1::AdapterRole role) {
    absl::StatusOr<uint64_t> v = FinishTraining(role, stop);
    if (v.ok()) version = *v;
    return v.status();
  };
  switch (phase) {
    case v1::PHASE_WARMUP_SFT: {
      // Each pass records every SFT group of the labelled data again, in its own order.
      uint64_t recorded = 0;
      for (uint32_t epoch = 1; status.ok() && epoch <= std::max<uint32_t>(1, options_.warmup_epochs); ++epoch) {
        WarmupPhaseOptions o = *options_.warmup;
        o.epoch = epoch;
        WarmupPhase warmup(store_, WarmupTemplates{templates_.generator, templates_.verifier, templates_.meta_verifier},
                           std::move(o));
        while (status.ok()) {
          absl::StatusOr<WarmupProgress> p = warmup.RunOnce();
          if (!p.ok()) {
            status = p.status();
            break;
          }
          Wake();
          if (p->records == 0) break;
          recorded += p->verifier + p->meta_verifier + p->generator;
          Progress(phase, iteration, recorded, 0, "groups");
        }
      }
      // Every role phase 0 teaches ends trained on all its groups, also when a restart finds
      // them all recorded already.
      if (status.ok()) status = finish(v1::ADAPTER_ROLE_VERIFIER);
      if (status.ok() && options_.warmup->meta_completion) status = finish(v1::ADAPTER_ROLE_META_VERIFIER);
      if (status.ok() && options_.warmup->generator_completion) status = finish(v1::ADAPTER_ROLE_GENERATOR);
      break;
    }
    case v1::PHASE_VERIFIER_RL:
      status = Evaluate(phase, iteration, v1::EVALUATION_POINT_BEFORE, 0);
      if (status.ok()) status = Scoring(phase, iteration, stop);
      if (status.ok()) status = finish(v1::ADAPTER_ROLE_VERIFIER);
      if (status.ok()) status = Evaluate(phase, iteration, v1::EVALUATION_POINT_AFTER, version);
      break;
    case v1::PHASE_META_VERIFIER_RL:
      status = Scoring(phase, iteration, stop);
      if (status.ok()) status = finish(v1::ADAPTER_ROLE_META_VERIFIER);
      break;
    case v1::PHASE_ENHANCED_VERIFIER_RL:
      status = Scoring(phase, iteration, stop);
      if (status.ok()) status = finish(v1::ADAPTER_ROLE_VERIFIER);
      if (status.ok()) status = Evaluate(phase, iteration, v1::EVALUATION_POINT_AFTER, version);
      break;
    case v1::PHASE_GENERATOR_RL: {
      if (iteration == 1) status = InitGeneratorFromVerifier();
      if (status.ok()) status = finish(v1::ADAPTER_ROLE_GENERATOR);
      if (status.ok()) status = EvaluateGenerator(iteration, v1::EVALUATION_POINT_BEFORE, version, stop);
      if (!status.ok()) break;
      // Each pass enqueues the problems again (a fresh group each) once the previous pass's
      // results are in.
      const uint32_t epochs = std::max<uint32_t>(1, options_.generator_epochs);
      uint64_t done = 0, total = 0;
      for (uint32_t epoch = 1; epoch <= epochs && status.ok(); ++epoch) {
        total += options_.generator_problems;
        status = options_.lockstep_round > 0 ? GeneratorPassInRounds(iteration, epoch, &done, &total, stop)
                                             : GeneratorPass(iteration, epoch, &done, &total, stop);
      }
      if (status.ok()) status = finish(v1::ADAPTER_ROLE_GENERATOR);
      if (status.ok()) status = EvaluateGenerator(iteration, v1::EVALUATION_POINT_AFTER, version, stop);
      break;
    }
    case v1::PHASE_AUTO_LABEL: {
      AutoLabelPhaseOptions o = options_.auto_label;
      o.iteration = iteration;
      o.min_adapter_version = Trained(v1::ADAPTER_ROLE_GENERATOR);
      AutoLabelPhase labeller(store_, dispatcher_, scoring_, templates_.generator, templates_.verifier_markers, o);
      absl::StatusOr<AutoLabelProgress> enqueued = labeller.Enqueue(options_.auto_label_problems);
      if (!enqueued.ok()) {
        status = enqueued.status();
        break;
      }
      uint64_t done = 0;
      uint32_t considered = 0;
      const uint64_t total = enqueued->enqueued;
      status = AwaitQueue(
          [&] {
            // The bar moves as each item is stored, not only when the call returns.
            absl::StatusOr<AutoLabelProgress> p = labeller.ProcessResults([&](const AutoLabelProgress& so_far) {
              if (so_far.items > 0) Progress(phase, iteration, done + so_far.items, total, "problems");
            });
            if (!p.ok()) return p.status();
            considered += p->proofs;
            done += p->items;
            return absl::OkStatus();
          },
          stop);
      if (status.ok()) status = EvaluateAutoLabels(iteration, considered);
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
  if (absl::StatusOr<v1::RunStatus> run = store_->GetRun();
      run.ok() && run->progress().phase() == phase && run->progress().iteration() == iteration) {
    *finished.mutable_phase_finished()->mutable_progress() = run->progress();
  }
  if (absl::StatusOr<uint64_t> s = store_->AppendEvent(finished, absl::Now()); !s.ok()) return s.status();
  return absl::OkStatus();
}

void PipelineRunner::Progress(v1::Phase phase, uint32_t iteration, uint64_t done, uint64_t total, const char* unit) {
  v1::PhaseProgress p;
  p.set_phase(phase);
  p.set_iteration(iteration);
  p.set_done(done);
  p.set_total(total);
  p.set_unit(unit);
  if (absl::Status s = store_->SetProgress(p, absl::Now()); !s.ok()) {
    spdlog::warn("coordinator: recording progress: {}", std::string(s.message()));
  }
}

ScoringPhaseData ScoringPhaseDataOf(v1::Phase phase, const PipelineOptions& options) {
  ScoringPhaseData d;
  d.proofs = phase == v1::PHASE_VERIFIER_RL || phase == v1::PHASE_ENHANCED_VERIFIER_RL;
  d.analyses = phase == v1::PHASE_META_VERIFIER_RL ||
               (phase == v1::PHASE_ENHANCED_VERIFIER_RL && options.enhanced_analyses);
  d.epochs = phase == v1::PHASE_VERIFIER_RL        ? std::max<uint32_t>(1, options.verifier_epochs)
             : phase == v1::PHASE_META_VERIFIER_RL ? std::max<uint32_t>(1, options.meta_verifier_epochs)
                                                   : 1;
  return d;
}

absl::Status PipelineRunner::Scoring(v1::Phase phase, uint32_t iteration, const std::atomic<bool>* stop) {
  const ScoringPhaseData data = ScoringPhaseDataOf(phase, options_);
  absl::StatusOr<DatasetCounts> counts = store_->CountRecords();
  if (!counts.ok()) return counts.status();
  const uint64_t proofs = data.proofs ? counts->proofs : 0, analyses = data.analyses ? counts->analyses : 0;
  const uint64_t total = (proofs + analyses) * data.epochs;
  const char* unit = data.proofs && data.analyses ? "proofs+analyses" : data.proofs ? "proofs" : "analyses";
  uint64_t done = 0;
  for (uint32_t epoch = 1; epoch <= data.epochs; ++epoch) {
    std::optional<VerifierPhase> proof_phase;
    std::optional<MetaVerifierPhase> analysis_phase;
    if (data.proofs) {
      VerifierPhaseOptions o = options_.verifier;
      o.phase = phase;
      o.iteration = iteration;
      o.epoch = epoch;
      if (options_.lockstep_round > 0) o.max_proofs = options_.lockstep_round;
      proof_phase.emplace(store_, scoring_, o, [this] { Wake(); });
    }
    if (data.analyses) {
      MetaVerifierPhaseOptions o = options_.meta_verifier;
      o.phase = phase;
      o.iteration = iteration;
      o.epoch = epoch;
      // Phase 3 trains the verifier adapter on the meta-verifier's data too.
      o.role = phase == v1::PHASE_ENHANCED_VERIFIER_RL ? v1::ADAPTER_ROLE_VERIFIER : v1::ADAPTER_ROLE_META_VERIFIER;
      if (options_.lockstep_round > 0) o.max_analyses = options_.lockstep_round;
      analysis_phase.emplace(store_, scoring_, o, [this] { Wake(); });
    }
    // Both kinds (phase 3) are worked through side by side: the next batch is taken from the
    // kind that is further behind (by share of its records done), so the adapter ends on
    // neither alone. After a restart the shares start from 0 again; the cursors keep the place.
    // Outside lockstep a batch of the other kind runs beside it, unless that kind is a batch or
    // more ahead: a batch of proofs is verified (the verifier) and then its analyses
    // meta-verified, and a batch of analyses is assessed by the meta-verifier, so side by side
    // neither scorer waits for the other's turn.
    uint64_t proofs_done = 0, analyses_done = 0;
    uint64_t last_proofs = 1, last_analyses = 1;  // records in the kind's last batch
    bool proofs_left = proof_phase.has_value(), analyses_left = analysis_phase.has_value();
    while (proofs_left || analyses_left) {
      // Shares compared as proofs_done / proofs against analyses_done / analyses, multiplied out.
      const uint64_t proof_part = proofs_done * analyses, analysis_part = analyses_done * proofs;
      const bool take_proofs = proofs_left && (!analyses_left || proof_part <= analysis_part);
      const bool beside = options_.lockstep_round == 0 && proofs_left && analyses_left &&
                          (take_proofs ? analysis_part < proof_part + last_analyses * proofs
                                       : proof_part < analysis_part + last_proofs * analyses);
      std::optional<absl::StatusOr<ScoringPhaseProgress>> other;
      std::thread other_thread;
      if (beside) {
        other_thread = std::thread([&] { other = take_proofs ? analysis_phase->RunOnce() : proof_phase->RunOnce(); });
      }
      absl::StatusOr<ScoringPhaseProgress> step = take_proofs ? proof_phase->RunOnce() : analysis_phase->RunOnce();
      if (other_thread.joinable()) other_thread.join();
      if (!step.ok()) return step.status();
      if (other.has_value() && !other->ok()) return other->status();
      if (options_.lockstep_round > 0 && step->items > 0) {
        // Lockstep: the round (sampled by one version, the one the last flush published) is
        // trained on before the next is sampled.
        const v1::AdapterRole role =
            phase == v1::PHASE_META_VERIFIER_RL ? v1::ADAPTER_ROLE_META_VERIFIER : v1::ADAPTER_ROLE_VERIFIER;
        if (absl::StatusOr<uint64_t> v = FinishTraining(role, stop); !v.ok()) return v.status();
      }
      auto count = [&](bool of_proofs, const ScoringPhaseProgress& p) {
        const uint64_t n = p.items + p.skipped;
        done += n;
        if (of_proofs) {
          proofs_done += n;
          proofs_left = n > 0;
          if (n > 0) last_proofs = n;
        } else {
          analyses_done += n;
          analyses_left = n > 0;
          if (n > 0) last_analyses = n;
        }
      };
      count(take_proofs, *step);
      if (other.has_value()) count(!take_proofs, **other);
      Progress(phase, iteration, done, total, unit);
    }
  }
  return absl::OkStatus();
}

GeneratorPhase PipelineRunner::GeneratorPassPhase(uint32_t iteration, uint32_t epoch) {
  GeneratorPhaseOptions o = options_.generator;
  o.iteration = iteration;
  o.epoch = epoch;
  o.min_adapter_version = Trained(v1::ADAPTER_ROLE_GENERATOR);
  return GeneratorPhase(store_, dispatcher_, scoring_, templates_.generator, templates_.verifier_markers, o,
                        [this] { Wake(); });
}

absl::Status PipelineRunner::GeneratorPass(uint32_t iteration, uint32_t epoch, uint64_t* done, uint64_t* total,
                                           const std::atomic<bool>* stop) {
  GeneratorPhase generator = GeneratorPassPhase(iteration, epoch);
  GenerationWindow window(options_.generator_problems, options_.generator_window);
  if (options_.generator_window > 0 && options_.generator_window < options_.generator_problems) {
    spdlog::info("coordinator: phase 4 pass {}: {} problems, at most {} in flight", epoch,
                 options_.generator_problems, options_.generator_window);
  }
  // Tops the pass's problems in flight up to the window (all of them when it is 0); each is
  // sampled by the adapter of the moment it is leased.
  auto top_up = [&]() -> absl::Status {
    for (uint32_t want = window.ToEnqueue(); want > 0; want = window.ToEnqueue()) {
      absl::StatusOr<GeneratorPhaseProgress> enqueued = generator.Enqueue(want);
      if (!enqueued.ok()) return enqueued.status();
      *total -= window.Enqueued(want, enqueued->enqueued);
    }
    return absl::OkStatus();
  };
  // The queue can run empty between a window's last result and the next top-up.
  absl::Status status;
  while (status.ok() && !window.Done()) {
    status = top_up();
    if (!status.ok()) break;
    status = AwaitQueue(
        [&] {
          absl::StatusOr<GeneratorPhaseProgress> p = generator.ProcessResults();
          if (!p.ok()) return p.status();
          if (p->finished_items > 0) {
            window.Finished(p->finished_items);
            *done += p->finished_items;
            Progress(v1::PHASE_GENERATOR_RL, iteration, *done, *total, "problems");
          }
          return top_up();
        },
        stop);
  }
  return status;
}

absl::Status PipelineRunner::GeneratorPassInRounds(uint32_t iteration, uint32_t epoch, uint64_t* done,
                                                   uint64_t* total, const std::atomic<bool>* stop) {
  uint32_t left = options_.generator_problems;
  while (left > 0) {
    // The round's problems, all sampled by the version the last round's training published ...
    GeneratorPhase round = GeneratorPassPhase(iteration, epoch);
    absl::StatusOr<GeneratorPhaseProgress> enqueued = round.Enqueue(std::min(left, options_.lockstep_round));
    if (!enqueued.ok()) return enqueued.status();
    if (enqueued->enqueued == 0) {  // the pass ran out of problems
      *total -= left;
      break;
    }
    left -= enqueued->enqueued;
    // ... every one of them sampled before any is scored (the learner trains on nothing new
    // meanwhile), then scored and recorded in problem order ...
    if (absl::Status s = AwaitQueue([] { return absl::OkStatus(); }, stop); !s.ok()) return s;
    for (uint32_t finished = 1; finished > 0;) {
      absl::StatusOr<GeneratorPhaseProgress> p = round.ProcessResults();
      if (!p.ok()) return p.status();
      finished = p->finished_items;
      *done += finished;
      if (finished > 0) Progress(v1::PHASE_GENERATOR_RL, iteration, *done, *total, "problems");
    }
    // ... and trained on before the next round.
    if (absl::StatusOr<uint64_t> v = FinishTraining(v1::ADAPTER_ROLE_GENERATOR, stop); !v.ok()) return v.status();
  }
  return absl::OkStatus();
}

uint64_t PipelineRunner::Trained(v1::AdapterRole role) const {
  return scoring_ == nullptr ? 0 : scoring_->RequiredAdapterVersion(role);
}

absl::StatusOr<uint64_t> PipelineRunner::FinishTraining(v1::AdapterRole role, const std::atomic<bool>* stop) {
  if (learner_ == nullptr) return absl::FailedPreconditionError("learner: no learner to train the phase's groups");
  // Every recorded group acknowledged by the learner (the feeder re-sends
  // after a learner restart, so this also waits that out). Without a feeder
  // nothing delivers them: flush what the learner has.
  while (feeder_ != nullptr) {
    if (stop != nullptr && stop->load()) return Stopped();
    absl::StatusOr<std::vector<GroupRecord>> pending = store_->GroupsWithStatus(kGroupPending, 1);
    if (!pending.ok()) return pending.status();
    if (pending->empty()) break;
    Wake();
    absl::SleepFor(options_.poll);
  }
  v1::FlushRequest request;
  request.set_role(role);
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    SetDeadline(&context, options_.learner_deadline);
    v1::FlushResponse response;
    const grpc::Status s = learner_->Flush(&context, request, &response);
    if (s.ok()) {
      const uint64_t version = response.published().version();
      if (scoring_ != nullptr) scoring_->RequireAdapterVersion(role, version);
      return version;
    }
    const absl::Status status = FromGrpcStatus(s);
    if (!absl::IsUnavailable(status) || attempt >= 30) {
      return absl::Status(status.code(), absl::StrCat("Flush(", v1::AdapterRole_Name(role), "): ", s.error_message()));
    }
    if (stop != nullptr && stop->load()) return Stopped();
    absl::SleepFor(absl::Seconds(1));  // the learner is restarting
  }
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

absl::Status PipelineRunner::Evaluate(v1::Phase phase, uint32_t iteration, v1::EvaluationPoint point,
                                    uint64_t min_version) {
  if (options_.grader == nullptr) return absl::OkStatus();
  VerifierEvaluationOptions o = options_.evaluation;
  o.phase = phase;
  o.iteration = iteration;
  o.point = point;
  o.min_adapter_version = min_version;
  absl::StatusOr<v1::Evaluation> e = EvaluateVerifier(store_, scoring_, *options_.grader, o);
  if (absl::IsFailedPrecondition(e.status())) {
    spdlog::info("coordinator: no verifier evaluation: {}", std::string(e.status().message()));
    return absl::OkStatus();
  }
  if (!e.ok()) return e.status();
  const auto version = e->metrics().find("adapter_version");
  spdlog::info("coordinator: verifier after {} {}: agreement {:.3f}, hallucinated issues {:.3f}; scores that missed "
               "an issue {:.3f}, found a false one {:.3f}, got the severity wrong {:.3f} (adapter version {})",
               v1::Phase_Name(phase), v1::EvaluationPoint_Name(point), e->metrics().at("verifier_agreement"),
               e->metrics().at("hallucinated_issue_rate"), e->metrics().at("verifier_missed_issue_rate"),
               e->metrics().at("verifier_false_issue_rate"), e->metrics().at("verifier_wrong_severity_rate"),
               version == e->metrics().end() ? std::string("none") : std::to_string(static_cast<uint64_t>(version->second)));
  return absl::OkStatus();
}

absl::Status PipelineRunner::EvaluateGenerator(uint32_t iteration, v1::EvaluationPoint point, uint64_t min_version,
                                             const std::atomic<bool>* stop) {
  if (options_.grader == nullptr) return absl::OkStatus();
  GeneratorEvaluationOptions o = options_.generator_evaluation;
  o.iteration = iteration;
  o.point = point;
  o.min_adapter_version = min_version;
  absl::StatusOr<v1::Evaluation> e =
      dsm::EvaluateGenerator(store_, dispatcher_, templates_.generator, templates_.verifier_markers,
                             *options_.grader, o, stop);
  if (absl::IsFailedPrecondition(e.status())) {
    spdlog::info("coordinator: no generator evaluation: {}", std::string(e.status().message()));
    return absl::OkStatus();
  }
  if (!e.ok()) return e.status();
  spdlog::info("coordinator: generator {} phase 4 (iteration {}): score {:.3f}, self-score agreement {:.3f}",
               v1::EvaluationPoint_Name(point), iteration, e->metrics().at("generator_score"),
               e->metrics().at("self_score_agreement"));
  return absl::OkStatus();
}

absl::Status PipelineRunner::EvaluateAutoLabels(uint32_t iteration, uint32_t considered) {
  if (options_.grader == nullptr) return absl::OkStatus();
  absl::StatusOr<v1::Evaluation> e = dsm::EvaluateAutoLabels(store_, *options_.grader, iteration, considered);
  if (absl::IsFailedPrecondition(e.status())) {
    spdlog::info("coordinator: no auto-label evaluation: {}", std::string(e.status().message()));
    return absl::OkStatus();
  }
  if (!e.ok()) return e.status();
  const auto& m = e->metrics();
  spdlog::info(
      "coordinator: auto-labels (iteration {}): agreement {:.3f}, kept {:.3f}; wrong: missed issue {:.3f}, false "
      "issue {:.3f}, wrong severity {:.3f}",
      iteration, m.at("autolabel_agreement"), m.at("autolabel_kept_fraction"), m.at("autolabel_missed_issue_rate"),
      m.at("autolabel_false_issue_rate"), m.at("autolabel_wrong_severity_rate"));
  return absl::OkStatus();
}

absl::Status PipelineRunner::PublishFreshAdapters() {
  if (learner_ == nullptr) return absl::OkStatus();
  v1::LearnerState state;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    SetDeadline(&context, options_.learner_deadline);
    const grpc::Status s = learner_->GetState(&context, v1::GetStateRequest(), &state);
    if (s.ok()) break;
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || attempt >= 30) {
      return absl::Status(FromGrpcStatus(s).code(), absl::StrCat("learner GetState: ", s.error_message()));
    }
    absl::SleepFor(absl::Seconds(1));
  }
  for (const v1::RoleState& role : state.roles()) {
    if (role.adapter_version() > 0) continue;
    grpc::ClientContext context;
    SetDeadline(&context, options_.learner_deadline);
    v1::InitAdapterRequest request;
    request.set_role(role.role());
    request.mutable_fresh();
    v1::InitAdapterResponse response;
    const grpc::Status s = learner_->InitAdapter(&context, request, &response);
    if (!s.ok()) {
      return absl::Status(FromGrpcStatus(s).code(),
                          absl::StrCat("InitAdapter(", v1::AdapterRole_Name(role.role()), "): ", s.error_message()));
    }
    spdlog::info("coordinator: published a fresh {} adapter (version {})", v1::AdapterRole_Name(role.role()),
                 response.published().version());
  }
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
