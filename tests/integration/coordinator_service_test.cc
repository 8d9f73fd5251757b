// The Coordinator gRPC service over real gRPC in-process, with scripted
// workers on the Lease stream: grants up to capacity, results accepted once
// (resends DUPLICATE, late ones EXPIRED_REISSUED), a departed worker's and
// an expired lease's work regranted to another worker, a silent worker's
// stream closed instead of its work granted to it again, bad streams and
// bad imports answered with the field, WatchRun events, and 32 workers'
// streams at once.
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "common/metrics_registry.h"
#include "services/coordinator/coordinator_process.h"
#include "services/coordinator/coordinator_service.h"
#include "tests/integration/coordinator_client.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using dsm_test::ScriptedWorker;
using ::testing::HasSubstr;

class CoordinatorServiceTest : public ::testing::Test {
 protected:
  void Start(absl::Duration ttl = absl::Seconds(30), absl::Duration heartbeat = absl::Seconds(5)) {
    CoordinatorProcessOptions o;
    o.runs_dir = dir_.path();
    o.run_name = "test-run";
    o.dispatcher.lease_ttl = ttl;
    o.dispatcher.heartbeat_interval = heartbeat;
    o.store.db.synchronous_full = false;
    o.tick = absl::Milliseconds(50);
    auto process = CoordinatorProcess::Create(o, &registry_);
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = *std::move(process);
    service_ = std::make_unique<CoordinatorService>(process_.get(), absl::Milliseconds(50));
    GrpcServerOptions server_options;
    server_options.drain = absl::ZeroDuration();
    server_options.shutdown_grace = absl::Milliseconds(200);
    server_ = std::make_unique<GrpcServer>(server_options);
    server_->RegisterService(service_.get(), v1::Coordinator::service_full_name());
    ASSERT_TRUE(server_->Start().ok());
    stub_ = v1::Coordinator::NewStub(MakeChannel(server_->address(), ChannelOptions{}));
  }
  void TearDown() override {
    server_.reset();
    service_.reset();
    process_.reset();
  }

  // Enqueues n generation items (tagged by key).
  void Enqueue(int n, const std::string& prefix = "w") {
    std::vector<WorkItemSpec> items;
    for (int i = 0; i < n; ++i) {
      v1::GenerateWork work;
      work.mutable_prompt()->mutable_token_ids()->add_ids(i);
      work.set_n(2);
      work.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
      WorkItemSpec spec;
      spec.payload = work.SerializeAsString();
      spec.role = v1::ADAPTER_ROLE_GENERATOR;
      spec.key = absl::StrCat(prefix, i);
      items.push_back(spec);
    }
    auto ids = process_->dispatcher()->Enqueue(items);
    ASSERT_TRUE(ids.ok()) << ids.status();
  }

  // Items with an accepted result, each once.
  std::vector<WorkItem> Results() {
    auto results = process_->store()->queue().ResultsAfter(0, 100000);
    EXPECT_TRUE(results.ok());
    return results.ok() ? *results : std::vector<WorkItem>{};
  }

  static v1::ResultAck AwaitAck(ScriptedWorker& w) {
    for (int i = 0; i < 100; ++i) {
      auto m = w.Next();
      if (!m.has_value()) break;
      if (m->has_ack()) return m->ack();
      w.others.push_back(*m);
    }
    ADD_FAILURE() << "no ack";
    return {};
  }

  TestDir dir_;
  MetricsRegistry registry_;
  std::unique_ptr<CoordinatorProcess> process_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

TEST_F(CoordinatorServiceTest, GrantsUpToCapacityAndAcceptsEachResultOnce) {
  Start();
  Enqueue(5);
  ScriptedWorker worker(stub_.get(), "w1", 2);
  auto welcome = worker.Next();
  ASSERT_TRUE(welcome.has_value() && welcome->has_welcome());
  EXPECT_EQ(welcome->welcome().run_name(), "test-run");
  EXPECT_EQ(welcome->welcome().lease_ttl().seconds(), 30);
  auto grants = worker.Grants(2);
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_FALSE(worker.Grants(1, absl::Milliseconds(300)).size() > 0) << "granted beyond capacity";
  EXPECT_EQ(grants[0].attempt(), 1u);
  EXPECT_EQ(grants[0].generate().n(), 2u);

  ASSERT_TRUE(worker.Result(grants[0].lease_id(), 1));
  v1::ResultAck ack = AwaitAck(worker);
  EXPECT_EQ(ack.lease_id(), grants[0].lease_id());
  EXPECT_EQ(ack.status(), v1::LEASE_RESULT_STATUS_ACCEPTED);
  ASSERT_TRUE(worker.Result(grants[0].lease_id(), 1));  // a resend
  EXPECT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_DUPLICATE);
  ASSERT_TRUE(worker.Result("no-such-lease", 1));
  EXPECT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_UNKNOWN_LEASE);

  // Capacity freed: the next grant comes; answer everything.
  std::vector<std::string> open = {grants[1].lease_id()};
  for (const auto& g : worker.Grants(1)) open.push_back(g.lease_id());
  for (int round = 0; round < 5 && !open.empty(); ++round) {
    std::vector<std::string> next;
    for (const std::string& id : open) {
      ASSERT_TRUE(worker.Result(id, 2));
      EXPECT_EQ(AwaitAck(worker).status(), v1::LEASE_RESULT_STATUS_ACCEPTED);
    }
    for (const auto& g : worker.Grants(2, absl::Milliseconds(500))) next.push_back(g.lease_id());
    open = next;
  }
  EXPECT_EQ(Results().size(), 5u);
  EXPECT_TRUE(worker.Finish().ok());
  EXPECT_THAT(registry_.Exposition(), HasSubstr("dsm_coordinator_results_total{status=\"duplicate\"} 1"));
  EXPECT_THAT(registry_.Exposition(), HasSubstr("dsm_coordinator_worker_results_total{worker=\"w1\"} 5"));
}

