#include "common/grpc_client.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_format.h"
#include "common/auth_policy.h"
#include "common/auth_token.h"

namespace dsm {
namespace {

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(d)); }

}  // namespace

ChannelOptions ChannelOptions::From(const ServerOptions& server, const ClientOptions& client) {
  ChannelOptions o;
  o.max_message_bytes = server.max_message_bytes;
  o.keepalive_time = absl::Seconds(server.keepalive_time_seconds);
  o.keepalive_timeout = absl::Seconds(server.keepalive_timeout_seconds);
  o.max_attempts = client.max_attempts;
  o.initial_backoff = absl::Seconds(client.initial_backoff_seconds);
  o.max_backoff = absl::Seconds(client.max_backoff_seconds);
  o.backoff_multiplier = client.backoff_multiplier;
  o.security.tls = !client.tls_ca_file.empty() || !server.tls_cert_file.empty();
  o.security.server_name = client.tls_server_name;
  o.security.allow_insecure = server.allow_insecure;
  auto read = [](const char* key, const std::string& path, std::string* pem) {
    if (path.empty()) return;
    absl::StatusOr<std::string> text = ReadPemFile(key, path);
    if (text.ok()) {
      *pem = std::move(*text);
    } else {
      spdlog::error("gRPC client: {}", std::string(text.status().message()));
    }
  };
  if (o.security.tls) {
    read("client.tls_ca_file", client.tls_ca_file, &o.security.root_ca_pem);
    read("client.tls_cert_file", client.tls_cert_file, &o.security.cert_chain_pem);
    read("client.tls_key_file", client.tls_key_file, &o.security.private_key_pem);
    absl::StatusOr<LoadedToken> token = LoadBearerToken(server.token_file);
    if (token.ok()) {
      o.security.token = std::move(token->token);
    } else {
      spdlog::error("gRPC client: {}", std::string(token.status().message()));
    }
  }
  return o;
}

std::string ServiceConfigJson(const ChannelOptions& options) {
  // `"name": [{}]` applies the method config to every method of every service.
  std::string retry;
  if (options.max_attempts > 1) {
    retry = absl::StrFormat(
        R"(,"retryPolicy":{"maxAttempts":%d,"initialBackoff":"%s","maxBackoff":"%s",)"
        R"("backoffMultiplier":%g,"retryableStatusCodes":["UNAVAILABLE"]})",
        options.max_attempts, Seconds(options.initial_backoff), Seconds(options.max_backoff),
        options.backoff_multiplier);
  }
  return absl::StrFormat(
      R"({"loadBalancingConfig":[{"round_robin":{}}],"methodConfig":[{"name":[{}]%s}]})", retry);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, options.max_attempts > 1 ? 1 : 0);
  args.SetServiceConfigJSON(ServiceConfigJson(options));
  const ClientSecurity& security = options.security;
  if (security.tls && !security.server_name.empty()) {
    args.SetSslTargetNameOverride(security.server_name);
  }
  if (!security.tls && !security.allow_insecure && !IsLoopbackTarget(target)) {
    spdlog::warn("gRPC channel to {}: plaintext (no TLS) to a non-loopback address", target);
  }
  return grpc::CreateCustomChannel(target, MakeChannelCredentials(security), args);
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace dsm
