// A rollout worker (the real WorkerProcess over the tiny reference model, fed
// adapters by a publishing fake learner) pulling work from a scripted fake
// coordinator over Coordinator.Lease: Hello, grants and results, heartbeats,
// Cancel, resend after a dropped stream, bad work, Drain.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/grpc_server.h"
#include "common/metrics_registry.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "model/model_config.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/watch_adapters_reactor.h"
#include "services/worker/worker_process.h"
#include "tests/integration/fake_coordinator.h"
#include "tests/integration/publishing_learner.h"
#include "tests/integration/random_adapter.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using dsm_test::FakeCoordinator;
using dsm_test::FakeLeaseStream;

constexpr absl::Duration kWait = absl::Seconds(10);

using dsm_test::PublishingLearner;

GrpcServerOptions TestServerOptions() {
  GrpcServerOptions options;
  options.drain = absl::ZeroDuration();
  options.shutdown_grace = absl::Milliseconds(200);
  return options;
}

v1::CoordinatorMessage Welcome() {
  v1::CoordinatorMessage m;
  m.mutable_welcome()->mutable_heartbeat_interval()->set_nanos(100'000'000);  // 100 ms
  m.mutable_welcome()->mutable_lease_ttl()->set_seconds(10);
  m.mutable_welcome()->set_coordinator_id("fake-1");
  m.mutable_welcome()->set_run_name("lease-test");
  return m;
}

// A grant of n completions of 5 tokens from the generator adapter.
v1::CoordinatorMessage Generate(const std::string& lease_id, uint32_t n, uint64_t min_version = 0) {
  v1::CoordinatorMessage m;
  v1::LeaseGrant* grant = m.mutable_grant();
  grant->set_lease_id(lease_id);
  grant->mutable_expires_at()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Seconds(10)));
  grant->set_attempt(1);
  v1::GenerateWork* work = grant->mutable_generate();
  for (int id : {5, 17, 42, 3}) work->mutable_prompt()->mutable_token_ids()->add_ids(id);
  work->set_n(n);
  work->set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
  work->set_min_adapter_version(min_version);
  work->mutable_params()->set_temperature(1.0);
  work->mutable_params()->set_max_tokens(5);
  work->mutable_params()->set_seed(11);
  work->mutable_params()->set_return_logprobs(true);
  work->mutable_params()->set_ignore_eos(true);
  work->mutable_metadata()->set_problem_id("p1");
  return m;
}

v1::CoordinatorMessage Ack(const std::string& lease_id, v1::LeaseResultStatus status) {
  v1::CoordinatorMessage m;
  m.mutable_ack()->set_lease_id(lease_id);
  m.mutable_ack()->set_status(status);
  return m;
}

FakeLeaseStream::Match ResultFor(const std::string& lease_id) {
  return [lease_id](const v1::WorkerMessage& m) { return m.has_result() && m.result().lease_id() == lease_id; };
}

FakeLeaseStream::Match HeartbeatListing(std::vector<std::string> ids) {
  return [ids](const v1::WorkerMessage& m) {
    return m.has_heartbeat() &&
           std::vector<std::string>(m.heartbeat().active_lease_ids().begin(), m.heartbeat().active_lease_ids().end()) ==
               ids;
  };
}

class LeaseClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = model_test::ReferenceDir() + "/llama_gqa_tied";
    auto config = LoadModelConfig(model_dir_);
    ASSERT_TRUE(config.ok()) << config.status();
    model_config_ = *config;
    learner_server_ = std::make_unique<GrpcServer>(TestServerOptions());
    learner_server_->RegisterService(&learner_, v1::Learner::service_full_name());
    ASSERT_TRUE(learner_server_->Start().ok());
    ASSERT_TRUE(learner_.publisher.Publish(dsm_test::RandomAdapterVersion(model_config_, 1)).ok());
    coordinator_server_ = std::make_unique<GrpcServer>(TestServerOptions());
    coordinator_server_->RegisterService(&coordinator_, v1::Coordinator::service_full_name());
    ASSERT_TRUE(coordinator_server_->Start().ok());
  }

  void TearDown() override {
    worker_.reset();
    coordinator_server_.reset();
    learner_server_.reset();
  }

  void StartWorker(int capacity) {
    DsmConfig config;
    config.runtime.threads = 1;
    config.model.path = model_dir_;
    config.model.max_batch = 8;
    config.model.max_len = 128;
    config.worker.roles = {"generator"};
    config.limits.max_n = 8;
    config.limits.max_completion_tokens = 64;
    LeaseClientOptions lease;
    lease.worker_id = "worker-a";
    lease.capacity = capacity;
    lease.initial_backoff = absl::Milliseconds(50);
    lease.max_backoff = absl::Milliseconds(200);
    auto worker = WorkerProcess::Create(config, learner_server_->address(), &metrics_, coordinator_server_->address(),
                                        lease);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = std::move(*worker);
    ASSERT_NE(worker_->lease_client(), nullptr);
  }

  // The worker's stream once it has adapter v1 (earlier streams, whose Hello
  // raced the adapter's arrival, are dropped: the worker reconnects), after
  // the Welcome. `hello` gets its Hello.
  std::shared_ptr<FakeLeaseStream> Connect(v1::Hello* hello) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::shared_ptr<FakeLeaseStream> stream = coordinator_.NextStream(kWait);
      if (stream == nullptr) break;
      std::optional<v1::WorkerMessage> first = stream->Next(kWait);
      if (!first.has_value() || !first->has_hello()) {
        ADD_FAILURE() << "the first message was not a Hello";
        return nullptr;
      }
      if (first->hello().adapter_versions_size() > 0) {
        if (hello != nullptr) *hello = first->hello();
        stream->Send(Welcome());
        return stream;
      }
      stream->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "come back with an adapter"));
    }
    ADD_FAILURE() << "the worker never connected with adapter v1";
    return nullptr;
  }

  // Waits until the worker's sampler has produced `count` completions.
  bool WaitForCompletions(int64_t count) {
    const absl::Time deadline = absl::Now() + kWait;
    while (worker_->generation()->completions() < count) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }

  std::string model_dir_;
  ModelConfig model_config_;
  PublishingLearner learner_;
  FakeCoordinator coordinator_;
  MetricsRegistry metrics_;
  std::unique_ptr<GrpcServer> learner_server_;
  std::unique_ptr<GrpcServer> coordinator_server_;
  std::unique_ptr<WorkerProcess> worker_;
};

TEST_F(LeaseClientTest, SaysHelloAndAnswersGenerateWorkWithTheGroup) {
  ASSERT_NO_FATAL_FAILURE(StartWorker(/*capacity=*/3));
  v1::Hello hello;
  std::shared_ptr<FakeLeaseStream> stream = Connect(&hello);
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(hello.worker_id(), "worker-a");
  EXPECT_FALSE(hello.hostname().empty());
  EXPECT_THAT(hello.roles(), ElementsAre(v1::ADAPTER_ROLE_GENERATOR));
  EXPECT_EQ(hello.capacity(), 3u);
  ASSERT_EQ(hello.adapter_versions_size(), 1);
  EXPECT_EQ(hello.adapter_versions(0).role(), v1::ADAPTER_ROLE_GENERATOR);
  EXPECT_EQ(hello.adapter_versions(0).version(), 1u);
  EXPECT_EQ(hello.active_lease_ids_size(), 0);
  EXPECT_EQ(hello.limits().max_n(), 8u);
  EXPECT_EQ(hello.limits().max_completion_tokens(), 64u);
  EXPECT_EQ(hello.model().vocab_size(), static_cast<uint32_t>(model_config_.vocab_size));
  EXPECT_EQ(hello.dsm_version(), DSM_VERSION);

  stream->Send(Generate("lease-1", 3));
  std::optional<v1::WorkerMessage> result = stream->Next(kWait, ResultFor("lease-1"));
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->result().has_generated()) << result->DebugString();
  const v1::GenerateResult& generated = result->result().generated();
  ASSERT_EQ(generated.completions_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const v1::Completion& c = generated.completions(i);
    EXPECT_EQ(c.index(), static_cast<uint32_t>(i));
    EXPECT_EQ(c.token_ids_size(), 5);
    EXPECT_EQ(c.logprobs_size(), 5);
    for (float lp : c.logprobs()) EXPECT_LE(lp, 0.0f);
    EXPECT_EQ(c.adapter_role(), v1::ADAPTER_ROLE_GENERATOR);
    EXPECT_EQ(c.adapter_version(), 1u);
    EXPECT_EQ(c.finish_reason(), v1::FINISH_REASON_LENGTH);
  }
  EXPECT_THAT(generated.prompt_token_ids(), ElementsAre(5, 17, 42, 3));
  EXPECT_EQ(generated.stats().completions(), 3u);
  EXPECT_EQ(generated.stats().completion_tokens(), 15u);

  // Unacked, the lease stays listed (renewed); acked, it is gone.
  EXPECT_TRUE(stream->Next(kWait, HeartbeatListing({"lease-1"})).has_value());
  stream->Send(Ack("lease-1", v1::LEASE_RESULT_STATUS_ACCEPTED));
  std::optional<v1::WorkerMessage> idle = stream->Next(kWait, HeartbeatListing({}));
  ASSERT_TRUE(idle.has_value());
  ASSERT_EQ(idle->heartbeat().adapter_versions_size(), 1);
  EXPECT_EQ(idle->heartbeat().adapter_versions(0).version(), 1u);
  EXPECT_EQ(worker_->lease_client()->results_unacked(), 0);
  EXPECT_THAT(metrics_.Exposition(), HasSubstr("dsm_worker_leases_total{outcome=\"generated\"} 1\n"));
}

