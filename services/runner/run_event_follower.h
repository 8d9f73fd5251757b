// RunEventFollower: follows a run's events (Coordinator.WatchRun) on its own
// thread so `dsm run` sees every phase that started and finished, however
// short, instead of only the phase its status polls happen to catch.
//
// The stream is reopened from the last sequence received + 1 when it breaks
// (a coordinator that restarts) or its deadline passes, so no event is missed
// or seen twice. It ends by itself after the run's terminal event. Events wait
// in a bounded buffer until Drain(); when the buffer is full the oldest are
// dropped and counted.
//
// Thread-safe.
#ifndef DSM_SERVICES_RUNNER_RUN_EVENT_FOLLOWER_H_
#define DSM_SERVICES_RUNNER_RUN_EVENT_FOLLOWER_H_

#include <cstdint>
#include <memory>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dsm/v1/coordinator.grpc.pb.h"

namespace dsm {

struct RunEventFollowerOptions {
  // Each WatchRun call's deadline; the stream is reopened after it.
  absl::Duration stream_deadline = absl::Seconds(60);
  // Wait before reopening a stream that failed.
  absl::Duration retry_delay = absl::Milliseconds(500);
  // Events held until Drain().
  size_t max_buffered = 100000;
};

class RunEventFollower {
 public:
  // `coordinator` is not owned and must outlive this. Starts following at
  // once, from event `from_sequence` (0 or 1 = the first).
  RunEventFollower(v1::Coordinator::StubInterface* coordinator, std::string run_name, uint64_t from_sequence,
                   RunEventFollowerOptions options = {});
  ~RunEventFollower();  // Stop()

  RunEventFollower(const RunEventFollower&) = delete;
  RunEventFollower& operator=(const RunEventFollower&) = delete;

  // The events received since the last call, oldest first.
  std::vector<v1::RunEvent> Drain();
  // Waits until the run's terminal event has been received, or `timeout`.
  // True when it has.
  bool WaitForEnd(absl::Duration timeout);
  // Events dropped because the buffer was full.
  uint64_t dropped() const;
  // Stops following (cancels the open stream) and joins the thread.
  void Stop();

 private:
  void Loop();

  v1::Coordinator::StubInterface* const coordinator_;
  const std::string run_name_;
  const RunEventFollowerOptions options_;
  mutable absl::Mutex mu_;
  std::deque<v1::RunEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* open_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_RUN_EVENT_FOLLOWER_H_
