// `dsm serve learner` killed with SIGKILL and started again on the same
// checkpoint folder and port:
// - training resumes from the newest checkpoint and, with the client
//   re-sending what the checkpoint does not cover, ends on an adapter (and
//   optimizer state) bit-identical to an uninterrupted run;
// - the resumed learner publishes above every version it published before
//   the kill, and a `dsm serve worker` reconnects by itself and samples with
//   the new version.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

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

using dsm_test::ChildProcess;
using dsm_test::LearnerClient;

constexpr int kGroupsPerStep = 2;
constexpr int kCheckpointEvery = 2;
constexpr int kSteps = 8;
constexpr int kGroups = kGroupsPerStep * kSteps;

// Deterministic scored groups (the same in every run): 4 samples of 6
// tokens each, rewards that differ within the group.
std::vector<v1::ScoredGroup> MakeGroups() {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> token(0, 63);
  std::uniform_real_distribution<float> logprob(-4.0f, -0.5f);
  std::vector<v1::ScoredGroup> groups;
  for (int g = 0; g < kGroups; ++g) {
    v1::ScoredGroup group;
    group.set_group_id(absl::StrCat("g", g));
    group.set_role(v1::ADAPTER_ROLE_GENERATOR);
    for (int id : {1, 5, 9}) group.add_prompt_token_ids(id);
    for (int s = 0; s < 4; ++s) {
      v1::ScoredSample* sample = group.add_samples();
      for (int t = 0; t < 6; ++t) {
        sample->add_completion_token_ids(token(rng));
        sample->add_behaviour_logprobs(logprob(rng));
      }
      sample->set_adapter_version(0);
      sample->set_reward((g + s) % 3 * 0.5);
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class LearnerRestart : public ::testing::Test {
 protected:
  // A config for a learner on `port` checkpointing into `name`/checkpoints.
  std::string WriteConfig(const std::string& name, int port) {
    const std::string dir = ::testing::TempDir() + "/" + name;
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    checkpoints_ = dir + "/checkpoints";
    const std::string config = dir + "/config.yaml";
    std::ofstream(config) << "run: {name: " << name << ", runs_dir: " << dir << ", seed: 5}\n"
                          << "runtime: {threads: 1}\n"
                          << "server: {drain_seconds: 0}\n"
                          << "model: {path: " << dsm_test::MakeToyModel() << ", max_batch: 16, max_len: 64}\n"
                          << "services: {learner: {port: " << port << ", metrics_port: 0},"
                          << " worker: {port: 0, metrics_port: 0}}\n"
                          << "lora: {r: 4, alpha: 8}\n"
                          << "learner: {roles: [generator], learning_rate: 0.01, groups_per_step: " << kGroupsPerStep
                          << ", max_policy_lag: 1000, checkpoint_dir: " << checkpoints_
                          << ", checkpoint_every_steps: " << kCheckpointEvery << ", grpo: {kl_beta: 0.04}}\n"
                          << "worker: {roles: [generator]}\n"
                          << "limits: {max_n: 16, max_completion_tokens: 16, max_prompt_tokens: 16}\n";
    return config;
  }

  std::unique_ptr<ChildProcess> StartLearner(const std::string& config, const std::string& log,
                                             std::string* address) {
    auto learner = std::make_unique<ChildProcess>(std::vector<std::string>{"serve", "learner", "--config", config},
                                                  ::testing::TempDir() + "/" + log);
    auto line = learner->WaitForLine("dsm serve learner: grpc ", absl::Seconds(60));
    if (!line.has_value()) {
      ADD_FAILURE() << learner->Log();
      return learner;
    }
    *address = dsm_test::ServeAddress(*line);
    return learner;
  }

  // Submits groups [from, to) and expects every one accepted.
  void SubmitAccepted(LearnerClient& client, const std::vector<v1::ScoredGroup>& groups, int from, int to) {
    const std::vector<v1::ScoredGroup> part(groups.begin() + from, groups.begin() + to);
    const std::vector<v1::GroupAck> acks = client.Submit(part);
    ASSERT_EQ(acks.size(), part.size());
    for (const v1::GroupAck& ack : acks) {
      ASSERT_EQ(ack.status(), v1::GROUP_STATUS_ACCEPTED) << ack.group_id() << ": " << ack.message();
    }
  }

  // The final adapter and optimizer state after a Checkpoint request.
  std::string FinalState(LearnerClient& client) {
    v1::CheckpointResponse response;
    const grpc::Status status = client.Checkpoint(&response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.step(), static_cast<uint64_t>(kSteps));
    const std::string folder = absl::StrCat(checkpoints_, "/generator/step-0000000", kSteps);
    return ReadBytes(folder + "/adapter/adapter_model.safetensors") + ReadBytes(folder + "/optimizer.safetensors");
  }

  std::string checkpoints_;
};

TEST_F(LearnerRestart, KillNineMidTrainingResumesBitIdentical) {
  const std::vector<v1::ScoredGroup> groups = MakeGroups();

  // The uninterrupted run.
  std::string reference;
  {
    const std::string config = WriteConfig("learner-uninterrupted", 0);
    std::string address;
    auto learner = StartLearner(config, "uninterrupted.log", &address);
    ASSERT_FALSE(address.empty());
    LearnerClient client(address);
    SubmitAccepted(client, groups, 0, kGroups);
    ASSERT_TRUE(client.WaitForStep(kSteps, absl::Seconds(60))) << learner->Log();
    reference = FinalState(client);
    EXPECT_EQ(learner->Stop(SIGTERM), 0) << learner->Log();
  }

  // The same data, with the learner killed between two checkpoints while a
  // group is buffered and not yet trained.
  const std::string config = WriteConfig("learner-killed", 0);
  std::string address;
  auto learner = StartLearner(config, "killed-1.log", &address);
  ASSERT_FALSE(address.empty());
  constexpr int kStepsBeforeKill = 5;  // one past the checkpoint at step 4
  uint64_t version_before_kill = 0;
  {
    LearnerClient client(address);
    SubmitAccepted(client, groups, 0, kStepsBeforeKill * kGroupsPerStep + 1);
    ASSERT_TRUE(client.WaitForStep(kStepsBeforeKill, absl::Seconds(60))) << learner->Log();
    // The state names a version only once it is published (and recorded for a restart): wait
    // for step 5's.
    v1::LearnerState state;
    const absl::Time until = absl::Now() + absl::Seconds(60);
    do {
      ASSERT_TRUE(client.GetState(&state));
      ASSERT_EQ(state.roles_size(), 1);
    } while (state.roles(0).adapter_version() < kStepsBeforeKill && absl::Now() < until);
    version_before_kill = state.roles(0).adapter_version();
    EXPECT_EQ(version_before_kill, static_cast<uint64_t>(kStepsBeforeKill));
    EXPECT_EQ(state.step(), static_cast<uint64_t>(kStepsBeforeKill));
  }
  EXPECT_EQ(learner->Stop(SIGKILL), -1);

  learner = StartLearner(config, "killed-2.log", &address);
  ASSERT_FALSE(address.empty());
  LearnerClient client(address);
  v1::LearnerState state;
  ASSERT_TRUE(client.GetState(&state));
  // Resumed from the checkpoint of step 4: it covers the first 8 groups.
  EXPECT_EQ(state.step(), 4u);
  ASSERT_EQ(state.checkpointed_accept_sequence(), 4u * kGroupsPerStep);
  // Published above everything the killed learner published.
  ASSERT_EQ(state.roles_size(), 1);
  EXPECT_EQ(state.roles(0).adapter_version(), version_before_kill + 1);
  // The client re-sends what the checkpoint does not cover.
  SubmitAccepted(client, groups, static_cast<int>(state.checkpointed_accept_sequence()), kGroups);
  ASSERT_TRUE(client.WaitForStep(kSteps, absl::Seconds(60))) << learner->Log();
  const std::string resumed = FinalState(client);
  EXPECT_EQ(learner->Stop(SIGTERM), 0) << learner->Log();

  ASSERT_FALSE(reference.empty());
  EXPECT_TRUE(resumed == reference) << "the resumed run's adapter or optimizer state differs";
}

TEST_F(LearnerRestart, WorkerReconnectsAndTakesTheResumedVersion) {
  const int port = dsm_test::FreePort();
  ASSERT_GT(port, 0);
  const std::string config = WriteConfig("learner-worker", port);
  const std::vector<v1::ScoredGroup> groups = MakeGroups();
  std::string address;
  auto learner = StartLearner(config, "restart-learner-1.log", &address);
  ASSERT_FALSE(address.empty());
  {
    LearnerClient client(address);
    SubmitAccepted(client, groups, 0, kGroupsPerStep);  // one step: version 1, no checkpoint yet
    ASSERT_TRUE(client.WaitForStep(1, absl::Seconds(60))) << learner->Log();
  }
  ChildProcess worker({"serve", "worker", "--config", config, "--learner", address},
                      ::testing::TempDir() + "/restart-worker.log");
  auto worker_line = worker.WaitForLine("dsm serve worker: grpc ", absl::Seconds(60));
  ASSERT_TRUE(worker_line.has_value()) << worker.Log();
  auto sampler = v1::Sampler::NewStub(MakeChannel(dsm_test::ServeAddress(*worker_line), ChannelOptions{}));

  // The adapter version the worker samples with, waiting for at least `min`.
  auto sampled_version = [&](uint64_t min) -> uint64_t {
    v1::GenerateRequest request;
    for (int id : {1, 5, 9}) request.mutable_prompt()->mutable_token_ids()->add_ids(id);
    request.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
    request.set_min_adapter_version(min);
    request.mutable_params()->set_max_tokens(2);
    request.mutable_params()->set_ignore_eos(true);
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    auto reader = sampler->Generate(&context, request);
    v1::GenerateResponse response;
    uint64_t version = 0;
    while (reader->Read(&response)) {
      if (response.has_completion()) version = response.completion().adapter_version();
    }
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << worker.Log();
    return version;
  };
  EXPECT_EQ(sampled_version(1), 1u);

  EXPECT_EQ(learner->Stop(SIGKILL), -1);
  learner = StartLearner(config, "restart-learner-2.log", &address);
  ASSERT_FALSE(address.empty());
  EXPECT_EQ(address, absl::StrCat("127.0.0.1:", port));
  // No checkpoint was written: the fresh adapter is published as version 2,
  // above the version 1 the worker holds from the killed learner.
  LearnerClient client(address);
  v1::LearnerState state;
  ASSERT_TRUE(client.GetState(&state));
  ASSERT_EQ(state.roles_size(), 1);
  EXPECT_EQ(state.roles(0).adapter_version(), 2u);
  EXPECT_EQ(sampled_version(2), 2u);

  // Training goes on and the worker follows.
  SubmitAccepted(client, groups, kGroupsPerStep, 2 * kGroupsPerStep);
  ASSERT_TRUE(client.WaitForStep(1, absl::Seconds(60))) << learner->Log();
  EXPECT_EQ(sampled_version(3), 3u);
  EXPECT_EQ(worker.Stop(SIGTERM), 0) << worker.Log();
  EXPECT_EQ(learner->Stop(SIGTERM), 0) << learner->Log();
}

}  // namespace
}  // namespace dsm
