// Client side of every dsm RPC: channels with keep-alive, message-size limits,
// round-robin load balancing over all addresses a name resolves to (so scorer
// replicas share the load), gRPC's own retry policy on UNAVAILABLE, and TLS
// plus the bearer token when the config turns them on; and contexts that
// always carry a deadline.
#ifndef DSM_COMMON_GRPC_CLIENT_H_
#define DSM_COMMON_GRPC_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "common/config.h"
#include "common/tls_credentials.h"

namespace dsm {

struct ChannelOptions {
  int64_t max_message_bytes = 16 << 20;
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  int max_attempts = 4;  // 1 = no retries; gRPC allows at most 5
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2;
  // TLS and token. Default: plaintext, no token (for loopback).
  ClientSecurity security;

  // Everything from the config, the security files read now. A file that
  // cannot be read is logged and left out, which fails closed: TLS stays on
  // (the handshake fails) and a missing token is rejected by the server.
  static ChannelOptions From(const ServerOptions& server, const ClientOptions& client);
};

// The gRPC service config (JSON) that carries the load-balancing and retry
// policy of `options`. Exposed for tests.
std::string ServiceConfigJson(const ChannelOptions& options);

// A channel to `target` ("host:port", "dns:///name:port", "ipv4:a:p,b:p").
// Plaintext to a non-loopback target is logged as a warning unless
// `options.security.allow_insecure`.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, const ChannelOptions& options);

// Sets `timeout` from now as the call's deadline.
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout);

}  // namespace dsm

#endif  // DSM_COMMON_GRPC_CLIENT_H_
