// Test helper: a Learner service that only publishes adapters (WatchAdapters
// over a real AdapterPublisher, served raw as `dsm serve learner` serves it;
// the test calls publisher.Publish).
#ifndef DSM_TESTS_INTEGRATION_PUBLISHING_LEARNER_H_
#define DSM_TESTS_INTEGRATION_PUBLISHING_LEARNER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status_conversion.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/watch_adapters_reactor.h"

namespace dsm_test {

// Streams from `publisher` every role the raw request names (all if none),
// skipping the versions it says are held; no other checks.
// `on_version_sent` as for dsm::StartWatchAdapters; versions are offered at
// `bulk_endpoint` (if set) to a request that accepts bulk transfers, as
// LearnerService does.
inline grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchAdaptersFrom(
    dsm::AdapterPublisher* publisher, const grpc::ByteBuffer& raw_request,
    std::function<void(const dsm::EncodedAdapterVersion&)> on_version_sent = nullptr,
    const std::string& bulk_endpoint = "") {
  absl::StatusOr<dsm::v1::WatchAdaptersRequest> request = dsm::ParseWatchAdaptersRequest(raw_request);
  if (!request.ok()) return dsm::FailWatchAdapters(dsm::ToGrpcStatus(request.status()));
  std::map<dsm::v1::AdapterRole, uint64_t> held;
  for (const auto& h : request->held()) held[h.role()] = h.version();
  std::vector<dsm::v1::AdapterRole> roles;
  for (int r : request->roles()) roles.push_back(static_cast<dsm::v1::AdapterRole>(r));
  return dsm::StartWatchAdapters(publisher->Subscribe(roles, held), std::move(on_version_sent),
                                 request->accept_bulk() ? bulk_endpoint : "");
}

class PublishingLearner final : public dsm::LearnerRawWatchAdaptersService {
 public:
  dsm::AdapterPublisher publisher;
  std::string bulk_endpoint;  // host:port of a bulk endpoint serving `publisher`; empty = chunks only

  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchAdapters(grpc::CallbackServerContext*,
                                                            const grpc::ByteBuffer* request) override {
    return WatchAdaptersFrom(&publisher, *request, nullptr, bulk_endpoint);
  }
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_PUBLISHING_LEARNER_H_
