// The coordinator's GroupFeeder against a fake learner (a small sync gRPC
// service on a fixed port): groups go out only as credits allow, acks are
// stored, and after the learner restarts with a checkpoint covering part of
// what it had accepted, exactly the uncovered groups are sent again.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_server.h"
#include "services/coordinator/group_feeder.h"
#include "services/coordinator/run_store.h"
#include "tests/integration/learner_client.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

// Accepts every new group_id (DUPLICATE for one seen before), grants
// `window` credits at the start and one per ack.
class FakeLearner final : public v1::Learner::Service {
 public:
  FakeLearner(uint64_t checkpointed, uint32_t window) : checkpointed_(checkpointed), window_(window) {
    sequence_ = checkpointed;
  }

  grpc::Status SubmitGroups(grpc::ServerContext*,
                            grpc::ServerReaderWriter<v1::SubmitGroupsResponse, v1::SubmitGroupsRequest>* stream)
      override {
    v1::SubmitGroupsResponse grant;
    grant.set_credits(window_);
    stream->Write(grant);
    int64_t balance = window_;
    v1::SubmitGroupsRequest request;
    while (stream->Read(&request)) {
      v1::SubmitGroupsResponse response;
      v1::GroupAck* ack = response.mutable_ack();
      ack->set_group_id(request.group().group_id());
      absl::MutexLock lock(&mu_);
      received_.push_back(request.group().group_id());
      if (--balance < 0) over_credit_ = true;
      if (seen_.insert(request.group().group_id()).second) {
        ack->set_status(v1::GROUP_STATUS_ACCEPTED);
        ack->set_accept_sequence(++sequence_);
      } else {
        ack->set_status(v1::GROUP_STATUS_DUPLICATE);
      }
      response.set_credits(1);
      ++balance;
      stream->Write(response);
    }
    return grpc::Status::OK;
  }
  grpc::Status GetState(grpc::ServerContext*, const v1::GetStateRequest*, v1::LearnerState* state) override {
    state->set_checkpointed_accept_sequence(checkpointed_);
    return grpc::Status::OK;
  }

  std::vector<std::string> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  bool over_credit() {
    absl::MutexLock lock(&mu_);
    return over_credit_;
  }

 private:
  const uint64_t checkpointed_;
  const uint32_t window_;
  absl::Mutex mu_;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> received_ ABSL_GUARDED_BY(mu_);
  bool over_credit_ ABSL_GUARDED_BY(mu_) = false;
};

std::unique_ptr<GrpcServer> Serve(FakeLearner* learner, int port) {
  GrpcServerOptions o;
  o.port = port;
  o.drain = absl::ZeroDuration();
  o.shutdown_grace = absl::Milliseconds(100);
  auto server = std::make_unique<GrpcServer>(o);
  server->RegisterService(learner, v1::Learner::service_full_name());
  EXPECT_TRUE(server->Start().ok());
  return server;
}

GroupRecord Group(int i) {
  GroupRecord g;
  g.group_id = absl::StrCat("g", i);
  g.role = v1::ADAPTER_ROLE_GENERATOR;
  g.prompt_token_ids = {1, 2};
  for (int s = 0; s < 2; ++s) {
    SampleRecord r;
    r.sample.add_completion_token_ids(3 + s);
    r.sample.add_behaviour_logprobs(-1.0f);
    r.sample.set_reward(s);
    g.samples.push_back(r);
  }
  return g;
}

template <typename F>
bool WaitFor(F done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time until = absl::Now() + timeout;
  while (!done() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
  return done();
}

TEST(GroupFeeder, SendsWithinCreditsAndResendsWhatTheRestartedLearnerLost) {
  TestDir dir;
  RunStoreOptions store_options;
  store_options.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), store_options);
  ASSERT_TRUE(store.ok()) << store.status();
  const int port = dsm_test::FreePort();
  auto learner = std::make_unique<FakeLearner>(/*checkpointed=*/0, /*window=*/2);
  auto server = Serve(learner.get(), port);

  GroupFeederOptions options;
  options.learner_target = absl::StrCat("127.0.0.1:", port);
  options.initial_backoff = absl::Milliseconds(20);
  GroupFeeder feeder(store->get(), options);
  for (int i = 1; i <= 6; ++i) ASSERT_TRUE((*store)->RecordGroup(Group(i), std::nullopt, absl::Now()).ok());
  feeder.Wake();
  auto accepted = [&](size_t n) {
    return [&, n] {
      auto groups = (*store)->GroupsWithStatus(v1::GROUP_STATUS_ACCEPTED, 100);
      return groups.ok() && groups->size() == n;
    };
  };
  ASSERT_TRUE(WaitFor(accepted(6))) << learner->received().size() << " received";
  EXPECT_FALSE(learner->over_credit()) << "sent beyond the learner's credits";
  EXPECT_EQ(learner->received().size(), 6u);
  auto g6 = (*store)->GetGroup("g6");
  ASSERT_TRUE(g6.ok() && g6->has_value());
  EXPECT_EQ((*g6)->accept_sequence, 6u);

  // The learner is killed; it restarts from a checkpoint covering the first
  // 4 accepted groups, and knows none of the group ids any more.
  server.reset();
  learner = std::make_unique<FakeLearner>(/*checkpointed=*/4, /*window=*/2);
  server = Serve(learner.get(), port);
  ASSERT_TRUE(WaitFor([&] { return learner->received().size() >= 2; }));
  absl::SleepFor(absl::Milliseconds(300));  // nothing more may come
  EXPECT_EQ(learner->received(), (std::vector<std::string>{"g5", "g6"}));
  // New groups flow to the restarted learner.
  ASSERT_TRUE((*store)->RecordGroup(Group(7), std::nullopt, absl::Now()).ok());
  feeder.Wake();
  ASSERT_TRUE(WaitFor(accepted(7)));
  EXPECT_EQ(learner->received(), (std::vector<std::string>{"g5", "g6", "g7"}));
  EXPECT_GE(feeder.counters().reconnects, 1u);
  EXPECT_EQ(feeder.counters().resent, 2u);
  feeder.Stop();
}

}  // namespace
}  // namespace dsm