TEST_F(CoordinatorServiceTest, ADepartedWorkersWorkGoesToAnotherAndCountsOnce) {
  Start();
  Enqueue(3);
  auto a = std::make_unique<ScriptedWorker>(stub_.get(), "a", 3);
  auto a_grants = a->Grants(3);
  ASSERT_EQ(a_grants.size(), 3u);
  ScriptedWorker b(stub_.get(), "b", 3);
  EXPECT_TRUE(b.Grants(1, absl::Milliseconds(300)).empty());
  a->Abort();  // killed: its leases go to b at once
  auto b_grants = b.Grants(3);
  ASSERT_EQ(b_grants.size(), 3u);
  std::set<std::string> ids;
  for (const auto& g : a_grants) ids.insert(g.lease_id());
  for (const auto& g : b_grants) {
    EXPECT_TRUE(ids.insert(g.lease_id()).second) << "lease id granted twice: " << g.lease_id();
    EXPECT_EQ(g.attempt(), 2u);
  }
  for (const auto& g : b_grants) {
    ASSERT_TRUE(b.Result(g.lease_id(), 7));
    EXPECT_EQ(AwaitAck(b).status(), v1::LEASE_RESULT_STATUS_ACCEPTED);
  }
  // a comes back claiming its old leases: they are cancelled, and its late
  // results are discarded.
  ScriptedWorker again(stub_.get(), "a", 3, {a_grants[0].lease_id()});
  bool cancelled = false;
  for (int i = 0; i < 5 && !cancelled; ++i) {
    auto m = again.Next();
    ASSERT_TRUE(m.has_value());
    cancelled = m->has_cancel() && m->cancel().lease_id() == a_grants[0].lease_id();
  }
  EXPECT_TRUE(cancelled);
  ASSERT_TRUE(again.Result(a_grants[0].lease_id(), 9));
  EXPECT_EQ(AwaitAck(again).status(), v1::LEASE_RESULT_STATUS_EXPIRED_REISSUED);
  const std::vector<WorkItem> results = Results();
  ASSERT_EQ(results.size(), 3u);
  for (const WorkItem& item : results) {
    v1::GenerateResult r;
    ASSERT_TRUE(r.ParseFromString(item.result));
    EXPECT_EQ(r.prompt_token_ids(0), 7) << "the late result replaced the accepted one";
  }
}

TEST_F(CoordinatorServiceTest, AnExpiredLeaseIsCancelledAndRegranted) {
  Start(absl::Milliseconds(400), absl::Milliseconds(100));
  Enqueue(1);
  ScriptedWorker silent(stub_.get(), "silent", 1);
  ASSERT_EQ(silent.Grants(1).size(), 1u);
  ScriptedWorker other(stub_.get(), "other", 1);
  auto regrant = other.Grants(1, absl::Seconds(5));  // after ~400 ms without a heartbeat
  ASSERT_EQ(regrant.size(), 1u);
  EXPECT_EQ(regrant[0].attempt(), 2u);
  bool cancelled = false;
  for (const auto& m : silent.others) cancelled |= m.has_cancel();
  for (int i = 0; i < 3 && !cancelled; ++i) {
    auto m = silent.Next(absl::Seconds(2));
    cancelled = m.has_value() && m->has_cancel();
  }
  EXPECT_TRUE(cancelled);
}

// A worker that goes silent with its stream still open (a dead host, a cut
// link) loses the stream when its lease expires, rather than being granted
// the same work again and again until the work runs out of attempts.
TEST_F(CoordinatorServiceTest, ASilentWorkerLosesItsStreamInsteadOfGettingTheWorkAgain) {
  Start(absl::Milliseconds(400), absl::Milliseconds(100));
  Enqueue(1);
  ScriptedWorker silent(stub_.get(), "silent", 1);
  ASSERT_EQ(silent.Grants(1).size(), 1u);
  // Five lease lifetimes: enough for the work to go back to it twice.
  ASSERT_EQ(silent.Grants(1, absl::Seconds(2)).size(), 0u) << "the work went back to the silent worker";
  const grpc::Status end = silent.AwaitEnd();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
  EXPECT_THAT(end.error_message(), HasSubstr("the worker is gone"));
  EXPECT_EQ(process_->dispatcher()->workers_connected(), 0u);
  auto counters = process_->store()->queue().Counters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->queued, 1u);
  EXPECT_EQ(counters->failed, 0u);
}

