// TLS and token settings of one gRPC server or channel (PEM text, not paths),
// and the gRPC credentials built from them: SslServerCredentials with the
// BearerTokenChecker (auth_token.h) on the server; SslCredentials composed
// with the token's call credentials on the client. Without TLS both sides use
// insecure credentials, which the startup rule (auth_policy.h) allows only on
// loopback or with server.allow_insecure.
//
// The PEM text comes from the files named in the config (ParseConfig reads
// them once; see ServerOptions / ClientOptions in config.h).
//
// Plain values and pure functions; thread-safe.
#ifndef DSM_COMMON_TLS_CREDENTIALS_H_
#define DSM_COMMON_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "common/auth_policy.h"

namespace dsm {

struct ServerSecurity {
  std::string cert_chain_pem;   // server certificate chain; empty = no TLS
  std::string private_key_pem;  // its private key
  std::string client_ca_pem;    // set = mutual TLS: clients must show a certificate this CA signed
  std::string token;            // set = every call must carry "authorization: Bearer <token>"
  bool allow_insecure = false;  // lets a non-loopback host run without TLS or token

  bool tls() const { return !cert_chain_pem.empty(); }
  SecuritySettings settings() const;
};

struct ClientSecurity {
  bool tls = false;             // false = plaintext (loopback, or server.allow_insecure)
  std::string root_ca_pem;      // CA the servers' certificates are checked against; empty = system roots
  std::string cert_chain_pem;   // client certificate for mutual TLS; empty = none
  std::string private_key_pem;  // its private key
  std::string server_name;      // name checked in the server's certificate; empty = the target's host
  std::string token;            // sent on every call (TLS only)
  bool allow_insecure = false;  // no warning for plaintext to a non-loopback target

  SecuritySettings settings() const;
};

// Server credentials for `security`: SSL (with the token check attached when a
// token is set) or insecure. A token without TLS is an error (the insecure
// credentials of gRPC cannot check metadata, and the token must not travel
// in clear text).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerSecurity& security);

// Channel credentials for `security`: SSL plus the token, or insecure.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ClientSecurity& security);

// Reads a PEM file named by config key `key`; errors name the key and path:
//   server.tls_cert_file: cannot read "/etc/dsm/server.crt"
//   server.tls_cert_file: "/etc/dsm/server.crt" is not PEM (no "-----BEGIN" line)
absl::StatusOr<std::string> ReadPemFile(const std::string& key, const std::string& path);

}  // namespace dsm

#endif  // DSM_COMMON_TLS_CREDENTIALS_H_
