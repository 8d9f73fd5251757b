// The coordinator's ScoringClient against fake verifier replicas on port 0:
// calls spread over every replica, a failing replica's calls are retried on
// another, and a call that keeps failing is an error (counted), never a score.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_server.h"
#include "common/metrics_registry.h"
#include "common/seed_mix.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/scoring_client.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

class FakeVerifier final : public v1::Verifier::CallbackService {
 public:
  std::atomic<int> calls{0};
  std::atomic<int> fail_code{0};  // 0 = answer; else the grpc::StatusCode to fail with
  absl::Mutex mu;
  std::vector<v1::VerifyRequest> received ABSL_GUARDED_BY(mu);

  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override {
    ++calls;
    {
      absl::MutexLock lock(&mu);
      received.push_back(*request);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (fail_code.load() != 0) {
      reactor->Finish(grpc::Status(static_cast<grpc::StatusCode>(fail_code.load()), "scripted failure"));
      return reactor;
    }
    response->set_aggregate_score(1.0);
    response->set_request_id(request->request_id());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class ScoringClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      replicas_.push_back(std::make_unique<FakeVerifier>());
      GrpcServerOptions o;
      o.drain = absl::ZeroDuration();
      o.shutdown_grace = absl::Milliseconds(100);
      servers_.push_back(std::make_unique<GrpcServer>(o));
      servers_.back()->RegisterService(replicas_.back().get(), v1::Verifier::service_full_name());
      ASSERT_TRUE(servers_.back()->Start().ok());
    }
    ScoringClientOptions o;
    o.verifier_target = absl::StrCat("ipv4:", servers_[0]->address(), ",", servers_[1]->address());
    o.deadline = absl::Seconds(10);
    o.max_attempts = 3;
    o.initial_backoff = absl::Milliseconds(10);
    o.channel.max_attempts = 1;  // only the client's own retries, so the counts are exact
    options_ = o;
    auto client = ScoringClient::Create(o, &registry_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  v1::VerifyRequest Request(int i) {
    v1::VerifyRequest r;
    r.set_problem("Show a = c.");
    r.set_proof("a = b, b = c.");
    r.set_request_id(absl::StrCat("r", i));
    return r;
  }

  // Every request the replicas saw, in the order each replica got them.
  std::vector<v1::VerifyRequest> Received() {
    std::vector<v1::VerifyRequest> all;
    for (auto& r : replicas_) {
      absl::MutexLock lock(&r->mu);
      all.insert(all.end(), r->received.begin(), r->received.end());
    }
    return all;
  }

  ScoringClientOptions options_;
  MetricsRegistry registry_;
  std::vector<std::unique_ptr<FakeVerifier>> replicas_;
  std::vector<std::unique_ptr<GrpcServer>> servers_;
  std::unique_ptr<ScoringClient> client_;
};

TEST_F(ScoringClientTest, CallsSpreadOverEveryReplica) {
  // Round robin skips a replica whose connection is still being made: on a loaded machine the
  // first calls may all go to the replica that connected first. Once each has had a call, both
  // are connected; from then on the calls must take turns.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (replicas_[0]->calls.load() == 0 || replicas_[1]->calls.load() == 0) {
    ASSERT_LT(absl::Now(), deadline) << "the calls never reached both replicas: " << replicas_[0]->calls.load()
                                     << " and " << replicas_[1]->calls.load();
    ASSERT_TRUE(client_->Verify(Request(0)).ok());
    absl::SleepFor(absl::Milliseconds(5));
  }
  replicas_[0]->calls = 0;
  replicas_[1]->calls = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = client_->Verify(Request(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->request_id(), absl::StrCat("r", i));
  }
  EXPECT_GE(replicas_[0]->calls.load(), 5);
  EXPECT_GE(replicas_[1]->calls.load(), 5);
  EXPECT_EQ(replicas_[0]->calls.load() + replicas_[1]->calls.load(), 20);
}

TEST_F(ScoringClientTest, AFailingReplicasCallsAreRetriedElsewhere) {
  replicas_[0]->fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  for (int i = 0; i < 10; ++i) {
    auto r = client_->Verify(Request(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->aggregate_score(), 1.0);
  }
  EXPECT_EQ(replicas_[1]->calls.load(), 10);
  EXPECT_GE(replicas_[0]->calls.load(), 1);
  EXPECT_THAT(registry_.Exposition(), HasSubstr("dsm_coordinator_scoring_calls_total{service=\"verifier\",code=\"OK\"} 10"));
}

TEST_F(ScoringClientTest, ACallThatKeepsFailingIsAnErrorNotAScore) {
  replicas_[0]->fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  replicas_[1]->fail_code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  auto r = client_->Verify(Request(0));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("Verify: scripted failure"));
  EXPECT_EQ(replicas_[0]->calls.load() + replicas_[1]->calls.load(), 3);  // max_attempts
  const std::string metrics = registry_.Exposition();
  EXPECT_THAT(metrics, HasSubstr("dsm_coordinator_scoring_calls_total{service=\"verifier\",code=\"UNAVAILABLE\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("dsm_coordinator_scoring_retries_total{service=\"verifier\"} 2"));
}

TEST_F(ScoringClientTest, InvalidArgumentIsNotRetried) {
  replicas_[0]->fail_code = static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT);
  replicas_[1]->fail_code = static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT);
  auto r = client_->Verify(Request(0));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(replicas_[0]->calls.load() + replicas_[1]->calls.load(), 1);
  EXPECT_FALSE(client_->Assess(v1::AssessRequest()).ok());  // no meta-verifier configured
}

