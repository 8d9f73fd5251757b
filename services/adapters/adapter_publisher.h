// AdapterPublisher: the learner's side of adapter streaming. Each published
// version is cut into chunks and serialised once, into ref-counted gRPC
// buffers that every stream writes as they are; every subscriber (one
// WatchAdapters stream)
// is then sent, per role it wants, the NEWEST version it does not hold yet:
// a late or slow subscriber skips straight to the newest version, and
// versions of a role always arrive in increasing order.
//
// Each version also carries what its bulk transfer needs (the bulk offer, a
// random ticket, and views of its tensor bytes inside the serialised chunks:
// the bulk endpoint sends those same bytes, no copy); the newest version of
// each role and the one before it can be looked up by ticket.
//
// Thread-safe. Subscriptions are woken through a callback, called without any
// of the publisher's locks held.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_PUBLISHER_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_PUBLISHER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "services/adapters/adapter_codec.h"

namespace dsm {

struct EncodedAdapterVersion {
  v1::AdapterRole role;
  uint64_t version;
  // The serialised AdapterChunks, in order. Each is one slice shared (never
  // copied) by every write of it.
  std::vector<grpc::ByteBuffer> chunks;
  uint64_t bytes = 0;  // tensor bytes of the whole version
  // The bulk path: 16 random bytes naming this version on the bulk endpoint;
  // the version's one message when offered for bulk transfer (every field
  // but bulk.endpoint, which depends on the stream); and the tensor bytes
  // concatenated in order, as views into `chunks` (valid while this lives).
  std::string ticket;
  v1::AdapterChunk bulk_offer;
  std::vector<absl::string_view> payload;
};

// A buffer of one slice that owns `bytes` (no copy).
grpc::ByteBuffer OwningByteBuffer(std::string bytes);

class AdapterPublisher {
 public:
  class Subscription {
   public:
    // The next version to send (the newest of a wanted role that is newer than
    // what was held or sent), or null when there is none right now.
    std::shared_ptr<const EncodedAdapterVersion> Next();
    // `wake` runs whenever Next() may have something new. Set once, before
    // the first Next().
    void SetWakeup(std::function<void()> wake);
    // Stops wake-ups (the stream ended).
    void Cancel();

   private:
    friend class AdapterPublisher;
    Subscription(AdapterPublisher* publisher, std::vector<v1::AdapterRole> roles,
                 std::map<v1::AdapterRole, uint64_t> held);
    void Wake();
    bool Wants(v1::AdapterRole role) const;

    AdapterPublisher* publisher_;
    const std::vector<v1::AdapterRole> roles_;  // empty = all
    absl::Mutex mu_;
    std::map<v1::AdapterRole, uint64_t> sent_ ABSL_GUARDED_BY(mu_);
    std::function<void()> wake_ ABSL_GUARDED_BY(mu_);
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  };

  AdapterPublisher() = default;

  // Encodes and publishes `data`; its version must be above the role's last.
  absl::Status Publish(const AdapterVersionData& data, std::size_t chunk_bytes = kMaxAdapterChunkBytes);

  // A subscription for `roles` (empty = every role) by a subscriber that
  // already holds `held` (role -> version).
  std::shared_ptr<Subscription> Subscribe(std::vector<v1::AdapterRole> roles,
                                          std::map<v1::AdapterRole, uint64_t> held);

  // Newest published version of `role` (0 if none).
  uint64_t latest_version(v1::AdapterRole role) const;
  std::shared_ptr<const EncodedAdapterVersion> latest(v1::AdapterRole role) const;
  // The version of `role` named `version` and `ticket`, if it is the newest
  // or the one before it; null otherwise.
  std::shared_ptr<const EncodedAdapterVersion> FindForBulk(v1::AdapterRole role, uint64_t version,
                                                           absl::string_view ticket) const;
  int subscribers() const;

 private:
  void Remove(Subscription* subscription);

  mutable absl::Mutex mu_;
  std::map<v1::AdapterRole, std::shared_ptr<const EncodedAdapterVersion>> latest_ ABSL_GUARDED_BY(mu_);
  // The version before the newest, per role: a subscriber offered it just
  // before the next was published can still fetch it.
  std::map<v1::AdapterRole, std::shared_ptr<const EncodedAdapterVersion>> previous_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<Subscription>> subscriptions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_PUBLISHER_H_
