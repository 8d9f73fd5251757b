// ReplicaThread: a thread of its own that runs one job at a time with LibTorch single-threaded
// there (at::set_num_threads(1) on that thread; the caller's count is left as it was). Phase 0's
// data-parallel replicas (chain_warmup.h) each run their share of a step on one, the same thread
// every step, so the thread's LibTorch and oneDNN state is set up once (RunConcurrently, in
// common/, starts fresh threads per call and runs a share on the caller's thread, whose count
// is the caller's).
#ifndef DSM_TASKS_REPLICA_THREAD_H_
#define DSM_TASKS_REPLICA_THREAD_H_

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dsm {

class ReplicaThread {
 public:
  // Starts the thread; returns once its LibTorch thread count is set.
  ReplicaThread();
  // Waits for a running job, then ends the thread.
  ~ReplicaThread();
  ReplicaThread(const ReplicaThread&) = delete;
  ReplicaThread& operator=(const ReplicaThread&) = delete;

  // Hands `job` to the thread; call Wait() before the next Start(). `job` must not throw.
  void Start(std::function<void()> job);
  // Returns once the job last started has returned.
  void Wait();

 private:
  void Loop();

  absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> job_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_TASKS_REPLICA_THREAD_H_
