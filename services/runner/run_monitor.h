// RunMonitor: what `dsm run` watches while the pipeline runs. Each Poll()
// asks the coordinator for the run's status and the learner for its state,
// and records, against seconds since the monitor started:
//   - phase spans, from the run's phase_started/phase_finished events
//     (OnEvent), so a phase shorter than a poll is still there;
//   - a point per new optimizer step of each role: loss, KL, reward mean,
//     clip fraction and gradient norm of the step (the learner's
//     RoleState.last_step), tagged with the phase running at the time.
// A learner that does not answer (restarting) is skipped for that poll.
//
// Thread-compatible.
#ifndef DSM_SERVICES_RUNNER_RUN_MONITOR_H_
#define DSM_SERVICES_RUNNER_RUN_MONITOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "dsm/v1/learner.grpc.pb.h"

namespace dsm {

struct MonitorPoint {
  std::string metric;  // "loss", "kl", "reward_mean", "clip_fraction", "grad_norm"
  std::string role;    // "generator", "verifier", "meta_verifier"
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  uint32_t iteration = 0;
  double seconds = 0;  // since the monitor started
  double value = 0;
};

struct MonitorPhaseSpan {
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  uint32_t iteration = 0;
  double start_seconds = 0;
  double end_seconds = 0;  // = start until the phase finishes (or Finish)
};

class RunMonitor {
 public:
  // Neither stub is owned; `learner` may be null.
  RunMonitor(v1::Coordinator::StubInterface* coordinator, v1::Learner::StubInterface* learner, std::string run_name,
             absl::Duration deadline);

  // The run's status (errors: the coordinator's, with its code).
  absl::StatusOr<v1::RunStatus> Poll();
  // Records a phase span's start or end; other events are ignored.
  void OnEvent(const v1::RunEvent& event);
  // Closes a phase span still open at the current time.
  void Finish();

  double seconds() const { return absl::ToDoubleSeconds(absl::Now() - started_); }
  const std::vector<MonitorPoint>& points() const { return points_; }
  const std::vector<MonitorPhaseSpan>& phases() const { return phases_; }

 private:
  void PollLearner(v1::Phase phase, uint32_t iteration);
  void CloseOpenSpan(double at);

  v1::Coordinator::StubInterface* const coordinator_;
  v1::Learner::StubInterface* const learner_;
  const std::string run_name_;
  const absl::Duration deadline_;
  const absl::Time started_ = absl::Now();
  std::map<int, uint64_t> steps_seen_;  // role -> optimizer steps already recorded
  std::vector<MonitorPoint> points_;
  std::vector<MonitorPhaseSpan> phases_;
  bool open_span_ = false;  // phases_.back() has started and not finished
};

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_RUN_MONITOR_H_
