// TLS and the bearer token on a real GrpcServer (port 0) that hosts every
// dsm.v1 service (the generated base classes: each method answers
// UNIMPLEMENTED once a call gets through) plus health and reflection. Every
// method of every service is called without the token, with a wrong one, with
// the right one, and over plaintext; certificates come from `openssl`.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "common/auth_token.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/sampler.grpc.pb.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/log_capture.h"
#include "tests/integration/test_certs.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "s3cret-token-0123456789abcdef";

// A Sampler that answers GetServerInfo and records whether the handler saw
// an "authorization" header (it must not: the checker consumes it).
class EchoSampler final : public v1::Sampler::CallbackService {
 public:
  std::atomic<bool> saw_authorization{false};
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context, const v1::GetServerInfoRequest*,
                                          v1::ServerInfo* info) override {
    if (context->client_metadata().count("authorization") > 0) saw_authorization = true;
    info->set_service("dsm.v1.Sampler");
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Every service a dsm process can host, unimplemented.
struct AllServices {
  v1::Coordinator::CallbackService coordinator;
  // WatchAdapters raw, as LearnerService serves it (LearnerRawWatchAdaptersService).
  v1::Learner::WithRawCallbackMethod_WatchAdapters<v1::Learner::CallbackService> learner;
  v1::Verifier::CallbackService verifier;
  v1::MetaVerifier::CallbackService meta_verifier;
  EchoSampler sampler;

  void RegisterOn(GrpcServer* server) {
    server->RegisterService(&coordinator, v1::Coordinator::service_full_name());
    server->RegisterService(&learner, v1::Learner::service_full_name());
    server->RegisterService(&verifier, v1::Verifier::service_full_name());
    server->RegisterService(&meta_verifier, v1::MetaVerifier::service_full_name());
    server->RegisterService(&sampler, v1::Sampler::service_full_name());
  }
};

// "/dsm.v1.Learner/SubmitGroups", ... for every method of every dsm.v1
// service, then health's Check and reflection's stream.
std::vector<std::string> EveryMethod() {
  std::vector<std::string> methods;
  for (const char* service : {v1::Coordinator::service_full_name(), v1::Learner::service_full_name(),
                              v1::Sampler::service_full_name(), v1::Verifier::service_full_name(),
                              v1::MetaVerifier::service_full_name()}) {
    const google::protobuf::ServiceDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    EXPECT_NE(descriptor, nullptr) << service;
    if (descriptor == nullptr) continue;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      methods.push_back("/" + descriptor->full_name() + "/" + descriptor->method(i)->name());
    }
  }
  methods.push_back("/grpc.health.v1.Health/Check");
  methods.push_back("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  return methods;
}

// Calls `method` with one empty request message, whatever its kind, and
// returns the final status.
grpc::Status CallMethod(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&context, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](intptr_t id) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, reinterpret_cast<void*>(id));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (step(1)) {
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    call->Write(request, reinterpret_cast<void*>(2));
    if (step(2)) {
      call->WritesDone(reinterpret_cast<void*>(3));
      step(3);
    }
    grpc::ByteBuffer reply;
    call->Read(&reply, reinterpret_cast<void*>(4));
    step(4);
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  return status;
}

