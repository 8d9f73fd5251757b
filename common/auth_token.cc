#include "common/auth_token.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"

namespace dsm {

absl::Status CheckTokenText(absl::string_view token, const std::string& source) {
  if (token.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the token is ", token.size(),
                                                   " characters; at least ", kMinTokenLength, " are needed"));
  }
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (c <= 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": the token has a space or non-printable character at offset ", i,
          " (allowed: printable ASCII without spaces)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedToken> LoadBearerToken(const std::string& token_file) {
  LoadedToken loaded;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> text = ReadFileToString(token_file);
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("server.token_file: cannot read \"", token_file, "\""));
    }
    loaded.token = std::string(absl::StripTrailingAsciiWhitespace(*text));
    loaded.source = "server.token_file";
  } else if (const char* env = std::getenv(kAuthTokenEnvVar); env != nullptr && env[0] != '\0') {
    loaded.token = env;
    loaded.source = kAuthTokenEnvVar;
  } else {
    return loaded;
  }
  if (absl::Status s = CheckTokenText(loaded.token, loaded.source); !s.ok()) return s;
  return loaded;
}

bool TokensEqual(absl::string_view expected, absl::string_view given) {
  unsigned char diff = expected.size() == given.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(static_cast<unsigned char>(expected[i]) ^ g);
  }
  // Keep the compiler from turning the loop into an early exit.
  volatile unsigned char result = diff;
  return result == 0;
}

grpc::Status BearerTokenChecker::Process(const InputMetadata& auth_metadata, grpc::AuthContext*,
                                         OutputMetadata* consumed_auth_metadata, OutputMetadata*) {
  const auto it = auth_metadata.find("authorization");
  if (it == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kMissingTokenMessage);
  }
  absl::string_view value(it->second.data(), it->second.size());
  consumed_auth_metadata->insert({"authorization", std::string(value)});
  // RFC 6750: the scheme is case-insensitive.
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size() || !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kMissingTokenMessage);
  }
  value.remove_prefix(kScheme.size());
  if (!TokensEqual(token_, value)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kWrongTokenMessage);
  }
  return grpc::Status::OK;
}

std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(const std::string& token) {
  return grpc::AccessTokenCredentials(token);
}

}  // namespace dsm
