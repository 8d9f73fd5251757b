#include "services/runner/run_monitor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "common/status_conversion.h"

namespace dsm {
namespace {

std::string RoleName(v1::AdapterRole role) {
  switch (role) {
    case v1::ADAPTER_ROLE_GENERATOR: return "generator";
    case v1::ADAPTER_ROLE_VERIFIER: return "verifier";
    case v1::ADAPTER_ROLE_META_VERIFIER: return "meta_verifier";
    default: return "unknown";
  }
}

}  // namespace

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
  const double now = seconds();
  if (run.phase() != v1::PHASE_UNSPECIFIED &&
      (phases_.empty() || phases_.back().phase != run.phase() || phases_.back().iteration != run.iteration())) {
    if (!phases_.empty()) phases_.back().end_seconds = now;
    phases_.push_back(MonitorPhaseSpan{run.phase(), run.iteration(), now, now});
  } else if (!phases_.empty()) {
    phases_.back().end_seconds = now;
  }
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
      points_.push_back(MonitorPoint{metric, RoleName(r.role()), phase, iteration, now, value});
    }
  }
}

void RunMonitor::Finish() {
  if (!phases_.empty()) phases_.back().end_seconds = seconds();
}

}  // namespace dsm
