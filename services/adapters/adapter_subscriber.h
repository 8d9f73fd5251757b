// AdapterSubscriber: a sampler's side of adapter streaming. A thread of its
// own keeps one Learner.WatchAdapters stream open, reassembles versions,
// checks every tensor's CRC-32C and hands whole versions to a callback. The
// stream is read raw (a generic call, callback API): each chunk is parsed on
// the gRPC thread that received it, its data copied once, from the slices
// gRPC received into the tensor being assembled.
// A corrupt or out-of-order chunk drops that version and re-requests it (the
// stream is reopened naming the versions already held); a lost connection or
// a restarted learner is retried with exponential back-off, forever, until
// Stop().
//
// Thread-safe. The callback runs on the subscriber's thread.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_SUBSCRIBER_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_SUBSCRIBER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_client.h"
#include "dsm/v1/learner.pb.h"
#include "services/adapters/adapter_codec.h"

namespace dsm {

struct AdapterSubscriberOptions {
  std::string learner_address;            // host:port
  std::vector<v1::AdapterRole> roles;      // empty = every role
  std::string subscriber_id;
  ChannelOptions channel;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
};

class AdapterSubscriber {
 public:
  using OnVersion = std::function<void(AdapterVersionData)>;

  AdapterSubscriber(AdapterSubscriberOptions options, OnVersion on_version);
  ~AdapterSubscriber();  // Stop()

  void Start();
  void Stop();

  // Versions handed to the callback so far, per role.
  std::map<v1::AdapterRole, uint64_t> held() const;
  int64_t connects() const { return connects_.load(); }
  int64_t rejected_versions() const { return rejected_.load(); }

 private:
  void Run();
  // One stream until it ends; returns true if it delivered anything.
  bool StreamOnce();

  const AdapterSubscriberOptions options_;
  const OnVersion on_version_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  mutable absl::Mutex mu_;
  std::map<v1::AdapterRole, uint64_t> held_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> connects_{0};
  std::atomic<int64_t> rejected_{0};
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_SUBSCRIBER_H_
