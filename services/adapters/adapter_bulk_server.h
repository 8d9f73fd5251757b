// AdapterBulkServer: the learner's bulk endpoint. A plain TCP server that
// sends the tensor bytes of adapter versions the AdapterPublisher holds to
// subscribers that were offered them on WatchAdapters (AdapterBulkOffer;
// wire in adapter_bulk_protocol.h). It sends the bytes where they lie in the
// publisher's serialised chunks (no copy), with one sendmsg(2) over all of
// them, so the transfer costs about what a plain TCP copy does.
//
// No TLS and no token: the learner offers bulk transfers only when its gRPC
// server runs without TLS (learner.bulk_transfer). A request must name a
// version's random ticket, which only the WatchAdapters stream tells.
//
// Bounded: at most `max_connections` connections (one thread each; the next
// is answered BUSY and closed), each transfer must finish within
// `transfer_timeout`, an idle connection is closed after `idle_timeout`;
// nothing is buffered per connection.
//
// Thread-safe. The publisher must outlive the server.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_BULK_SERVER_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_BULK_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "services/adapters/adapter_publisher.h"

namespace dsm {

struct AdapterBulkServerOptions {
  std::string host = "127.0.0.1";  // address to bind
  int port = 0;                    // 0 = an ephemeral port; see port()
  int max_connections = 64;
  absl::Duration transfer_timeout = absl::Seconds(60);
  absl::Duration idle_timeout = absl::Minutes(10);
};

class AdapterBulkServer {
 public:
  // `on_version_sent(version)` (may be empty) runs after each whole version
  // was sent, on the connection's thread.
  AdapterBulkServer(const AdapterPublisher* publisher, AdapterBulkServerOptions options,
                    std::function<void(const EncodedAdapterVersion&)> on_version_sent = nullptr);
  ~AdapterBulkServer();  // Stop()
  AdapterBulkServer(const AdapterBulkServer&) = delete;
  AdapterBulkServer& operator=(const AdapterBulkServer&) = delete;

  // Binds and starts accepting; fails naming the address when it cannot bind.
  absl::Status Start();
  // Closes the listener and every connection; returns when all threads ended.
  void Stop();

  int port() const { return port_; }
  int64_t versions_sent() const { return versions_sent_.load(); }

  // For tests: each of the next `n` transfers has one byte of its first
  // tensor flipped on the wire.
  void CorruptNextTransfers(int n) { corrupt_.store(n); }

 private:
  struct Connection {
    int fd = -1;
    bool done = false;
    std::thread thread;
  };
  void AcceptLoop();
  void Serve(Connection* connection);
  // Answers one request; false when the connection must close.
  bool Answer(int fd);
  void ReapDone() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AdapterPublisher* const publisher_;
  const AdapterBulkServerOptions options_;
  const std::function<void(const EncodedAdapterVersion&)> on_version_sent_;
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  absl::Mutex mu_;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> versions_sent_{0};
  std::atomic<int> corrupt_{0};
};

// The learner's bulk endpoint as `config` asks for it, started on
// server.host and learner.bulk_port; null (and nothing started) when
// learner.bulk_transfer is off or the gRPC server uses TLS
// (server.tls_cert_file): the endpoint has neither TLS nor the token.
absl::StatusOr<std::unique_ptr<AdapterBulkServer>> StartAdapterBulkServer(
    const DsmConfig& config, const AdapterPublisher* publisher,
    std::function<void(const EncodedAdapterVersion&)> on_version_sent);

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_BULK_SERVER_H_