class GrpcSecurity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new dsm_test::TestCerts;
    ASSERT_TRUE(dsm_test::MakeTestCerts(certs_)) << "openssl failed; see " << certs_->dir << "/openssl.log";
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(certs_->dir, ignored);
    delete certs_;
    certs_ = nullptr;
  }

  static std::string Pem(const std::string& path) { return dsm_test::TestCerts::Read(path); }

  static ServerSecurity TlsAndToken() {
    ServerSecurity s;
    s.cert_chain_pem = Pem(certs_->server_crt);
    s.private_key_pem = Pem(certs_->server_key);
    s.token = kToken;
    return s;
  }
  static ClientSecurity ClientTls(const std::string& token) {
    ClientSecurity c;
    c.tls = true;
    c.root_ca_pem = Pem(certs_->ca_crt);
    c.token = token;
    return c;
  }

  // Starts a server with every service on 127.0.0.1:0.
  void Start(ServerSecurity security) {
    GrpcServerOptions options;
    options.host = "127.0.0.1";
    options.drain = absl::ZeroDuration();
    options.shutdown_grace = absl::Milliseconds(200);
    options.security = std::move(security);
    server_ = std::make_unique<GrpcServer>(options);
    services_.RegisterOn(server_.get());
    ASSERT_TRUE(server_->Start().ok());
  }

  std::shared_ptr<grpc::Channel> Channel(ClientSecurity security) {
    ChannelOptions options;
    options.max_attempts = 1;  // a handshake failure is reported, not retried
    options.security = std::move(security);
    return MakeChannel(server_->address(), options);
  }

  static dsm_test::TestCerts* certs_;
  AllServices services_;
  std::unique_ptr<GrpcServer> server_;
};

dsm_test::TestCerts* GrpcSecurity::certs_ = nullptr;

TEST_F(GrpcSecurity, CallWithoutTokenIsUnauthenticatedOnEveryMethod) {
  Start(TlsAndToken());
  auto channel = Channel(ClientTls(""));
  const std::vector<std::string> methods = EveryMethod();
  ASSERT_GE(methods.size(), 21u);
  for (const std::string& method : methods) {
    const grpc::Status status = CallMethod(channel, method);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_EQ(status.error_message(), "authorization: missing bearer token") << method;
  }
}

TEST_F(GrpcSecurity, CallWithWrongTokenIsUnauthenticatedOnEveryMethod) {
  Start(TlsAndToken());
  auto channel = Channel(ClientTls("s3cret-token-0123456789abcdeX"));  // one character off
  for (const std::string& method : EveryMethod()) {
    const grpc::Status status = CallMethod(channel, method);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_EQ(status.error_message(), "authorization: wrong token") << method;
  }
  auto shorter = Channel(ClientTls("s3cret-token"));
  EXPECT_EQ(CallMethod(shorter, "/dsm.v1.Learner/GetState").error_message(), "authorization: wrong token");
}

TEST_F(GrpcSecurity, CallWithRightTokenReachesEveryService) {
  Start(TlsAndToken());
  auto channel = Channel(ClientTls(kToken));
  for (const std::string& method : EveryMethod()) {
    const grpc::Status status = CallMethod(channel, method);
    if (method.rfind("/dsm.v1.", 0) == 0 && method != "/dsm.v1.Sampler/GetServerInfo") {
      // Through the check and into the (unimplemented) handler.
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << method << ": " << status.error_message();
    } else {
      EXPECT_TRUE(status.ok()) << method << ": " << status.error_message();
    }
  }
  EXPECT_FALSE(services_.sampler.saw_authorization.load()) << "the token reached a handler";
}

TEST_F(GrpcSecurity, AuthorizationThatIsNotBearerCountsAsMissing) {
  Start(TlsAndToken());
  auto stub = v1::Sampler::NewStub(Channel(ClientTls("")));
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  context.AddMetadata("authorization", std::string("Basic ") + kToken);
  v1::ServerInfo info;
  const grpc::Status status = stub->GetServerInfo(&context, {}, &info);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "authorization: missing bearer token");
}