TEST_F(ScoringClientTest, ARunsSeedGivesEachRequestItsOwnReproducibleSeed) {
  ScoringClientOptions o = options_;
  o.seed = 1234;
  auto seeded = ScoringClient::Create(o, nullptr);
  ASSERT_TRUE(seeded.ok()) << seeded.status();
  v1::VerifyRequest own = Request(2);
  own.mutable_params()->set_seed(7);  // a request's own seed stands
  for (const v1::VerifyRequest& r : {Request(0), Request(1), Request(0), own}) ASSERT_TRUE((*seeded)->Verify(r).ok());
  ASSERT_TRUE(client_->Verify(Request(0)).ok());  // no run seed: the server draws one
  std::map<std::string, std::vector<uint64_t>> seeds;  // request id -> seeds sent
  bool unseeded = false;
  for (const v1::VerifyRequest& r : Received()) {
    if (!r.params().has_seed()) {
      unseeded = true;
      continue;
    }
    seeds[r.request_id()].push_back(r.params().seed());
  }
  EXPECT_TRUE(unseeded);
  EXPECT_THAT(seeds["r0"], ::testing::ElementsAre(NamedSeed(1234, "r0"), NamedSeed(1234, "r0")));
  EXPECT_THAT(seeds["r1"], ::testing::ElementsAre(NamedSeed(1234, "r1")));
  EXPECT_NE(seeds["r0"][0], seeds["r1"][0]);
  EXPECT_THAT(seeds["r2"], ::testing::ElementsAre(7u));
}

TEST_F(ScoringClientTest, ARequiredAdapterVersionIsEveryLaterRequestsFloor) {
  client_->RequireAdapterVersion(v1::ADAPTER_ROLE_VERIFIER, 5);
  client_->RequireAdapterVersion(v1::ADAPTER_ROLE_VERIFIER, 3);  // never lowers it
  client_->RequireAdapterVersion(v1::ADAPTER_ROLE_GENERATOR, 9);
  EXPECT_EQ(client_->RequiredAdapterVersion(v1::ADAPTER_ROLE_VERIFIER), 5u);
  v1::VerifyRequest higher = Request(1);
  higher.set_min_adapter_version(8);  // a request's own higher minimum stands
  v1::VerifyRequest generator = Request(2);
  generator.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
  for (const v1::VerifyRequest& r : {Request(0), higher, generator}) ASSERT_TRUE(client_->Verify(r).ok());
  std::map<std::string, uint64_t> floors;
  for (const v1::VerifyRequest& r : Received()) floors[r.request_id()] = r.min_adapter_version();
  EXPECT_EQ(floors["r0"], 5u);  // UNSPECIFIED grades with the verifier
  EXPECT_EQ(floors["r1"], 8u);
  EXPECT_EQ(floors["r2"], 9u);
}

}  // namespace
}  // namespace dsm
