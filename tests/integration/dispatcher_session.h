// Test helper: a worker session on a LeaseDispatcher, in-process, that
// collects the grants it is sent (the test answers them with OnResult).
#ifndef DSM_TESTS_INTEGRATION_DISPATCHER_SESSION_H_
#define DSM_TESTS_INTEGRATION_DISPATCHER_SESSION_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/coordinator/lease_dispatcher.h"

namespace dsm_test {

class GrantCollector {
 public:
  // Connects a generator worker `worker_id` with `capacity`; returns its session.
  absl::StatusOr<uint64_t> Connect(dsm::LeaseDispatcher& dispatcher, const std::string& worker_id, int capacity) {
    dsm::v1::Hello hello;
    hello.set_worker_id(worker_id);
    hello.add_roles(dsm::v1::ADAPTER_ROLE_GENERATOR);
    hello.set_capacity(capacity);
    return dispatcher.Connect(
        hello,
        [this](dsm::v1::CoordinatorMessage m) {
          absl::MutexLock lock(&mu_);
          if (m.has_grant()) grants_.push_back(m.grant());
          return true;
        },
        [](const absl::Status&) {});
  }
  std::vector<dsm::v1::LeaseGrant> grants() {
    absl::MutexLock lock(&mu_);
    return grants_;
  }

 private:
  absl::Mutex mu_;
  std::vector<dsm::v1::LeaseGrant> grants_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_DISPATCHER_SESSION_H_
