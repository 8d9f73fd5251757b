// End to end over real gRPC, every service its own process: `dsm serve
// learner` trains a LoRA adapter with GRPO on a rule-based reward, `dsm serve
// worker` samples from the adapter versions streamed to it, and this test
// drives the loop (sample, score, submit). The reward must rise from <= 20%
// to >= 90% within two minutes.
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/sampler.grpc.pb.h"
#include "tests/integration/child_process.h"
#include "tests/integration/learner_client.h"
#include "tests/integration/toy_model.h"

namespace dsm {
namespace {

constexpr int kGroupSize = 8;
constexpr int kGroupsPerStep = 4;
constexpr int kTokens = 8;

// The rule: a completion earns the fraction of its tokens that are
// multiples of 8 (1 in 8 of this vocabulary, so a uniform policy earns 12.5%).
double Reward(const v1::Completion& c) {
  int hits = 0;
  for (int id : c.token_ids()) hits += id % 8 == 0;
  return c.token_ids_size() == 0 ? 0 : static_cast<double>(hits) / c.token_ids_size();
}

TEST(GrpoEndToEnd, RewardRisesWithStreamedAdapters) {
  const std::string model = dsm_test::MakeToyModel();
  const std::string run_dir = ::testing::TempDir() + "/grpo-toy";
  std::system(("rm -rf " + run_dir).c_str());
  const std::string config = ::testing::TempDir() + "/grpo_toy.yaml";
  std::ofstream(config) << "run: {name: toy, runs_dir: " << run_dir << ", seed: 3}\n"
                        << "runtime: {threads: 1}\n"
                        << "server: {drain_seconds: 0}\n"
                        << "model: {path: " << model << ", max_batch: 32, max_len: 64}\n"
                        << "services: {learner: {port: 0, metrics_port: 0}, worker: {port: 0, metrics_port: 0}}\n"
                        << "lora: {r: 8, alpha: 16}\n"
                        << "learner: {roles: [generator], learning_rate: 0.01, groups_per_step: " << kGroupsPerStep
                        << ", max_policy_lag: 2, checkpoint_every_steps: 1000,"
                        << " grpo: {kl_beta: 0.0, aggregation: token}}\n"
                        << "worker: {roles: [generator]}\n"
                        << "limits: {max_n: 16, max_completion_tokens: 16, max_prompt_tokens: 16}\n";

  dsm_test::ChildProcess learner({"serve", "learner", "--config", config}, ::testing::TempDir() + "/toy_learner.log");
  auto learner_line = learner.WaitForLine("dsm serve learner: grpc ", absl::Seconds(60));
  ASSERT_TRUE(learner_line.has_value()) << learner.Log();
  const std::string learner_address = dsm_test::ServeAddress(*learner_line);
  dsm_test::ChildProcess worker({"serve", "worker", "--config", config, "--learner", learner_address},
                                ::testing::TempDir() + "/toy_worker.log");
  auto worker_line = worker.WaitForLine("dsm serve worker: grpc ", absl::Seconds(60));
  ASSERT_TRUE(worker_line.has_value()) << worker.Log();

  auto learner_stub = v1::Learner::NewStub(MakeChannel(learner_address, ChannelOptions{}));
  auto sampler = v1::Sampler::NewStub(MakeChannel(dsm_test::ServeAddress(*worker_line), ChannelOptions{}));
  {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    v1::InitAdapterRequest init;
    init.set_role(v1::ADAPTER_ROLE_GENERATOR);
    init.mutable_fresh();
    v1::InitAdapterResponse response;
    const grpc::Status status = learner_stub->InitAdapter(&context, init, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << learner.Log();
  }

  grpc::ClientContext stream_context;
  auto stream = learner_stub->SubmitGroups(&stream_context);
  v1::SubmitGroupsResponse credit;
  ASSERT_TRUE(stream->Read(&credit)) << learner.Log();
  int64_t credits = credit.credits();

  const absl::Time start = absl::Now();
  double first_round = -1, last_round = 0;
  uint64_t version = 1;
  int round = 0;
  while (absl::Now() - start < absl::Minutes(2)) {
    double reward_sum = 0;
    int samples = 0;
    for (int g = 0; g < kGroupsPerStep; ++g) {
      v1::GenerateRequest request;
      for (int id : {1, 5, 9}) request.mutable_prompt()->mutable_token_ids()->add_ids(id);
      request.set_n(kGroupSize);
      request.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
      request.set_min_adapter_version(version);
      request.mutable_params()->set_temperature(1.0);
      request.mutable_params()->set_max_tokens(kTokens);
      request.mutable_params()->set_seed(round * 100 + g);
      request.mutable_params()->set_return_logprobs(true);
      request.mutable_params()->set_ignore_eos(true);
      grpc::ClientContext context;
      SetDeadline(&context, absl::Seconds(60));
      auto reader = sampler->Generate(&context, request);
      v1::GenerateResponse response;
      v1::SubmitGroupsRequest submit;
      v1::ScoredGroup* group = submit.mutable_group();
      group->set_group_id(absl::StrCat("r", round, "g", g));
      group->set_role(v1::ADAPTER_ROLE_GENERATOR);
      group->mutable_prompt_token_ids()->Add(request.prompt().token_ids().ids().begin(),
                                             request.prompt().token_ids().ids().end());
      while (reader->Read(&response)) {
        if (!response.has_completion()) continue;
        const v1::Completion& c = response.completion();
        v1::ScoredSample* s = group->add_samples();
        s->mutable_completion_token_ids()->CopyFrom(c.token_ids());
        s->mutable_behaviour_logprobs()->CopyFrom(c.logprobs());
        s->set_adapter_version(c.adapter_version());
        s->set_reward(Reward(c));
        reward_sum += s->reward();
        ++samples;
        version = std::max<uint64_t>(version, c.adapter_version());
      }
      const grpc::Status status = reader->Finish();
      ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << worker.Log();
      while (credits == 0) {
        ASSERT_TRUE(stream->Read(&credit)) << learner.Log();
        credits += credit.credits();
      }
      ASSERT_TRUE(stream->Write(submit));
      --credits;
      ASSERT_TRUE(stream->Read(&credit)) << learner.Log();  // the ack
      credits += credit.credits();
      ASSERT_NE(credit.ack().status(), v1::GROUP_STATUS_REJECTED) << credit.ack().message();
    }
    const double mean = reward_sum / samples;
    if (first_round < 0) first_round = mean;
    last_round = mean;
    ++round;
    if (round > 3 && mean >= 0.95) break;
  }
  stream->WritesDone();
  stream_context.TryCancel();
  std::cout << "rounds " << round << ", reward first " << first_round << ", last " << last_round << ", adapter v"
            << version << ", " << absl::ToDoubleSeconds(absl::Now() - start) << " s\n";
  EXPECT_LE(first_round, 0.20);
  EXPECT_GE(last_round, 0.90);
  EXPECT_GT(version, 1u);
  EXPECT_EQ(worker.Stop(SIGTERM), 0) << worker.Log();
  EXPECT_EQ(learner.Stop(SIGTERM), 0) << learner.Log();
}

}  // namespace
}  // namespace dsm
