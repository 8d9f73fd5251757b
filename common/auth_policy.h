// The rule for when dsm may run without TLS or the bearer token: only when
// every gRPC address is loopback (127.0.0.0/8, ::1, localhost, unix sockets),
// or when a user says so with `server.allow_insecure: true`. A server refuses
// to start otherwise, with one line naming the key to set; the log says which
// protections are on and, when one is off, why that is allowed.
//
// The rule covers gRPC only: /metrics is plain HTTP without a token (it serves
// metric values to Prometheus) and is kept private by binding it to another
// interface with `server.metrics_host`.
//
// Pure functions; thread-safe.
#ifndef DSM_COMMON_AUTH_POLICY_H_
#define DSM_COMMON_AUTH_POLICY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dsm {

// What a server or client has switched on.
struct SecuritySettings {
  bool tls = false;             // server certificate (server) / TLS channel (client)
  bool mutual_tls = false;      // clients must present a certificate (server only)
  bool token = false;           // bearer token checked (server) / sent (client)
  bool allow_insecure = false;  // server.allow_insecure
};

// "127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost": true. Names other than
// "localhost" are not resolved, so they count as not loopback.
bool IsLoopbackHost(absl::string_view host);

// Whether every address of a gRPC target is loopback: "host:port",
// "dns:///host:port", "ipv4:a:p,b:p", "ipv6:[::1]:p"; "unix:" paths are local.
bool IsLoopbackTarget(absl::string_view target);

// The startup rule of a gRPC server bound to `host`. Errors are
// InvalidArgument and name the key to set, e.g.
//   server.tls_cert_file: required because server.host "0.0.0.0" is not a
//   loopback address (or set server.allow_insecure: true)
// A token without TLS is always an error: it is never sent in clear text.
absl::Status CheckServerSecurity(const std::string& host, const SecuritySettings& settings);

// The same rule for a client target named by config key `key` (e.g.
// "worker.learner"): a non-loopback target needs client TLS and a token.
absl::Status CheckClientTarget(const std::string& key, const std::string& target,
                               const SecuritySettings& settings);

// The one log line a server writes at start about its security, e.g.
//   gRPC server 127.0.0.1:50051: security is off (no TLS, no token) because
//   every address is loopback
// `warn` is set when protection is off on a non-loopback address.
struct SecurityLogLine {
  bool warn = false;
  std::string text;
};
SecurityLogLine DescribeServerSecurity(const std::string& address, const std::string& host,
                                       const SecuritySettings& settings);

}  // namespace dsm

#endif  // DSM_COMMON_AUTH_POLICY_H_
