// Every service its own process: `dsm serve learner` (publishes the adapter),
// `dsm serve coordinator` (a queue of generation work), and `dsm serve
// worker --coordinator`. Worker A is killed with SIGKILL while it holds
// leases; worker B, started afterwards, gets A's work, and every work item
// ends with exactly one accepted result.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/coordinator/run_store.h"
#include "tests/integration/child_process.h"
#include "tests/integration/learner_client.h"
#include "tests/integration/toy_model.h"

namespace dsm {
namespace {

using dsm_test::ChildProcess;

constexpr int kItems = 12;

TEST(WorkerKill, KilledWorkersLeasesAreReissuedAndCountedOnce) {
  const std::string dir = ::testing::TempDir() + "/worker-kill";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const std::string config = dir + "/config.yaml";
  std::ofstream(config) << "run: {name: kill, runs_dir: " << dir << ", seed: 3}\n"
                        << "runtime: {threads: 1}\n"
                        << "server: {drain_seconds: 0}\n"
                        << "model: {path: " << dsm_test::MakeToyModel() << ", max_batch: 16, max_len: 64}\n"
                        << "services: {learner: {port: 0, metrics_port: 0}, worker: {port: 0, metrics_port: 0},"
                        << " coordinator: {port: 0, metrics_port: 0}}\n"
                        << "lora: {r: 4, alpha: 8}\n"
                        << "learner: {roles: [generator]}\n"
                        << "worker: {roles: [generator], capacity: 2}\n"
                        << "coordinator: {lease_ttl_seconds: 60, heartbeat_seconds: 1}\n"
                        << "limits: {max_n: 16, max_completion_tokens: 48, max_prompt_tokens: 16}\n";
  const std::string state = RunStore::StatePath(dir, "kill");
  {
    auto store = RunStore::Open(state, RunStoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateRun("kill", "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
    std::vector<WorkItemSpec> items;
    for (int i = 0; i < kItems; ++i) {
      v1::GenerateWork work;
      for (int id : {1, 5, 9, i}) work.mutable_prompt()->mutable_token_ids()->add_ids(id);
      work.set_n(2);
      work.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
      // Version 2 is published only after worker A is killed, so A holds its
      // leases without finishing any (no race with the kill).
      work.set_min_adapter_version(2);
      work.mutable_params()->set_max_tokens(40);
      work.mutable_params()->set_ignore_eos(true);
      work.mutable_params()->set_return_logprobs(true);
      work.mutable_params()->set_seed(i);
      WorkItemSpec spec;
      spec.payload = work.SerializeAsString();
      spec.role = v1::ADAPTER_ROLE_GENERATOR;
      items.push_back(spec);
    }
    ASSERT_TRUE((*store)->queue().Enqueue(items, absl::Now()).ok());
  }

  ChildProcess learner({"serve", "learner", "--config", config}, dir + "/learner.log");
  auto learner_line = learner.WaitForLine("dsm serve learner: grpc ", absl::Seconds(60));
  ASSERT_TRUE(learner_line.has_value()) << learner.Log();
  const std::string learner_address = dsm_test::ServeAddress(*learner_line);
  auto learner_stub = v1::Learner::NewStub(MakeChannel(learner_address, ChannelOptions{}));
  // Publishes a fresh generator adapter (version 1, then 2, ...).
  auto publish = [&]() {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    v1::InitAdapterRequest init;
    init.set_role(v1::ADAPTER_ROLE_GENERATOR);
    init.mutable_fresh();
    v1::InitAdapterResponse response;
    const grpc::Status status = learner_stub->InitAdapter(&context, init, &response);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << learner.Log();
  };
  publish();
  ChildProcess coordinator({"serve", "coordinator", "--config", config}, dir + "/coordinator.log");
  auto coordinator_line = coordinator.WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(60));
  ASSERT_TRUE(coordinator_line.has_value()) << coordinator.Log();
  const std::string coordinator_address = dsm_test::ServeAddress(*coordinator_line);

  auto store = RunStore::Open(state, RunStoreOptions{});
  ASSERT_TRUE(store.ok()) << store.status();
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);

  // Worker A: killed as soon as it holds leases.
  std::vector<LeaseRef> a_leases;
  std::string a_id;
  {
    ChildProcess a({"serve", "worker", "--config", config, "--learner", learner_address, "--coordinator",
                    coordinator_address},
                   dir + "/worker-a.log");
    a_id = absl::StrCat(host, "-pid", a.pid());
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (a_leases.empty() && absl::Now() < until && a.Running()) {
      auto active = (*store)->queue().ActiveLeases(a_id);
      ASSERT_TRUE(active.ok()) << active.status();
      a_leases = *active;
      if (a_leases.empty()) absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_FALSE(a_leases.empty()) << a.Log() << coordinator.Log();
    EXPECT_EQ(a.Stop(SIGKILL), -1);
  }
  publish();  // version 2: the work can now be done

  ChildProcess b({"serve", "worker", "--config", config, "--learner", learner_address, "--coordinator",
                  coordinator_address},
                 dir + "/worker-b.log");
  const std::string b_id = absl::StrCat(host, "-pid", b.pid());
  std::vector<WorkItem> results;
  const absl::Time until = absl::Now() + absl::Seconds(120);
  while (absl::Now() < until) {
    auto r = (*store)->queue().ResultsAfter(0, 1000);
    ASSERT_TRUE(r.ok()) << r.status();
    results = *r;
    if (results.size() >= static_cast<size_t>(kItems)) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(results.size(), static_cast<size_t>(kItems)) << b.Log() << coordinator.Log();
  std::set<int64_t> items;
  std::set<std::string> a_lease_ids;
  for (const LeaseRef& l : a_leases) a_lease_ids.insert(l.lease_id);
  for (const WorkItem& item : results) {
    EXPECT_EQ(item.state, WorkState::kDone) << item.error;
    EXPECT_TRUE(items.insert(item.item_id).second);
    EXPECT_EQ(a_lease_ids.count(item.accepted_lease_id), 0u) << "a killed worker's lease was accepted";
    v1::GenerateResult result;
    ASSERT_TRUE(result.ParseFromString(item.result));
    ASSERT_EQ(result.completions_size(), 2);
    EXPECT_EQ(result.completions(0).token_ids_size(), 40);
    EXPECT_EQ(result.completions(0).adapter_version(), 2u);
  }
  // A's leased items were done by B, after a second attempt.
  for (const LeaseRef& l : a_leases) {
    auto item = (*store)->queue().GetItem(l.item_id);
    ASSERT_TRUE(item.ok());
    EXPECT_EQ(item->state, WorkState::kDone);
    EXPECT_GE(item->attempts, 2u);
  }
  auto counters = (*store)->queue().Counters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->done, static_cast<uint64_t>(kItems));
  EXPECT_EQ(counters->completed_by_worker[b_id] + counters->completed_by_worker[a_id], static_cast<uint64_t>(kItems));
  EXPECT_GE(counters->completed_by_worker[b_id], a_leases.size());
  EXPECT_EQ(b.Stop(SIGTERM), 0) << b.Log();
  EXPECT_EQ(coordinator.Stop(SIGTERM), 0) << coordinator.Log();
  EXPECT_EQ(learner.Stop(SIGTERM), 0) << learner.Log();
}

}  // namespace
}  // namespace dsm
