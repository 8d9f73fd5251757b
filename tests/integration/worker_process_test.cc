// `dsm serve worker` as a separate process: Generate over gRPC with adapter
// versions streamed from a learner, limits, and a clean SIGTERM.
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/sampler.grpc.pb.h"
#include "model/lora.h"
#include "model/model_config.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/watch_adapters_reactor.h"
#include "tests/integration/child_process.h"
#include "tests/integration/publishing_learner.h"
#include "tests/integration/random_adapter.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

using dsm_test::PublishingLearner;

using dsm_test::RandomAdapterVersion;

struct Generated {
  grpc::Status status;
  std::vector<v1::Completion> completions;
  std::optional<v1::GenerateSummary> summary;
};

Generated Generate(v1::Sampler::Stub* stub, const v1::GenerateRequest& request) {
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(60));
  auto reader = stub->Generate(&context, request);
  Generated out;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_completion()) out.completions.push_back(response.completion());
    if (response.has_summary()) out.summary = response.summary();
  }
  out.status = reader->Finish();
  return out;
}

TEST(WorkerProcess, ServesGenerateWithStreamedAdapterVersions) {
  const std::string model_dir = model_test::ReferenceDir() + "/llama_gqa_tied";
  auto model_config = LoadModelConfig(model_dir);
  ASSERT_TRUE(model_config.ok()) << model_config.status();

  PublishingLearner learner;
  GrpcServerOptions options;
  options.drain = absl::ZeroDuration();
  options.shutdown_grace = absl::Milliseconds(200);
  GrpcServer learner_server(options);
  learner_server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(learner_server.Start().ok());
  ASSERT_TRUE(learner.publisher.Publish(RandomAdapterVersion(*model_config, 1)).ok());

  const std::string config_path = ::testing::TempDir() + "/worker.yaml";
  std::ofstream(config_path) << "run: {name: worker-test}\n"
                             << "log: {level: info}\n"
                             << "runtime: {threads: 1}\n"
                             << "server: {drain_seconds: 0}\n"
                             << "model: {path: " << model_dir << ", max_batch: 8, max_len: 128}\n"
                             << "services: {worker: {port: 0, metrics_port: 0}}\n"
                             << "worker: {roles: [generator], learner: \"" << learner_server.address() << "\"}\n"
                             << "limits: {max_n: 8, max_completion_tokens: 64}\n";
  dsm_test::ChildProcess worker({"serve", "worker", "--config", config_path},
                                ::testing::TempDir() + "/worker.log");
  const auto line = worker.WaitForLine("dsm serve worker: grpc ", absl::Seconds(60));
  ASSERT_TRUE(line.has_value()) << worker.Log();
  const std::string address = line->substr(line->find("grpc ") + 5, line->find(" metrics") - line->find("grpc ") - 5);
  auto stub = v1::Sampler::NewStub(MakeChannel(address, ChannelOptions{}));

  v1::GenerateRequest request;
  for (int id : {5, 17, 42, 3}) request.mutable_prompt()->mutable_token_ids()->add_ids(id);
  request.set_n(4);
  request.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
  request.set_min_adapter_version(1);
  request.mutable_params()->set_temperature(1.0);
  request.mutable_params()->set_max_tokens(6);
  request.mutable_params()->set_seed(5);
  request.mutable_params()->set_return_logprobs(true);
  request.mutable_params()->set_ignore_eos(true);
  Generated first = Generate(stub.get(), request);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message() << "\n" << worker.Log();
  ASSERT_EQ(first.completions.size(), 4u);
  std::set<uint64_t> seeds;
  for (const auto& c : first.completions) {
    EXPECT_EQ(c.token_ids_size(), 6);
    EXPECT_EQ(c.logprobs_size(), 6);
    EXPECT_EQ(c.adapter_version(), 1u);
    EXPECT_EQ(c.finish_reason(), v1::FINISH_REASON_LENGTH);
    seeds.insert(c.seed());
  }
  EXPECT_EQ(seeds.size(), 4u);
  ASSERT_TRUE(first.summary.has_value());
  EXPECT_EQ(first.summary->adapter().version(), 1u);

  // Same request, same seed: same tokens (whatever else runs).
  Generated again = Generate(stub.get(), request);
  ASSERT_TRUE(again.status.ok());
  std::map<uint32_t, std::vector<int32_t>> by_index;
  for (const auto& c : first.completions) by_index[c.index()] = {c.token_ids().begin(), c.token_ids().end()};
  for (const auto& c : again.completions) {
    EXPECT_EQ(by_index[c.index()], std::vector<int32_t>(c.token_ids().begin(), c.token_ids().end()));
  }

  // A new version streams in; a request that needs it waits for it.
  ASSERT_TRUE(learner.publisher.Publish(RandomAdapterVersion(*model_config, 2)).ok());
  request.set_min_adapter_version(2);
  Generated second = Generate(stub.get(), request);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  for (const auto& c : second.completions) EXPECT_EQ(c.adapter_version(), 2u);

  // Bad input: INVALID_ARGUMENT naming the field; the worker keeps serving.
  v1::GenerateRequest too_many = request;
  too_many.set_n(100);
  Generated rejected = Generate(stub.get(), too_many);
  EXPECT_EQ(rejected.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(rejected.status.error_message(), HasSubstr("n: 100 exceeds max_n 8"));
  v1::GenerateRequest bad_id = request;
  bad_id.mutable_prompt()->mutable_token_ids()->set_ids(0, 1 << 30);
  EXPECT_EQ(Generate(stub.get(), bad_id).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Generate(stub.get(), request).status.ok());

  EXPECT_EQ(worker.Stop(SIGTERM), 0) << worker.Log();
}

}  // namespace
}  // namespace dsm
