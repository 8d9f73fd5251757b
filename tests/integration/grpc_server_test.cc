// A real GrpcServer on port 0 with real clients: health, reflection, drain,
// keep-alive/limits plumbing and the client retry policy.
#include "common/grpc_server.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/generic/generic_stub.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "common/grpc_client.h"
#include "dsm/v1/sampler.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dsm {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;

// A Sampler whose GetServerInfo fails with UNAVAILABLE `failures` times, and
// can be made to block until released (to hold a call in flight).
class FakeSampler final : public v1::Sampler::CallbackService {
 public:
  std::atomic<int> failures{0};
  std::atomic<int> calls{0};
  std::atomic<bool> block{false};
  absl::Notification entered;
  absl::Notification release;

  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest*,
                                          v1::ServerInfo* info) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    ++calls;
    if (failures.load() > 0) {
      --failures;
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "warming up"));
      return reactor;
    }
    if (block.load()) {
      std::thread([this, reactor, info] {
        entered.Notify();
        release.WaitForNotification();
        info->set_service("dsm.v1.Sampler");
        reactor->Finish(grpc::Status::OK);
      }).detach();
      return reactor;
    }
    info->set_service("dsm.v1.Sampler");
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

GrpcServerOptions TestOptions() {
  GrpcServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.drain = absl::Milliseconds(800);
  options.shutdown_grace = absl::Seconds(5);
  return options;
}

HealthCheckResponse::ServingStatus CheckHealth(const std::string& address, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(address, ChannelOptions{}));
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(5));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.status();
}