TEST_F(LeaseClientTest, HeartbeatsListRunningLeasesAndACancelledLeaseIsNotReported) {
  ASSERT_NO_FATAL_FAILURE(StartWorker(/*capacity=*/4));
  std::shared_ptr<FakeLeaseStream> stream = Connect(nullptr);
  ASSERT_NE(stream, nullptr);
  // Both wait for adapter v2, so they are still running when heartbeats go.
  stream->Send(Generate("lease-a", 2, /*min_version=*/2));
  stream->Send(Generate("lease-b", 2, /*min_version=*/2));
  ASSERT_TRUE(stream->Next(kWait, HeartbeatListing({"lease-a", "lease-b"})).has_value());
  EXPECT_EQ(worker_->lease_client()->leases_running(), 2);

  v1::CoordinatorMessage cancel;
  cancel.mutable_cancel()->set_lease_id("lease-a");
  cancel.mutable_cancel()->set_reason("regranted");
  stream->Send(cancel);
  ASSERT_TRUE(stream->Next(kWait, HeartbeatListing({"lease-b"})).has_value());

  // v2 arrives: both groups run; only lease-b is reported.
  ASSERT_TRUE(learner_.publisher.Publish(dsm_test::RandomAdapterVersion(model_config_, 2)).ok());
  std::optional<v1::WorkerMessage> b = stream->Next(kWait, ResultFor("lease-b"));
  ASSERT_TRUE(b.has_value());
  ASSERT_EQ(b->result().generated().completions_size(), 2);
  EXPECT_EQ(b->result().generated().completions(0).adapter_version(), 2u);
  ASSERT_TRUE(WaitForCompletions(4));
  // Anything lease-a produced would be queued before this result.
  stream->Send(Generate("lease-c", 1));
  ASSERT_TRUE(stream->Next(kWait, ResultFor("lease-c")).has_value());
  for (const v1::WorkerMessage& m : stream->History()) {
    EXPECT_FALSE(m.has_result() && m.result().lease_id() == "lease-a") << m.DebugString();
  }
  EXPECT_THAT(metrics_.Exposition(), HasSubstr("dsm_worker_leases_total{outcome=\"cancelled\"} 1\n"));
}

TEST_F(LeaseClientTest, UnackedResultIsResentAfterTheStreamDropsAndTheWorkerReconnects) {
  ASSERT_NO_FATAL_FAILURE(StartWorker(/*capacity=*/2));
  std::shared_ptr<FakeLeaseStream> stream = Connect(nullptr);
  ASSERT_NE(stream, nullptr);
  stream->Send(Generate("lease-r", 2));
  std::optional<v1::WorkerMessage> first = stream->Next(kWait, ResultFor("lease-r"));
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->result().has_generated());
  const int64_t opened = worker_->lease_client()->streams_opened();

  // The coordinator goes away before acking.
  stream->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator restarting"));
  std::shared_ptr<FakeLeaseStream> again = coordinator_.NextStream(kWait);
  ASSERT_NE(again, nullptr);
  std::optional<v1::WorkerMessage> hello = again->Next(kWait);
  ASSERT_TRUE(hello.has_value() && hello->has_hello());
  EXPECT_THAT(hello->hello().active_lease_ids(), ElementsAre("lease-r"));
  EXPECT_EQ(hello->hello().worker_id(), "worker-a");
  again->Send(Welcome());
  std::optional<v1::WorkerMessage> resent = again->Next(kWait, ResultFor("lease-r"));
  ASSERT_TRUE(resent.has_value());
  EXPECT_EQ(resent->result().SerializeAsString(), first->result().SerializeAsString());
  again->Send(Ack("lease-r", v1::LEASE_RESULT_STATUS_DUPLICATE));
  ASSERT_TRUE(again->Next(kWait, HeartbeatListing({})).has_value());
  EXPECT_EQ(worker_->lease_client()->results_unacked(), 0);
  EXPECT_EQ(worker_->lease_client()->streams_opened(), opened + 1);
  EXPECT_THAT(metrics_.Exposition(), HasSubstr("dsm_worker_lease_stream_reconnects_total "));
}

