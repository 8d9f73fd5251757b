// Test helper: a Learner service that only publishes adapters (WatchAdapters
// over a real AdapterPublisher; the test calls publisher.Publish).
#ifndef DSM_TESTS_INTEGRATION_PUBLISHING_LEARNER_H_
#define DSM_TESTS_INTEGRATION_PUBLISHING_LEARNER_H_

#include <map>
#include <vector>

#include "dsm/v1/learner.grpc.pb.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/watch_adapters_reactor.h"

namespace dsm_test {

class PublishingLearner final : public dsm::v1::Learner::CallbackService {
 public:
  dsm::AdapterPublisher publisher;

  grpc::ServerWriteReactor<dsm::v1::AdapterChunk>* WatchAdapters(
      grpc::CallbackServerContext*, const dsm::v1::WatchAdaptersRequest* request) override {
    std::map<dsm::v1::AdapterRole, uint64_t> held;
    for (const auto& h : request->held()) held[h.role()] = h.version();
    std::vector<dsm::v1::AdapterRole> roles;
    for (int r : request->roles()) roles.push_back(static_cast<dsm::v1::AdapterRole>(r));
    return dsm::StartWatchAdapters(publisher.Subscribe(roles, held), nullptr);
  }
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_PUBLISHING_LEARNER_H_
