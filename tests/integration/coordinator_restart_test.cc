// `dsm serve coordinator` killed with SIGKILL while a worker holds leases,
// then started again on the same state.db and port: no accepted result is
// lost, a resent result is a DUPLICATE, the worker keeps the leases it held,
// no lease id is ever granted twice and every work item is done once.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "services/coordinator/run_store.h"
#include "tests/integration/child_process.h"
#include "tests/integration/coordinator_client.h"
#include "tests/integration/learner_client.h"

namespace dsm {
namespace {

using dsm_test::ChildProcess;
using dsm_test::ScriptedWorker;

constexpr int kItems = 20;

v1::ResultAck AwaitAck(ScriptedWorker& w) {
  for (int i = 0; i < 100; ++i) {
    auto m = w.Next();
    if (!m.has_value()) break;
    if (m->has_ack()) return m->ack();
    w.others.push_back(*m);
  }
  ADD_FAILURE() << "no ack";
  return {};
}

TEST(CoordinatorRestart, KillNineLosesNothingAndServesNoLeaseTwice) {
  const std::string dir = ::testing::TempDir() + "/coordinator-restart";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const int port = dsm_test::FreePort();
  ASSERT_GT(port, 0);
  const std::string config = dir + "/config.yaml";
  std::ofstream(config) << "run: {name: restart, runs_dir: " << dir << "}\n"
                        << "server: {drain_seconds: 0}\n"
                        << "services: {coordinator: {port: " << port << ", metrics_port: 0}}\n"
                        << "coordinator: {lease_ttl_seconds: 60, heartbeat_seconds: 5}\n";
  {
    // The work a pipeline enqueued before.
    auto store = RunStore::Open(RunStore::StatePath(dir, "restart"), RunStoreOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateRun("restart", "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
    std::vector<WorkItemSpec> items;
    for (int i = 0; i < kItems; ++i) {
      v1::GenerateWork work;
      work.mutable_prompt()->mutable_token_ids()->add_ids(i);
      work.set_n(1);
      work.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
      WorkItemSpec spec;
      spec.payload = work.SerializeAsString();
      spec.role = v1::ADAPTER_ROLE_GENERATOR;
      items.push_back(spec);
    }
    ASSERT_TRUE((*store)->queue().Enqueue(items, absl::Now()).ok());
  }

  const std::string address = absl::StrCat("127.0.0.1:", port);
  std::set<std::string> granted;  // every lease id ever granted
  std::vector<std::string> held;
  std::string accepted_before;
  {
    ChildProcess coordinator({"serve", "coordinator", "--config", config}, dir + "/coordinator-1.log");
    ASSERT_TRUE(coordinator.WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(30))) << coordinator.Log();
    auto stub = v1::Coordinator::NewStub(MakeChannel(address, ChannelOptions{}));
    ScriptedWorker worker(stub.get(), "w", 4);
    auto grants = worker.Grants(4);
    ASSERT_EQ(grants.size(), 4u) << coordinator.Log();
    for (const auto& g : grants) ASSERT_TRUE(granted.insert(g.lease_id()).second);
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(worker.Result(grants[i].lease_id(), i));
      ASSERT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_ACCEPTED);
    }
    accepted_before = grants[0].lease_id();
    held = {grants[2].lease_id(), grants[3].lease_id()};
    EXPECT_EQ(coordinator.Stop(SIGKILL), -1);
  }

  ChildProcess coordinator({"serve", "coordinator", "--config", config}, dir + "/coordinator-2.log");
  ASSERT_TRUE(coordinator.WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(30))) << coordinator.Log();
  auto stub = v1::Coordinator::NewStub(MakeChannel(address, ChannelOptions{}));
  ScriptedWorker worker(stub.get(), "w", 4, held);
  // The held leases are still the worker's: their results are accepted.
  for (const std::string& id : held) {
    ASSERT_TRUE(worker.Result(id, 5));
    EXPECT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_ACCEPTED) << id;
  }
  // An accepted result survived the kill.
  ASSERT_TRUE(worker.Result(accepted_before, 0));
  EXPECT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_DUPLICATE);
  // The rest of the work.
  int done = 4;
  while (done < kItems) {
    auto grants = worker.Grants(1);
    ASSERT_EQ(grants.size(), 1u) << coordinator.Log();
    ASSERT_TRUE(granted.insert(grants[0].lease_id()).second) << "lease granted twice: " << grants[0].lease_id();
    ASSERT_TRUE(worker.Result(grants[0].lease_id(), 6));
    ASSERT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_ACCEPTED);
    ++done;
  }
  for (const auto& m : worker.others) EXPECT_FALSE(m.has_cancel()) << m.cancel().lease_id();
  EXPECT_TRUE(worker.Finish().ok());
  EXPECT_EQ(coordinator.Stop(SIGTERM), 0) << coordinator.Log();

  auto store = RunStore::Open(RunStore::StatePath(dir, "restart"), RunStoreOptions{});
  ASSERT_TRUE(store.ok());
  auto results = (*store)->queue().ResultsAfter(0, 1000);
  ASSERT_TRUE(results.ok());
  EXPECT_EQ(results->size(), static_cast<size_t>(kItems));
  std::set<int64_t> items;
  for (const WorkItem& item : *results) {
    EXPECT_EQ(item.state, WorkState::kDone);
    EXPECT_TRUE(items.insert(item.item_id).second);
  }
  EXPECT_EQ(granted.size(), static_cast<size_t>(kItems));
}

}  // namespace
}  // namespace dsm