// Lists services through grpc.reflection.v1alpha with a generic stub, decoding
// the reply with the protobuf wire format alone (no reflection stubs needed).
std::vector<std::string> ListServicesByReflection(const std::string& address) {
  grpc::GenericStub stub(MakeChannel(address, ChannelOptions{}));
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(5));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](int id) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, reinterpret_cast<void*>(static_cast<intptr_t>(id)));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  EXPECT_TRUE(step(1));
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  const std::string request_bytes("\x3a\x00", 2);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  EXPECT_TRUE(step(2));
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  EXPECT_TRUE(step(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(reply.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::vector<std::string> names;
  google::protobuf::UnknownFieldSet response;
  EXPECT_TRUE(response.ParseFromString(bytes));
  for (int i = 0; i < response.field_count(); ++i) {
    if (response.field(i).number() != 6) continue;  // list_services_response
    google::protobuf::UnknownFieldSet list;
    EXPECT_TRUE(list.ParseFromString(response.field(i).length_delimited()));
    for (int j = 0; j < list.field_count(); ++j) {
      google::protobuf::UnknownFieldSet service;
      EXPECT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
      for (int k = 0; k < service.field_count(); ++k) {
        if (service.field(k).number() == 1) names.push_back(service.field(k).length_delimited());
      }
    }
  }
  return names;
}

TEST(GrpcServer, BindsPortZeroAndReportsServing) {
  FakeSampler sampler;
  GrpcServer server(TestOptions());
  server.RegisterService(&sampler, v1::Sampler::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(CheckHealth(server.address(), ""), HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(server.address(), "dsm.v1.Sampler"), HealthCheckResponse::SERVING);
  server.Drain();
}

TEST(GrpcServer, ReflectionListsTheServices) {
  FakeSampler sampler;
  GrpcServer server(TestOptions());
  server.RegisterService(&sampler, v1::Sampler::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  const std::vector<std::string> names = ListServicesByReflection(server.address());
  EXPECT_THAT(names, Contains("dsm.v1.Sampler"));
  EXPECT_THAT(names, Contains("grpc.health.v1.Health"));
  EXPECT_THAT(names, Contains("grpc.reflection.v1alpha.ServerReflection"));
  server.Drain();
}

TEST(GrpcServer, NotServingDuringDrainWhileInFlightCallsFinish) {
  FakeSampler sampler;
  sampler.block = true;
  GrpcServerOptions options = TestOptions();
  options.drain = absl::Seconds(2);
  GrpcServer server(options);
  server.RegisterService(&sampler, v1::Sampler::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  const std::string address = server.address();

  // A call in flight before the drain starts.
  auto stub = v1::Sampler::NewStub(MakeChannel(address, ChannelOptions{}));
  grpc::Status in_flight_status;
  v1::ServerInfo in_flight_info;
  std::thread in_flight([&] {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(20));
    in_flight_status = stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &in_flight_info);
  });
  sampler.entered.WaitForNotification();

  std::thread drainer([&] { server.Drain(); });
  // While draining: the server still answers, but says NOT_SERVING.
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (!server.draining() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(server.draining());
  EXPECT_EQ(CheckHealth(address, ""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(CheckHealth(address, "dsm.v1.Sampler"), HealthCheckResponse::NOT_SERVING);

  sampler.release.Notify();
  in_flight.join();
  EXPECT_TRUE(in_flight_status.ok()) << in_flight_status.error_message();
  EXPECT_EQ(in_flight_info.service(), "dsm.v1.Sampler");
  drainer.join();

  // After the drain the port is closed.
  grpc::ClientContext context;
  SetDeadline(&context, absl::Milliseconds(500));
  v1::ServerInfo info;
  ChannelOptions no_retry;
  no_retry.max_attempts = 1;
  const grpc::Status after =
      v1::Sampler::NewStub(MakeChannel(address, no_retry))->GetServerInfo(&context, {}, &info);
  EXPECT_FALSE(after.ok());
}

TEST(GrpcServer, SecondServerOnTheSamePortFailsWithAClearError) {
  GrpcServer first(TestOptions());
  ASSERT_TRUE(first.Start().ok());
  GrpcServerOptions options = TestOptions();
  options.port = first.port();
  GrpcServer second(options);
  const absl::Status status = second.Start();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(first.address()), absl::string_view::npos) << status;
}

TEST(GrpcClient, RetriesUnavailableUpToMaxAttempts) {
  FakeSampler sampler;
  GrpcServer server(TestOptions());
  server.RegisterService(&sampler, v1::Sampler::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  ChannelOptions options;
  options.max_attempts = 4;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  auto stub = v1::Sampler::NewStub(MakeChannel(server.address(), options));

  sampler.failures = 3;  // fails 3 times, the 4th attempt succeeds
  {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(10));
    v1::ServerInfo info;
    const grpc::Status status = stub->GetServerInfo(&context, {}, &info);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(sampler.calls.load(), 4);
  }
  sampler.calls = 0;
  sampler.failures = 10;  // more failures than attempts: the error surfaces
  {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(10));
    v1::ServerInfo info;
    const grpc::Status status = stub->GetServerInfo(&context, {}, &info);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(sampler.calls.load(), 4);
  }
  server.Drain();
}

TEST(GrpcClient, DeadlineIsEnforced) {
  FakeSampler sampler;
  sampler.block = true;
  GrpcServerOptions server_options = TestOptions();
  server_options.shutdown_grace = absl::Milliseconds(100);
  server_options.drain = absl::ZeroDuration();
  GrpcServer server(server_options);
  server.RegisterService(&sampler, v1::Sampler::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  auto stub = v1::Sampler::NewStub(MakeChannel(server.address(), ChannelOptions{}));
  grpc::ClientContext context;
  SetDeadline(&context, absl::Milliseconds(200));
  v1::ServerInfo info;
  const grpc::Status status = stub->GetServerInfo(&context, {}, &info);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  sampler.release.Notify();
  server.Drain();
}

TEST(GrpcClient, ServiceConfigCarriesRoundRobinAndRetryPolicy) {
  ChannelOptions options;
  options.max_attempts = 3;
  const std::string json = ServiceConfigJson(options);
  EXPECT_NE(json.find("\"round_robin\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"maxAttempts\":3"), std::string::npos) << json;
  EXPECT_NE(json.find("\"UNAVAILABLE\""), std::string::npos) << json;
  options.max_attempts = 1;
  EXPECT_EQ(ServiceConfigJson(options).find("retryPolicy"), std::string::npos);
}

}  // namespace
}  // namespace dsm