TEST_F(CoordinatorServiceTest, BadStreamsAndImportsGetTheFieldNamed) {
  Start();
  {
    v1::WorkerMessage first;
    first.mutable_heartbeat();
    ScriptedWorker w(stub_.get(), first);
    const grpc::Status s = w.AwaitEnd();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("Hello must come first"));
  }
  {
    v1::WorkerMessage first;
    first.mutable_hello()->add_roles(v1::ADAPTER_ROLE_GENERATOR);
    first.mutable_hello()->set_capacity(1);
    ScriptedWorker w(stub_.get(), first);
    const grpc::Status s = w.AwaitEnd();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("hello.worker_id"));
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(10));
    v1::ImportRecordsResponse response;
    auto writer = stub_->ImportRecords(&context, &response);
    v1::ImportRecordsRequest good;
    good.set_line(1);
    good.mutable_problem()->set_problem_id("p1");
    good.mutable_problem()->set_statement("Show that a = c.");
    ASSERT_TRUE(writer->Write(good));
    v1::ImportRecordsRequest bad;
    bad.set_line(2);
    bad.mutable_proof()->set_problem_id("p1");
    bad.mutable_proof()->set_proof_id("q1");
    bad.mutable_proof()->set_proof("a = b, b = c.");
    bad.mutable_proof()->set_score(0.7);
    ASSERT_TRUE(writer->Write(bad));
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.received(), 2u);
    EXPECT_EQ(response.imported(), 1u);
    ASSERT_EQ(response.errors_size(), 1);
    EXPECT_EQ(response.errors(0).line(), 2u);
    EXPECT_THAT(response.errors(0).field(), HasSubstr("score"));
  }
  {
    grpc::ClientContext context;
    v1::RunStatus status;
    v1::GetRunRequest request;
    request.set_name("Bad Name");
    const grpc::Status s = stub_->GetRun(&context, request, &status);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("name"));
  }
}

TEST_F(CoordinatorServiceTest, WatchRunStreamsEventsUntilTheRunEnds) {
  Start();
  ScriptedWorker w(stub_.get(), "watched", 1);
  ASSERT_TRUE(w.Next().has_value());  // welcome
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(20));
  v1::WatchRunRequest request;
  request.set_name("test-run");
  auto reader = stub_->WatchRun(&context, request);
  {
    grpc::ClientContext c;
    v1::StartRunRequest start;
    start.set_name("test-run");
    v1::RunStatus status;
    ASSERT_TRUE(stub_->StartRun(&c, start, &status).ok());
    EXPECT_EQ(status.state(), v1::RUN_STATE_RUNNING);
    EXPECT_EQ(status.workers_connected(), 1u);
  }
  {
    grpc::ClientContext c;
    v1::CancelRunRequest cancel;
    cancel.set_name("test-run");
    v1::RunStatus status;
    ASSERT_TRUE(stub_->CancelRun(&c, cancel, &status).ok());
    EXPECT_EQ(status.state(), v1::RUN_STATE_CANCELLED);
  }
  std::vector<v1::RunEvent> events;
  v1::RunEvent e;
  while (reader->Read(&e)) events.push_back(e);
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_GE(events.size(), 3u);
  bool joined = false;
  for (const auto& event : events) joined |= event.worker_joined().worker_id() == "watched";
  EXPECT_TRUE(joined);
  EXPECT_EQ(events.back().state_changed().state(), v1::RUN_STATE_CANCELLED);
  for (size_t i = 1; i < events.size(); ++i) EXPECT_EQ(events[i].sequence(), events[i - 1].sequence() + 1);
}

TEST_F(CoordinatorServiceTest, ThirtyTwoWorkersDrainTheQueueExactlyOnce) {
  Start();
  constexpr int kWorkers = 32, kItems = 640;
  Enqueue(kItems);
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < kWorkers; ++i) {
    threads.emplace_back([&, i] {
      ScriptedWorker w(stub_.get(), absl::StrCat("load-", i), 4);
      int open = 0;
      while (true) {
        auto m = w.Next(open == 0 ? absl::Milliseconds(500) : absl::Seconds(10));
        if (!m.has_value()) break;
        if (m->has_grant()) {
          ++open;
          w.Result(m->grant().lease_id(), i);
        } else if (m->has_ack()) {
          --open;
          if (m->ack().status() == v1::LEASE_RESULT_STATUS_ACCEPTED) ++accepted;
        }
      }
      w.Finish();
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::cout << kWorkers << " workers, " << kItems << " leases in " << seconds << " s\n";
  EXPECT_EQ(accepted.load(), kItems);
  EXPECT_EQ(Results().size(), static_cast<size_t>(kItems));
}

}  // namespace
}  // namespace dsm
