// A tiny HTTP/1.1 server for Prometheus scrapes (DESIGN.md §7).
//
// Serves, from one MetricsRegistry:
//   GET|HEAD /metrics  200, text/plain; version=0.0.4; charset=utf-8, Exposition()
//   GET|HEAD /healthz  200, "ok"
//   other paths        404
//   other methods      405 (with "Allow: GET, HEAD")
//   malformed request  400
//   headers > limit    431
// The query string is ignored. Every response carries "Connection: close".
//
// Design: POSIX sockets, one thread that accepts and serves each connection
// synchronously, one request per connection. A client that does not finish
// its request headers within `read_timeout` is dropped, so a stuck client
// delays other scrapes by at most that long. Anything from the network is
// handled (bad bytes, early disconnects, huge headers), never a crash.
//
// Thread safety: Start(), Stop() and port() may be called from any thread.
// Ownership: the server does not own the registry, which must outlive it.

#ifndef DSM_COMMON_METRICS_HTTP_SERVER_H_
#define DSM_COMMON_METRICS_HTTP_SERVER_H_

#include <cstddef>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics_registry.h"

namespace dsm {

struct MetricsHttpServerOptions {
  // A numeric IPv4/IPv6 address ("0.0.0.0" or "::" for all interfaces) or
  // "localhost" (127.0.0.1). Host names are not resolved. Loopback by default.
  std::string address = "127.0.0.1";
  // 0 picks an ephemeral port; see MetricsHttpServer::port().
  int port = 0;
  // Deadline for a client to send its whole request header; also bounds each
  // blocking send of the response.
  absl::Duration read_timeout = absl::Seconds(5);
  // Larger request headers get 431.
  size_t max_header_bytes = 16 * 1024;
};

class MetricsHttpServer {
 public:
  explicit MetricsHttpServer(const MetricsRegistry& registry,
                             MetricsHttpServerOptions options = MetricsHttpServerOptions());
  ~MetricsHttpServer();  // Stop()s
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds, listens and starts the serving thread. Errors:
  //   InvalidArgument: bad options, an address that is not numeric or not
  //     local; Unavailable: the address:port is in use (or another bind/listen
  //     failure); PermissionDenied: e.g. a privileged port;
  //   FailedPrecondition: already started.
  // Every message names the address:port. May be called again after Stop().
  absl::Status Start();

  // Stops serving and joins the thread: returns once any in-flight response
  // is finished or abandoned. Idempotent; a no-op if never started.
  void Stop();

  // The bound port after a successful Start() (the real one when options
  // asked for 0); 0 before.
  int port() const;

 private:
  void ServeLoop(int listen_fd, int wake_fd);
  void HandleConnection(int fd, int wake_fd);
  std::string Endpoint(int port) const;

  const MetricsRegistry& registry_;
  const MetricsHttpServerOptions options_;

  mutable absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  int listen_fd_ ABSL_GUARDED_BY(mu_) = -1;
  int wake_read_fd_ ABSL_GUARDED_BY(mu_) = -1;  // readable once Stop() begins
  int wake_write_fd_ ABSL_GUARDED_BY(mu_) = -1;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dsm

#endif  // DSM_COMMON_METRICS_HTTP_SERVER_H_
