#include "services/runner/run_monitor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "common/adapter_roles.h"
#include "common/grpc_client.h"
#include "common/status_conversion.h"

namespace dsm {
RunMonitor::RunMonitor(v1::Coordinator::StubInterface* coordinator, v1::Learner::StubInterface* learner,
                       std::string run_name, absl::Duration deadline)
    : coordinator_(coordinator), learner_(learner), run_name_(std::move(run_name)), deadline_(deadline) {}

absl::StatusOr<v1::RunStatus> RunMonitor::Poll() {
  grpc::ClientContext context;
  SetDeadline(&context, deadline_);
  v1::GetRunRequest request;
  request.set_name(run_name_);
  v1::RunStatus run;
  const grpc::Status s = coordinator_->GetRun(&context, request, &run);
  if (!s.ok()) return absl::Status(FromGrpcStatus(s).code(), absl::StrCat("GetRun: ", s.error_message()));
  PollLearner(run.phase(), run.iteration());
  return run;
}

void RunMonitor::PollLearner(v1::Phase phase, uint32_t iteration) {
  if (learner_ == nullptr) return;
  grpc::ClientContext context;
  SetDeadline(&context, deadline_);
  v1::LearnerState state;
  if (!learner_->GetState(&context, v1::GetStateRequest(), &state).ok()) return;
  const double now = seconds();
  for (const v1::RoleState& r : state.roles()) {
    uint64_t& seen = steps_seen_[r.role()];
    if (r.optimizer_steps() <= seen || !r.has_last_step()) {
      seen = std::max(seen, r.optimizer_steps());
      continue;
    }
    seen = r.optimizer_steps();
    const v1::TrainMetrics& m = r.last_step();
    for (const auto& [metric, value] : {std::pair<const char*, double>{"loss", m.loss()},
                                        {"kl", m.kl()},
                                        {"reward_mean", m.reward_mean()},
                                        {"clip_fraction", m.clip_fraction()},
                                        {"grad_norm", m.grad_norm()}}) {
      points_.push_back(MonitorPoint{metric, AdapterRoleName(r.role()), phase, iteration, now, value});
    }
  }
}

void RunMonitor::OnEvent(const v1::RunEvent& event) {
  const double at = absl::ToDoubleSeconds(absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(
                                              event.time())) -
                                          started_);
  if (event.has_phase_started()) {
    CloseOpenSpan(at);
    phases_.push_back(MonitorPhaseSpan{event.phase_started().phase(), event.phase_started().iteration(), at, at});
    open_span_ = true;
  } else if (event.has_phase_finished() && open_span_ && phases_.back().phase == event.phase_finished().phase() &&
             phases_.back().iteration == event.phase_finished().iteration()) {
    CloseOpenSpan(at);
  }
}

void RunMonitor::CloseOpenSpan(double at) {
  if (!open_span_) return;
  phases_.back().end_seconds = std::max(at, phases_.back().start_seconds);
  open_span_ = false;
}

void RunMonitor::Finish() { CloseOpenSpan(seconds()); }

}  // namespace dsm
