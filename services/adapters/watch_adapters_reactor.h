// The server side of Learner.WatchAdapters, served as a raw method: a
// callback-API write reactor that streams the pre-serialised chunks of each
// version a Subscription hands it (the same ref-counted slices for every
// stream: nothing is serialised per subscriber), one write in flight at a
// time, and sleeps (no thread held) until the publisher wakes it.
#ifndef DSM_SERVICES_ADAPTERS_WATCH_ADAPTERS_REACTOR_H_
#define DSM_SERVICES_ADAPTERS_WATCH_ADAPTERS_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/adapters/adapter_publisher.h"

namespace dsm {

// The Learner callback service with WatchAdapters raw: a service derived from
// it implements
//   grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchAdapters(
//       grpc::CallbackServerContext*, const grpc::ByteBuffer* request) override;
// and the other methods as usual. The server's credentials (TLS, the bearer
// token) apply to the raw method as to every other.
using LearnerRawWatchAdaptersService =
    v1::Learner::WithRawCallbackMethod_WatchAdapters<v1::Learner::CallbackService>;

// The request of a raw WatchAdapters call; InvalidArgument if it does not parse.
absl::StatusOr<v1::WatchAdaptersRequest> ParseWatchAdaptersRequest(const grpc::ByteBuffer& request);

// Starts streaming `subscription` on the call; the reactor deletes itself
// when the call ends. `on_version_sent(version)` (may be empty) runs after the
// last chunk of each version sent in chunks was written. With a
// `bulk_endpoint` (host:port), each version is sent instead as its one bulk
// offer naming that endpoint (the bulk endpoint counts what it sends).
grpc::ServerWriteReactor<grpc::ByteBuffer>* StartWatchAdapters(
    std::shared_ptr<AdapterPublisher::Subscription> subscription,
    std::function<void(const EncodedAdapterVersion&)> on_version_sent, std::string bulk_endpoint = "");

// A WatchAdapters call that ends at once with `status` (a bad request).
grpc::ServerWriteReactor<grpc::ByteBuffer>* FailWatchAdapters(const grpc::Status& status);

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_WATCH_ADAPTERS_REACTOR_H_
