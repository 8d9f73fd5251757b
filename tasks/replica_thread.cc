#include "tasks/replica_thread.h"

#include <ATen/Parallel.h>

#include <utility>

namespace dsm {

ReplicaThread::ReplicaThread() : thread_([this] { Loop(); }) {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&ready_));
}

ReplicaThread::~ReplicaThread() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void ReplicaThread::Start(std::function<void()> job) {
  absl::MutexLock lock(&mu_);
  job_ = std::move(job);
  done_ = false;
}

void ReplicaThread::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
}

void ReplicaThread::Loop() {
  // A thread's first ATen call sets its count from the last at::set_num_threads anywhere:
  // make that call first, then set this thread's own.
  (void)at::get_num_threads();
  at::set_num_threads(1);
  {
    absl::MutexLock lock(&mu_);
    ready_ = true;
  }
  while (true) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this] { return stopping_ || job_ != nullptr; };
      mu_.Await(absl::Condition(&has_work));
      if (job_ == nullptr) return;
      job = std::move(job_);
      job_ = nullptr;
    }
    job();
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
}

}  // namespace dsm
