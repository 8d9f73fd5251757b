// GrpcServer: the gRPC server every dsm service runs in. It adds what each
// service needs and none should write again: grpc.health.v1 health checking,
// server reflection, keep-alive, message-size limits, TLS and the bearer-token
// check on every call (health and reflection included; see auth_policy.h for
// when they may be off), and a graceful stop (health NOT_SERVING first, so
// load balancers stop routing; then in-flight calls get a grace period; then
// the server stops).
//
// Thread-safety: RegisterService/Start from one thread; SetServing, Drain and
// Wait from any thread. Services registered must outlive the server.
#ifndef DSM_COMMON_GRPC_SERVER_H_
#define DSM_COMMON_GRPC_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/tls_credentials.h"

namespace dsm {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 = an ephemeral port; see GrpcServer::port()
  int64_t max_message_bytes = 16 << 20;
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  absl::Duration drain = absl::Seconds(2);           // NOT_SERVING before stopping
  absl::Duration shutdown_grace = absl::Seconds(10);  // for in-flight calls
  // TLS, token, allow_insecure. Default: none, which Start() allows only on a
  // loopback host.
  ServerSecurity security;
  // Set by From() when a file named by the config cannot be read (or the
  // token is invalid); Start() fails with it, so a server never falls back to
  // running without the security its config asked for.
  absl::Status security_error;

  // Everything from the config, the security files read now.
  static GrpcServerOptions From(const ServerOptions& server, const Endpoint& endpoint);
};

class GrpcServer {
 public:
  explicit GrpcServer(GrpcServerOptions options);
  ~GrpcServer();  // stops at once if still running
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Before Start(). `service` (sync, async or callback) is not owned;
  // `full_name` ("dsm.v1.Learner", the generated `service_full_name()`) is the
  // name its health status is reported under.
  void RegisterService(grpc::Service* service, std::string full_name);

  // Binds and starts serving; every registered service reports SERVING.
  // Fails with a message naming the address when it cannot bind, and with
  // InvalidArgument naming the key when the security rule (auth_policy.h)
  // forbids the settings. Logs one line saying which protections are on.
  absl::Status Start();

  // The bound port (valid after Start()).
  int port() const { return port_; }
  // "host:port" as bound.
  std::string address() const;

  // Sets the health status of the server and of every registered service.
  void SetServing(bool serving);

  // Graceful stop: NOT_SERVING, wait `drain` (new calls are still served),
  // then stop accepting and give in-flight calls `shutdown_grace` before they
  // are cancelled. Idempotent; returns when the server has stopped.
  void Drain();
  bool draining() const { return draining_.load(); }

  // Blocks until the server has stopped.
  void Wait();

  // Full names of the registered services ("dsm.v1.Learner").
  const std::vector<std::string>& service_names() const { return service_names_; }

 private:
  GrpcServerOptions options_;
  std::vector<grpc::Service*> services_;
  std::vector<std::string> service_names_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> draining_{false};
  absl::Mutex drain_mu_;
  bool stopped_ ABSL_GUARDED_BY(drain_mu_) = false;
};

}  // namespace dsm

#endif  // DSM_COMMON_GRPC_SERVER_H_
