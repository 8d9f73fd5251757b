#include "common/grpc_server.h"

#include <mutex>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/auth_policy.h"
#include "common/auth_token.h"

namespace dsm {
namespace {

// The health service and the reflection plugin are process-wide switches in
// gRPC; turn them on once, before the first server is built.
void EnableProcessWideFeatures() {
  static std::once_flag once;
  std::call_once(once, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

int ToMillis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

GrpcServerOptions GrpcServerOptions::From(const ServerOptions& server, const Endpoint& endpoint) {
  GrpcServerOptions o;
  o.host = server.host;
  o.port = endpoint.port;
  o.max_message_bytes = server.max_message_bytes;
  o.keepalive_time = absl::Seconds(server.keepalive_time_seconds);
  o.keepalive_timeout = absl::Seconds(server.keepalive_timeout_seconds);
  o.drain = absl::Seconds(server.drain_seconds);
  o.shutdown_grace = absl::Seconds(server.shutdown_grace_seconds);
  o.security.allow_insecure = server.allow_insecure;
  auto read = [&o](const char* key, const std::string& path, std::string* pem) {
    if (path.empty() || !o.security_error.ok()) return;
    absl::StatusOr<std::string> text = ReadPemFile(key, path);
    if (text.ok()) {
      *pem = std::move(*text);
    } else {
      o.security_error = text.status();
    }
  };
  read("server.tls_cert_file", server.tls_cert_file, &o.security.cert_chain_pem);
  read("server.tls_key_file", server.tls_key_file, &o.security.private_key_pem);
  read("server.tls_client_ca_file", server.tls_client_ca_file, &o.security.client_ca_pem);
  if (o.security_error.ok()) {
    absl::StatusOr<LoadedToken> token = LoadBearerToken(server.token_file);
    if (token.ok()) {
      o.security.token = std::move(token->token);
    } else {
      o.security_error = token.status();
    }
  }
  return o;
}

GrpcServer::GrpcServer(GrpcServerOptions options) : options_(std::move(options)) {
  EnableProcessWideFeatures();
}

GrpcServer::~GrpcServer() {
  if (server_) {
    absl::MutexLock lock(&drain_mu_);
    if (!stopped_) {
      server_->Shutdown(std::chrono::system_clock::now());
      stopped_ = true;
    }
  }
}

void GrpcServer::RegisterService(grpc::Service* service, std::string full_name) {
  services_.push_back(service);
  service_names_.push_back(std::move(full_name));
}

absl::Status GrpcServer::Start() {
  if (server_) return absl::FailedPreconditionError("gRPC server already started");
  if (!options_.security_error.ok()) return options_.security_error;
  const SecuritySettings security = options_.security.settings();
  if (absl::Status s = CheckServerSecurity(options_.host, security); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeServerCredentials(options_.security);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  const std::string requested = absl::StrCat(options_.host, ":", options_.port);
  builder.AddListeningPort(requested, *credentials, &port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ToMillis(options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ToMillis(options_.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Accept client keep-alive pings as often as our own clients send them.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ToMillis(options_.keepalive_time) / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // gRPC binds with SO_REUSEPORT by default, which would let a second process
  // silently share our port; a port conflict must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : services_) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat(
        "cannot bind the gRPC server to ", requested,
        security.tls ? " (address in use or not local, or server.tls_cert_file / server.tls_key_file not a "
                       "matching PEM certificate and key?)"
                     : " (address in use or not local?)"));
  }
  SetServing(true);
  spdlog::info("gRPC server listening on {}", address());
  const SecurityLogLine line = DescribeServerSecurity(address(), options_.host, security);
  if (line.warn) {
    spdlog::warn("{}", line.text);
  } else {
    spdlog::info("{}", line.text);
  }
  return absl::OkStatus();
}

std::string GrpcServer::address() const { return absl::StrCat(options_.host, ":", port_); }

void GrpcServer::SetServing(bool serving) {
  if (!server_) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const std::string& name : service_names_) health->SetServingStatus(name, serving);
}

void GrpcServer::Drain() {
  absl::MutexLock lock(&drain_mu_);
  if (stopped_ || !server_) return;
  draining_ = true;
  spdlog::info("gRPC server {} draining: NOT_SERVING for {}, then up to {} for in-flight calls",
               address(), absl::FormatDuration(options_.drain),
               absl::FormatDuration(options_.shutdown_grace));
  SetServing(false);
  absl::SleepFor(options_.drain);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  stopped_ = true;
  spdlog::info("gRPC server {} stopped", address());
}

void GrpcServer::Wait() {
  if (server_) server_->Wait();
}

}  // namespace dsm
