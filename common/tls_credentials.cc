#include "common/tls_credentials.h"

#include "absl/strings/str_cat.h"
#include "common/auth_token.h"
#include "common/file_io.h"

namespace dsm {

SecuritySettings ServerSecurity::settings() const {
  SecuritySettings s;
  s.tls = tls();
  s.mutual_tls = tls() && !client_ca_pem.empty();
  s.token = !token.empty();
  s.allow_insecure = allow_insecure;
  return s;
}

SecuritySettings ClientSecurity::settings() const {
  SecuritySettings s;
  s.tls = tls;
  s.mutual_tls = tls && !cert_chain_pem.empty();
  s.token = tls && !token.empty();
  s.allow_insecure = allow_insecure;
  return s;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerSecurity& security) {
  if (!security.tls()) {
    // CheckServerSecurity's first rule: a token needs TLS, whatever the host.
    if (absl::Status s = CheckServerSecurity("localhost", security.settings()); !s.ok()) return s;
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions options(
      security.client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = security.client_ca_pem;
  options.pem_key_cert_pairs.push_back({security.private_key_pem, security.cert_chain_pem});
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::SslServerCredentials(options);
  if (credentials == nullptr) {
    return absl::InvalidArgumentError("server.tls_cert_file: gRPC rejected the certificate or key");
  }
  if (!security.token.empty()) credentials->SetAuthMetadataProcessor(std::make_shared<BearerTokenChecker>(security.token));
  return credentials;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ClientSecurity& security) {
  if (!security.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = security.root_ca_pem;
  options.pem_cert_chain = security.cert_chain_pem;
  options.pem_private_key = security.private_key_pem;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(options);
  if (!security.token.empty()) {
    credentials = grpc::CompositeChannelCredentials(credentials, BearerTokenCredentials(security.token));
  }
  return credentials;
}

absl::StatusOr<std::string> ReadPemFile(const std::string& key, const std::string& path) {
  absl::StatusOr<std::string> read = ReadFileToString(path);
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat(key, ": cannot read \"", path, "\""));
  std::string pem = *std::move(read);
  if (pem.find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": \"", path, "\" is not PEM (no \"-----BEGIN\" line)"));
  }
  return pem;
}

}  // namespace dsm