TEST_F(LeaseClientTest, BadWorkGetsErrorsNamingTheField) {
  ASSERT_NO_FATAL_FAILURE(StartWorker(/*capacity=*/2));
  std::shared_ptr<FakeLeaseStream> stream = Connect(nullptr);
  ASSERT_NE(stream, nullptr);

  stream->Send(Generate("too-many", 100));
  std::optional<v1::WorkerMessage> n = stream->Next(kWait, ResultFor("too-many"));
  ASSERT_TRUE(n.has_value());
  ASSERT_TRUE(n->result().has_error()) << n->DebugString();
  EXPECT_EQ(n->result().error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(n->result().error().message(), "n: 100 exceeds max_n 8");
  EXPECT_FALSE(n->result().error().retryable());

  v1::CoordinatorMessage score;
  score.mutable_grant()->set_lease_id("score-1");
  score.mutable_grant()->mutable_score()->mutable_verify()->set_proof("x");
  stream->Send(score);
  std::optional<v1::WorkerMessage> s = stream->Next(kWait, ResultFor("score-1"));
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE(s->result().has_error());
  EXPECT_EQ(s->result().error().code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(s->result().error().message(), "score: this worker hosts no verifier role (no scoring engine)");
  EXPECT_FALSE(s->result().error().retryable());

  v1::CoordinatorMessage other_role = Generate("other-role", 1);
  other_role.mutable_grant()->mutable_generate()->set_adapter_role(v1::ADAPTER_ROLE_VERIFIER);
  stream->Send(other_role);
  std::optional<v1::WorkerMessage> r = stream->Next(kWait, ResultFor("other-role"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->result().error().code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(r->result().error().message(),
            "adapter_role: ADAPTER_ROLE_VERIFIER is not one of this worker's roles (ADAPTER_ROLE_GENERATOR)");

  // Over capacity (2 waiting for v3): RESOURCE_EXHAUSTED, retryable.
  stream->Send(Generate("wait-1", 1, /*min_version=*/3));
  stream->Send(Generate("wait-2", 1, /*min_version=*/3));
  stream->Send(Generate("wait-3", 1, /*min_version=*/3));
  std::optional<v1::WorkerMessage> full = stream->Next(kWait, ResultFor("wait-3"));
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->result().error().code(), static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_EQ(full->result().error().message(), "capacity: 2 leases already running, capacity 2");
  EXPECT_TRUE(full->result().error().retryable());
  // Let the two waiting leases finish before the worker goes.
  ASSERT_TRUE(learner_.publisher.Publish(dsm_test::RandomAdapterVersion(model_config_, 3)).ok());
  EXPECT_TRUE(stream->Next(kWait, ResultFor("wait-1")).has_value());
  EXPECT_TRUE(stream->Next(kWait, ResultFor("wait-2")).has_value());
}

TEST_F(LeaseClientTest, DrainFinishesInFlightWorkThenClosesTheStream) {
  ASSERT_NO_FATAL_FAILURE(StartWorker(/*capacity=*/2));
  std::shared_ptr<FakeLeaseStream> stream = Connect(nullptr);
  ASSERT_NE(stream, nullptr);
  stream->Send(Generate("lease-d", 2, /*min_version=*/2));
  ASSERT_TRUE(stream->Next(kWait, HeartbeatListing({"lease-d"})).has_value());

  v1::CoordinatorMessage drain;
  drain.mutable_drain()->set_reason("shutdown");
  drain.mutable_drain()->mutable_grace()->set_seconds(20);
  stream->Send(drain);
  // No new work while draining.
  stream->Send(Generate("lease-e", 1));
  std::optional<v1::WorkerMessage> refused = stream->Next(kWait, ResultFor("lease-e"));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->result().error().code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(refused->result().error().retryable());
  stream->Send(Ack("lease-e", v1::LEASE_RESULT_STATUS_ACCEPTED));
  // lease-d is still running: the stream stays open.
  EXPECT_FALSE(stream->WaitClientDone(absl::Milliseconds(300)));

  ASSERT_TRUE(learner_.publisher.Publish(dsm_test::RandomAdapterVersion(model_config_, 2)).ok());
  std::optional<v1::WorkerMessage> d = stream->Next(kWait, ResultFor("lease-d"));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->result().generated().completions_size(), 2);
  // Not acked yet: still open.
  EXPECT_FALSE(stream->WaitClientDone(absl::Milliseconds(300)));
  stream->Send(Ack("lease-d", v1::LEASE_RESULT_STATUS_ACCEPTED));
  EXPECT_TRUE(stream->WaitClientDone(kWait));
  EXPECT_EQ(worker_->lease_client()->results_unacked(), 0);
}

}  // namespace
}  // namespace dsm
