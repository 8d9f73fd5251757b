// The server side of Learner.WatchAdapters: a callback-API write reactor that
// streams the chunks of each version a Subscription hands it, one write in
// flight at a time, and sleeps (no thread held) until the publisher wakes it.
#ifndef DSM_SERVICES_ADAPTERS_WATCH_ADAPTERS_REACTOR_H_
#define DSM_SERVICES_ADAPTERS_WATCH_ADAPTERS_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "services/adapters/adapter_publisher.h"

namespace dsm {

// Starts streaming `subscription` on the call; the reactor deletes itself
// when the call ends. `on_version_sent(bytes)` (may be empty) runs after the
// last chunk of each version was written.
grpc::ServerWriteReactor<v1::AdapterChunk>* StartWatchAdapters(
    std::shared_ptr<AdapterPublisher::Subscription> subscription,
    std::function<void(const EncodedAdapterVersion&)> on_version_sent);

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_WATCH_ADAPTERS_REACTOR_H_
