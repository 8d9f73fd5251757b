// GenerationWindow: how many of a pass's problems to enqueue now, so that at
// most `window` are in flight (enqueued and not yet scored into a group) at
// once: bounded staleness for phase 4. A problem is sampled by whatever adapter
// the worker holds when it leases it; the learner drops a group more than
// max_policy_lag versions older than its own. Enqueued all at once, the
// sampler runs far ahead of scoring and training and the late groups are
// scored only to be dropped; with the window at groups_per_step ×
// max_policy_lag, each group has at most that many groups ahead of it.
//
// Thread-compatible.
#ifndef DSM_SERVICES_COORDINATOR_GENERATION_WINDOW_H_
#define DSM_SERVICES_COORDINATOR_GENERATION_WINDOW_H_

#include <cstdint>

namespace dsm {

class GenerationWindow {
 public:
  // `planned` problems in the pass; `window` 0 = no limit.
  GenerationWindow(uint32_t planned, uint32_t window) : planned_(planned), window_(window) {}

  // Problems to enqueue now (0 when the window is full or the pass is all enqueued).
  uint32_t ToEnqueue() const;
  // `got` of the `asked` were enqueued. Fewer means the problems ran out: nothing more is
  // enqueued, and the return value is how many of the planned problems never will be.
  uint32_t Enqueued(uint32_t asked, uint32_t got);
  // `n` problems were scored into groups or failed for good. (After a restart, results of
  // problems enqueued before it count too; in flight never goes below 0.)
  void Finished(uint32_t n);
  // Everything planned (or available) was enqueued and nothing is in flight.
  bool Done() const { return (exhausted_ || enqueued_ >= planned_) && in_flight_ == 0; }
  uint32_t in_flight() const { return in_flight_; }

 private:
  const uint32_t planned_;
  const uint32_t window_;
  uint32_t enqueued_ = 0;
  uint32_t in_flight_ = 0;
  bool exhausted_ = false;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_GENERATION_WINDOW_H_
