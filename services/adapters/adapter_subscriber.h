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
// Bulk transfers (accept_bulk, on unless the channel uses TLS): the stream
// asks for them, and a learner that offers them sends each version as one
// message naming its bulk endpoint; the subscriber's thread then receives the
// bytes over its own TCP connection (AdapterBulkClient) straight into the
// tensors. A CRC mismatch is handled as for chunks (the version is dropped and
// the stream reopened); any other bulk failure fetches that version in chunks
// on a second, short WatchAdapters call while the stream carries on.
//
// Thread-safe. The callback runs on the subscriber's thread.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_SUBSCRIBER_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_SUBSCRIBER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/grpc_client.h"
#include "dsm/v1/learner.pb.h"
#include "services/adapters/adapter_bulk_client.h"
#include "services/adapters/adapter_codec.h"

namespace dsm {

struct AdapterSubscriberOptions {
  std::string learner_address;            // host:port
  std::vector<v1::AdapterRole> roles;      // empty = every role
  std::string subscriber_id;
  ChannelOptions channel;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Ask for bulk transfers (never over a TLS channel: the bulk endpoint is
  // plain TCP).
  bool accept_bulk = true;
  AdapterBulkClientOptions bulk;
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
  // Versions received over the bulk endpoint, and in chunks (on the stream
  // or, after a failed bulk transfer, on a fallback call).
  int64_t bulk_versions() const { return bulk_versions_.load(); }
  int64_t in_band_versions() const { return in_band_versions_.load(); }
  int64_t bulk_fallbacks() const { return bulk_fallbacks_.load(); }

 private:
  void Run();
  // One stream until it ends; returns true if it delivered anything.
  bool StreamOnce();
  // The request naming what is held (of `only` if given, else of every role).
  v1::WatchAdaptersRequest Request(bool accept_bulk, std::optional<v1::AdapterRole> only)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a failed bulk transfer: the newest version of `role` above the one
  // held, in chunks, on a call of its own; nullopt when that fails too.
  std::optional<AdapterVersionData> FetchInBand(v1::AdapterRole role);
  // Hands `data` to the callback unless it is not newer than what is held.
  bool Deliver(AdapterVersionData data);

  const AdapterSubscriberOptions options_;
  const OnVersion on_version_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  mutable absl::Mutex mu_;
  std::map<v1::AdapterRole, uint64_t> held_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* fallback_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  AdapterBulkClient bulk_;  // used by the subscriber's thread (Interrupt: Stop)
  std::atomic<int64_t> connects_{0};
  std::atomic<int64_t> rejected_{0};
  std::atomic<int64_t> bulk_versions_{0};
  std::atomic<int64_t> in_band_versions_{0};
  std::atomic<int64_t> bulk_fallbacks_{0};
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_SUBSCRIBER_H_