// Documented in README "Security": health is not exempt, so probes
// (`dsm health --config`) send the token too.
TEST_F(GrpcSecurity, HealthNeedsTheTokenToo) {
  Start(TlsAndToken());
  auto check = [](const std::shared_ptr<grpc::Channel>& channel, grpc::health::v1::HealthCheckResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("dsm.v1.Learner");
    return grpc::health::v1::Health::NewStub(channel)->Check(&context, request, response);
  };
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status without = check(Channel(ClientTls("")), &response);
  EXPECT_EQ(without.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const grpc::Status with = check(Channel(ClientTls(kToken)), &response);
  ASSERT_TRUE(with.ok()) << with.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(GrpcSecurity, PlaintextClientFailsAgainstTlsOnEveryService) {
  Start(TlsAndToken());
  ClientSecurity plaintext;  // no TLS (and so no token either)
  auto channel = Channel(plaintext);
  for (const std::string& method : EveryMethod()) {
    const grpc::Status status = CallMethod(channel, method);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << method << ": " << status.error_message();
  }
}

TEST_F(GrpcSecurity, ClientThatDoesNotTrustTheServerCertificateFailsHandshake) {
  Start(TlsAndToken());
  ClientSecurity client = ClientTls(kToken);
  client.root_ca_pem = Pem(certs_->other_ca_crt);
  const grpc::Status status = CallMethod(Channel(client), "/dsm.v1.Sampler/GetServerInfo");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(GrpcSecurity, ServerNameOverrideChecksThatName) {
  Start(TlsAndToken());
  ClientSecurity client = ClientTls(kToken);
  client.server_name = "localhost";  // in the certificate
  EXPECT_TRUE(CallMethod(Channel(client), "/dsm.v1.Sampler/GetServerInfo").ok());
  client.server_name = "learner.example";  // not in it
  EXPECT_EQ(CallMethod(Channel(client), "/dsm.v1.Sampler/GetServerInfo").error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcSecurity, MutualTlsNeedsAClientCertificateFromTheCa) {
  ServerSecurity server = TlsAndToken();
  server.client_ca_pem = Pem(certs_->ca_crt);
  Start(server);
  const std::string method = "/dsm.v1.Sampler/GetServerInfo";

  const grpc::Status no_cert = CallMethod(Channel(ClientTls(kToken)), method);
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAVAILABLE) << no_cert.error_message();

  ClientSecurity rogue = ClientTls(kToken);
  rogue.cert_chain_pem = Pem(certs_->rogue_client_crt);
  rogue.private_key_pem = Pem(certs_->rogue_client_key);
  const grpc::Status other_ca = CallMethod(Channel(rogue), method);
  EXPECT_EQ(other_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << other_ca.error_message();

  ClientSecurity good = ClientTls(kToken);
  good.cert_chain_pem = Pem(certs_->client_crt);
  good.private_key_pem = Pem(certs_->client_key);
  const grpc::Status ok = CallMethod(Channel(good), method);
  EXPECT_TRUE(ok.ok()) << ok.error_message();

  // A certificate does not replace the token.
  good.token = "";
  EXPECT_EQ(CallMethod(Channel(good), method).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// The config keys reach servers and channels through the From() conversions
// the services already use, so no call site changes.
TEST_F(GrpcSecurity, ConfigTurnsOnTlsAndTokenThroughFrom) {
  const std::string token_file = certs_->dir + "/token";
  {
    std::ofstream out(token_file);
    out << kToken << "\n";
  }
  const std::string yaml = "run: {name: t}\n"
                           "server: {host: 127.0.0.1, tls_cert_file: " + certs_->server_crt +
                           ", tls_key_file: " + certs_->server_key + ", tls_client_ca_file: " + certs_->ca_crt +
                           ", token_file: " + token_file + "}\n"
                           "client: {tls_ca_file: " + certs_->ca_crt + ", tls_cert_file: " + certs_->client_crt +
                           ", tls_key_file: " + certs_->client_key + "}\n";
  absl::StatusOr<DsmConfig> config = ParseConfig(yaml, "tls.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  GrpcServerOptions server_options = GrpcServerOptions::From(config->server, Endpoint{0, 0});
  ASSERT_TRUE(server_options.security_error.ok()) << server_options.security_error;
  EXPECT_TRUE(server_options.security.tls());
  EXPECT_EQ(server_options.security.token, kToken);
  GrpcServer server(server_options);
  services_.RegisterOn(&server);
  ASSERT_TRUE(server.Start().ok());

  ChannelOptions channel_options = ChannelOptions::From(config->server, config->client);
  EXPECT_TRUE(channel_options.security.tls);
  EXPECT_EQ(channel_options.security.token, kToken);
  channel_options.max_attempts = 1;
  auto stub = v1::Sampler::NewStub(MakeChannel(server.address(), channel_options));
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  v1::ServerInfo info;
  const grpc::Status status = stub->GetServerInfo(&context, {}, &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.service(), "dsm.v1.Sampler");

  // The same config without the client's certificate: mutual TLS refuses it.
  ChannelOptions no_cert = channel_options;
  no_cert.security.cert_chain_pem.clear();
  no_cert.security.private_key_pem.clear();
  EXPECT_EQ(CallMethod(MakeChannel(server.address(), no_cert), "/dsm.v1.Sampler/GetServerInfo").error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcSecurity, UnreadableFileNamedByTheConfigStopsTheServer) {
  ServerOptions server;
  server.tls_cert_file = certs_->dir + "/missing.crt";
  server.tls_key_file = certs_->server_key;
  GrpcServerOptions options = GrpcServerOptions::From(server, Endpoint{0, 0});
  GrpcServer grpc_server(options);
  const absl::Status status = grpc_server.Start();
  EXPECT_EQ(status.message(), "server.tls_cert_file: cannot read \"" + certs_->dir + "/missing.crt\"");
}

TEST(GrpcSecurityRule, NonLoopbackHostWithoutTlsDoesNotStart) {
  GrpcServerOptions options;
  options.host = "0.0.0.0";
  GrpcServer server(options);
  const absl::Status status = server.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "server.tls_cert_file: required because server.host \"0.0.0.0\" is not a loopback address (or set "
            "server.allow_insecure: true)");
}

TEST_F(GrpcSecurity, NonLoopbackHostWithTlsButNoTokenDoesNotStart) {
  GrpcServerOptions options;
  options.host = "0.0.0.0";
  options.security = TlsAndToken();
  options.security.token.clear();
  GrpcServer server(options);
  EXPECT_EQ(server.Start().message(),
            "server.token_file: required because server.host \"0.0.0.0\" is not a loopback address (or set "
            "DSM_AUTH_TOKEN, or server.allow_insecure: true)");
}

TEST(GrpcSecurityRule, TokenWithoutTlsDoesNotStartEvenOnLoopback) {
  GrpcServerOptions options;
  options.security.token = kToken;
  GrpcServer server(options);
  EXPECT_EQ(server.Start().message(),
            "server.token_file: a bearer token (server.token_file or DSM_AUTH_TOKEN) needs TLS: set "
            "server.tls_cert_file and server.tls_key_file (the token is never sent in clear text)");
}

using dsm_test::LogCapture;

TEST(GrpcSecurityRule, LoopbackWithoutSecurityStartsAndSaysSo) {
  LogCapture log;
  GrpcServerOptions options;
  GrpcServer server(options);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_THAT(log.text(), HasSubstr("info gRPC server " + server.address() +
                                    ": security is off (no TLS, no token) because every address is loopback\n"));
}

TEST(GrpcSecurityRule, AllowInsecureStartsOnEveryInterfaceWithAWarning) {
  LogCapture log;
  GrpcServerOptions options;
  options.host = "0.0.0.0";
  options.security.allow_insecure = true;
  GrpcServer server(options);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_THAT(log.text(), HasSubstr("warning gRPC server " + server.address() +
                                    ": security is off (no TLS, no token) because server.allow_insecure is true\n"));
}

TEST_F(GrpcSecurity, TlsAndTokenStartLogsWhatIsOn) {
  LogCapture log;
  Start(TlsAndToken());
  EXPECT_THAT(log.text(),
              HasSubstr("info gRPC server " + server_->address() + ": TLS on, bearer token required on every call\n"));
}

}  // namespace
}  // namespace dsm
