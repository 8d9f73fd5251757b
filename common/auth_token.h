// The shared bearer token every dsm RPC carries when security is on: loading
// it (from `server.token_file`, else the DSM_AUTH_TOKEN environment variable),
// the server-side check of every call (BearerTokenChecker) and the client-side
// credentials that attach it ("authorization: Bearer <token>").
//
// The token travels only over TLS; gRPC refuses to send it on a plaintext
// channel, and the startup rule (auth_policy.h) refuses such a config.
//
// Thread-safety: BearerTokenChecker is immutable after construction and safe
// to call from any thread; the functions are thread-safe.
#ifndef DSM_COMMON_AUTH_TOKEN_H_
#define DSM_COMMON_AUTH_TOKEN_H_

#include <memory>
#include <string>
#include <utility>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsm {

// The environment variable read when `server.token_file` is empty.
inline constexpr char kAuthTokenEnvVar[] = "DSM_AUTH_TOKEN";
// Shortest token accepted (e.g. `openssl rand -hex 32` gives 64).
inline constexpr size_t kMinTokenLength = 16;
// The one-line messages of rejected calls (status UNAUTHENTICATED).
inline constexpr char kMissingTokenMessage[] = "authorization: missing bearer token";
inline constexpr char kWrongTokenMessage[] = "authorization: wrong token";

// Checks a token's text; `source` names where it came from in the error
// ("server.token_file" or "DSM_AUTH_TOKEN"), e.g.
//   server.token_file: the token is 5 characters; at least 16 are needed
// Allowed: printable ASCII without spaces (it is sent as an HTTP/2 header).
absl::Status CheckTokenText(absl::string_view token, const std::string& source);

// The token to use: the content of `token_file` (trailing newline and spaces
// removed) when it is set, else $DSM_AUTH_TOKEN when that is set and not
// empty, else "" (no token). Errors name the key and the path.
struct LoadedToken {
  std::string token;
  std::string source;  // "server.token_file", "DSM_AUTH_TOKEN" or "" (none)
};
absl::StatusOr<LoadedToken> LoadBearerToken(const std::string& token_file);

// Compares in time that depends only on `expected`'s length, not on where the
// first difference is.
bool TokensEqual(absl::string_view expected, absl::string_view given);

// Server side: rejects every call whose "authorization" metadata is not
// "Bearer <token>" with UNAUTHENTICATED and kMissingTokenMessage or
// kWrongTokenMessage, before any handler runs (health and reflection included).
// The header is consumed, so handlers never see the token.
class BearerTokenChecker final : public grpc::AuthMetadataProcessor {
 public:
  explicit BearerTokenChecker(std::string token) : token_(std::move(token)) {}

  // Cheap and non-blocking: runs inline on gRPC's thread.
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata, OutputMetadata* response_metadata) override;

 private:
  const std::string token_;
};

// Client side: call credentials that send "authorization: Bearer <token>" on
// every call of a TLS channel.
std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(const std::string& token);

}  // namespace dsm

#endif  // DSM_COMMON_AUTH_TOKEN_H_
