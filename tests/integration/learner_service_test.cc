// The Learner service over real gRPC (server on port 0, generated stub):
// SubmitGroups acks and credits, DUPLICATE / REJECTED / DROPPED_* rules,
// training steps published on WatchAdapters, GetState, back-pressure,
// InitAdapter and Checkpoint. Tiny model: tests/fixtures llama_gqa_tied.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/metrics_registry.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "learner/checkpoint.h"
#include "model/llama_model.h"
#include "services/adapters/adapter_bulk_server.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/adapter_subscriber.h"
#include "services/learner/learner_core.h"
#include "services/learner/learner_metrics.h"
#include "services/learner/learner_process.h"
#include "services/learner/learner_service.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

LearnerOptions TestOptions() {
  LearnerOptions o;
  o.roles = {v1::ADAPTER_ROLE_GENERATOR, v1::ADAPTER_ROLE_VERIFIER};
  o.lora.r = 4;
  o.lora.lora_alpha = 8;
  o.trainer.learning_rate = 1e-2;
  o.seed = 7;
  o.max_buffered_groups = 16;
  o.groups_per_step = 2;
  o.max_policy_lag = 1;
  o.max_prompt_tokens = 16;
  o.max_completion_tokens = 16;
  o.max_n = 8;
  return o;
}

// A GRPO group of `rewards.size()` samples made with adapter `version`.
v1::ScoredGroup MakeGroup(const std::string& id, std::vector<double> rewards, uint64_t version = 0,
                          v1::AdapterRole role = v1::ADAPTER_ROLE_GENERATOR) {
  v1::ScoredGroup g;
  g.set_group_id(id);
  g.set_role(role);
  for (int t : {5, 17, 42, 99}) g.add_prompt_token_ids(t);
  int k = 0;
  for (double r : rewards) {
    v1::ScoredSample* s = g.add_samples();
    for (int j = 0; j < 3 + (k % 3); ++j) {
      s->add_completion_token_ids(10 + 7 * k + j);
      s->add_behaviour_logprobs(-5.7f);
    }
    s->set_adapter_version(version);
    s->set_reward(r);
    ++k;
  }
  return g;
}

// A client side of SubmitGroups that keeps the credit balance.
class GroupStream {
 public:
  explicit GroupStream(v1::Learner::Stub* stub) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    stream_ = stub->SubmitGroups(&context_);
    v1::SubmitGroupsResponse first;
    EXPECT_TRUE(stream_->Read(&first));
    EXPECT_FALSE(first.has_ack());
    balance_ = first.credits();
  }

  // Sends `group` and reads until its ack, adding every credit grant.
  v1::GroupAck Send(const v1::ScoredGroup& group) {
    v1::SubmitGroupsRequest request;
    *request.mutable_group() = group;
    EXPECT_TRUE(stream_->Write(request));
    if (balance_ > 0) --balance_;
    v1::SubmitGroupsResponse response;
    while (stream_->Read(&response)) {
      balance_ += response.credits();
      if (response.has_ack()) return response.ack();
    }
    ADD_FAILURE() << "stream ended before the ack of " << group.group_id();
    return {};
  }

  // Blocks until a response grants credits (a pure grant).
  uint32_t AwaitCredits() {
    v1::SubmitGroupsResponse response;
    while (stream_->Read(&response)) {
      EXPECT_FALSE(response.has_ack());
      balance_ += response.credits();
      if (response.credits() > 0) return response.credits();
    }
    return 0;
  }

  grpc::Status Close() {
    stream_->WritesDone();
    v1::SubmitGroupsResponse response;
    while (stream_->Read(&response)) balance_ += response.credits();
    return stream_->Finish();
  }

  uint32_t balance() const { return balance_; }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SubmitGroupsRequest, v1::SubmitGroupsResponse>> stream_;
  uint32_t balance_ = 0;
};

class LearnerServiceTest : public ::testing::Test {
 protected:
  // `bulk`: the learner's bulk endpoint runs beside the service, which
  // offers it, as `dsm serve learner` does without TLS.
  void Start(LearnerOptions options, bool bulk = false) {
    torch::set_num_threads(1);
    const std::string ref = model_test::ReferenceDir();
    ASSERT_FALSE(ref.empty());
    auto model = LlamaModel::Load(ref + "/llama_gqa_tied");
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    auto metrics = LearnerMetrics::Create(registry_);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    auto core = LearnerCore::Create(model_.get(), std::move(options), &publisher_, metrics_.get());
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = *std::move(core);
    LearnerServiceOptions service_options;
    if (bulk) {
      LearnerMetrics* sent = metrics_.get();
      bulk_ = std::make_unique<AdapterBulkServer>(&publisher_, AdapterBulkServerOptions{},
                                                  [sent](const EncodedAdapterVersion& v) {
                                                    sent->RecordAdapterVersionSent(v.bytes, /*bulk=*/true);
                                                  });
      ASSERT_TRUE(bulk_->Start().ok());
      service_options.bulk_port = bulk_->port();
    }
    service_ = std::make_unique<LearnerService>(core_.get(), &publisher_, metrics_.get(), service_options);
    GrpcServerOptions server_options;
    server_options.drain = absl::ZeroDuration();
    server_options.shutdown_grace = absl::Milliseconds(200);
    server_ = std::make_unique<GrpcServer>(server_options);
    server_->RegisterService(service_.get(), v1::Learner::service_full_name());
    ASSERT_TRUE(server_->Start().ok());
    stub_ = v1::Learner::NewStub(grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  // A started subscriber to the generator's versions, adding each to
  // `received` under `mu`.
  std::unique_ptr<AdapterSubscriber> SubscribeGenerator(absl::Mutex* mu, std::vector<AdapterVersionData>* received) {
    AdapterSubscriberOptions so;
    so.learner_address = server_->address();
    so.roles = {v1::ADAPTER_ROLE_GENERATOR};
    so.initial_backoff = absl::Milliseconds(20);
    auto subscriber = std::make_unique<AdapterSubscriber>(so, [mu, received](AdapterVersionData d) {
      absl::MutexLock lock(mu);
      received->push_back(std::move(d));
    });
    subscriber->Start();
    return subscriber;
  }

  void TearDown() override {
    if (core_) core_->Stop();
    if (bulk_) bulk_->Stop();
    server_.reset();
    service_.reset();
    core_.reset();
  }

  v1::LearnerState State() {
    grpc::ClientContext context;
    v1::LearnerState state;
    grpc::Status s = stub_->GetState(&context, {}, &state);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return state;
  }

  // Polls GetState until `done(state)` or 20 s.
  template <typename F>
  v1::LearnerState WaitState(F done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::LearnerState state = State();
    while (!done(state) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      state = State();
    }
    return state;
  }

  // InitAdapter: `role` becomes a copy of `from`.
  grpc::Status CopyAdapter(v1::AdapterRole role, v1::AdapterRole from, v1::InitAdapterResponse* response) {
    grpc::ClientContext context;
    v1::InitAdapterRequest request;
    request.set_role(role);
    request.set_copy_from(from);
    return stub_->InitAdapter(&context, request, response);
  }

  static const v1::RoleState* Role(const v1::LearnerState& s, v1::AdapterRole role) {
    for (const auto& r : s.roles()) {
      if (r.role() == role) return &r;
    }
    return nullptr;
  }
  // Step `n` trained and its generator adapter published: the state names a version only once
  // Publish has recorded it, a moment after the step's count goes up.
  static bool PublishedStep(const v1::LearnerState& s, uint64_t n) {
    const v1::RoleState* gen = Role(s, v1::ADAPTER_ROLE_GENERATOR);
    return s.step() >= n && gen != nullptr && gen->adapter_version() >= n;
  }

  std::string Metrics() const { return registry_.Exposition(); }
  // The exposition once it holds `line`, or after 10 s (for what the learner records after the
  // state or a subscriber already shows it).
  std::string MetricsOnceThere(const std::string& line) const {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::string metrics = Metrics();
    while (metrics.find(line) == std::string::npos && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      metrics = Metrics();
    }
    return metrics;
  }

  MetricsRegistry registry_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<LearnerMetrics> metrics_;
  AdapterPublisher publisher_;
  std::unique_ptr<AdapterBulkServer> bulk_;
  std::unique_ptr<LearnerCore> core_;
  std::unique_ptr<LearnerService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::Learner::Stub> stub_;
};

TEST_F(LearnerServiceTest, AcksGroupsDuplicatesAndRejectsWhileTheStreamStaysUsable) {
  LearnerOptions o = TestOptions();
  o.start_paused = true;
  Start(o);
  GroupStream stream(stub_.get());
  EXPECT_EQ(stream.balance(), 16u);  // the whole window: the only stream

  v1::GroupAck a = stream.Send(MakeGroup("run/p0/g1", {0, 1, 0.5, 1}));
  EXPECT_EQ(a.status(), v1::GROUP_STATUS_ACCEPTED) << a.message();
  EXPECT_EQ(a.accept_sequence(), 1u);
  EXPECT_EQ(a.group_id(), "run/p0/g1");
  EXPECT_EQ(stream.balance(), 15u);  // the accepted group holds its slot

  v1::GroupAck dup = stream.Send(MakeGroup("run/p0/g1", {0, 1, 0.5, 1}));
  EXPECT_EQ(dup.status(), v1::GROUP_STATUS_DUPLICATE);
  EXPECT_EQ(dup.accept_sequence(), 0u);
  EXPECT_EQ(stream.balance(), 15u);  // the credit came back with the ack

  v1::ScoredGroup bad = MakeGroup("run/p0/bad", {0, 1});
  bad.mutable_samples(1)->set_completion_token_ids(0, 999);
  v1::GroupAck rejected = stream.Send(bad);
  EXPECT_EQ(rejected.status(), v1::GROUP_STATUS_REJECTED);
  EXPECT_THAT(rejected.message(), HasSubstr("group.samples[1].completion_token_ids[0]: 999"));
  EXPECT_THAT(rejected.message(), HasSubstr("vocab_size 300"));

  v1::ScoredGroup short_logprobs = MakeGroup("run/p0/lp", {0, 1});
  short_logprobs.mutable_samples(0)->mutable_behaviour_logprobs()->RemoveLast();
  v1::GroupAck lp = stream.Send(short_logprobs);
  EXPECT_EQ(lp.status(), v1::GROUP_STATUS_REJECTED);
  EXPECT_THAT(lp.message(), HasSubstr("group.samples[0].behaviour_logprobs"));

  v1::ScoredGroup nan_reward = MakeGroup("run/p0/nan", {0, 1});
  nan_reward.mutable_samples(1)->set_reward(std::nan(""));
  EXPECT_THAT(stream.Send(nan_reward).message(), HasSubstr("group.samples[1].reward"));

  v1::ScoredGroup no_role = MakeGroup("run/p0/role", {0, 1});
  no_role.set_role(v1::ADAPTER_ROLE_BASE);
  EXPECT_THAT(stream.Send(no_role).message(), HasSubstr("group.role"));

  // The stream is still usable after the rejections.
  v1::GroupAck b = stream.Send(MakeGroup("run/p0/g2", {1, 0}));
  EXPECT_EQ(b.status(), v1::GROUP_STATUS_ACCEPTED) << b.message();
  EXPECT_EQ(b.accept_sequence(), 2u);
  EXPECT_EQ(stream.balance(), 14u);

  // A second stream re-sending an accepted id also gets DUPLICATE.
  {
    GroupStream other(stub_.get());
    EXPECT_EQ(other.balance(), 0u);  // the first stream holds the whole window
    EXPECT_EQ(other.Send(MakeGroup("run/p0/g2", {1, 0})).status(), v1::GROUP_STATUS_REJECTED);  // no credit
    EXPECT_TRUE(other.Close().ok());
  }
  EXPECT_TRUE(stream.Close().ok());

  // Both streams ended: their unused credits come back (OnDone may trail Finish).
  const v1::LearnerState state = WaitState([](const v1::LearnerState& s) { return s.outstanding_credits() == 0; });
  EXPECT_EQ(state.counters().accepted(), 2u);
  EXPECT_EQ(state.counters().duplicate(), 1u);
  EXPECT_EQ(state.counters().rejected(), 5u);
  EXPECT_EQ(state.counters().samples_accepted(), 6u);
  EXPECT_EQ(state.accept_sequence(), 2u);
  EXPECT_EQ(state.outstanding_credits(), 0u);
  EXPECT_EQ(Role(state, v1::ADAPTER_ROLE_GENERATOR)->buffered_groups(), 2u);
  EXPECT_THAT(Metrics(), HasSubstr("dsm_learner_groups_total{result=\"rejected\"} 5"));
  EXPECT_THAT(Metrics(), HasSubstr("dsm_learner_groups_total{result=\"accepted\"} 2"));
}

TEST_F(LearnerServiceTest, GroupWithEqualRewardsIsDroppedForNoVariance) {
  LearnerOptions o = TestOptions();
  o.start_paused = true;
  Start(o);
  GroupStream stream(stub_.get());
  v1::GroupAck ack = stream.Send(MakeGroup("flat", {0.5, 0.5, 0.5}));
  EXPECT_EQ(ack.status(), v1::GROUP_STATUS_DROPPED_NO_VARIANCE);
  EXPECT_THAT(ack.message(), HasSubstr("group.samples"));
  EXPECT_EQ(stream.balance(), 16u);
  EXPECT_TRUE(stream.Close().ok());
  EXPECT_EQ(State().counters().dropped_no_variance(), 1u);
  EXPECT_THAT(Metrics(), HasSubstr("dsm_learner_dropped_samples_total{reason=\"no_variance\"} 3"));
}

TEST_F(LearnerServiceTest, OffersTheBulkEndpointAtTheHostTheSubscriberDialled) {
  Start(TestOptions(), /*bulk=*/true);
  absl::Mutex mu;
  std::vector<AdapterVersionData> received;
  // At 127.0.0.1:port: the offer names 127.0.0.1.
  std::unique_ptr<AdapterSubscriber> subscriber = SubscribeGenerator(&mu, &received);
  GroupStream stream(stub_.get());
  EXPECT_EQ(stream.Send(MakeGroup("b/a", {0, 1, 1})).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_EQ(stream.Send(MakeGroup("b/b", {1, 0, 0.5})).status(), v1::GROUP_STATUS_ACCEPTED);
  {
    absl::MutexLock lock(&mu);
    auto has_v1 = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !received.empty(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&has_v1), absl::Seconds(20)));
    auto trained = core_->SnapshotAdapter(v1::ADAPTER_ROLE_GENERATOR);
    ASSERT_TRUE(trained.ok()) << trained.status();
    for (const auto& [name, t] : (*trained)->NamedTensors()) {
      ASSERT_TRUE(received.back().tensors.count(name)) << name;
      EXPECT_TRUE(torch::equal(received.back().tensors.at(name), t)) << name;
    }
  }
  EXPECT_TRUE(stream.Close().ok());
  EXPECT_EQ(subscriber->bulk_versions(), 1);
  EXPECT_EQ(subscriber->in_band_versions(), 0);
  EXPECT_EQ(subscriber->bulk_fallbacks(), 0);
  subscriber->Stop();
  // The learner counts the version once its bulk send completes, which may come after the
  // subscriber already holds it.
  const std::string counted = "dsm_adapter_versions_sent_total{path=\"bulk\"} 1";
  EXPECT_THAT(MetricsOnceThere(counted), HasSubstr(counted));
}

TEST_F(LearnerServiceTest, TrainsPublishesToSubscribersAndDropsStaleSamples) {
  Start(TestOptions());  // 2 groups per step, max_policy_lag 1

  absl::Mutex mu;
  std::vector<AdapterVersionData> received;
  std::unique_ptr<AdapterSubscriber> subscriber = SubscribeGenerator(&mu, &received);

  GroupStream stream(stub_.get());
  EXPECT_EQ(stream.Send(MakeGroup("s1/a", {0, 1, 1})).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_EQ(stream.Send(MakeGroup("s1/b", {1, 0, 0.5})).status(), v1::GROUP_STATUS_ACCEPTED);

  {
    absl::MutexLock lock(&mu);
    auto has_v1 = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !received.empty() && received.back().version >= 1; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&has_v1), absl::Seconds(20)));
    const AdapterVersionData& v = received.back();
    EXPECT_EQ(v.version, 1u);
    EXPECT_EQ(v.role, v1::ADAPTER_ROLE_GENERATOR);
    EXPECT_EQ(v.learner_step, 1u);
    EXPECT_THAT(v.adapter_config_json, HasSubstr("\"r\": 4"));
    auto trained = core_->SnapshotAdapter(v1::ADAPTER_ROLE_GENERATOR);
    ASSERT_TRUE(trained.ok()) << trained.status();
    const auto expected = (*trained)->NamedTensors();
    ASSERT_EQ(v.tensors.size(), expected.size());
    bool b_moved = false;
    for (const auto& [name, t] : expected) {
      ASSERT_TRUE(v.tensors.count(name)) << name;
      EXPECT_TRUE(torch::equal(v.tensors.at(name), t)) << name;
      if (name.find("lora_B") != std::string::npos) b_moved |= t.abs().sum().item<double>() > 0;
    }
    EXPECT_TRUE(b_moved) << "lora_B starts at zero; a step must move it";
  }

  // Two more steps (on-policy samples), then a sample of version 1 is stale
  // (current 3, max_policy_lag 1).
  for (int i = 0; i < 4; ++i) {
    const uint64_t version = core_->adapter_version(v1::ADAPTER_ROLE_GENERATOR);
    EXPECT_EQ(stream.Send(MakeGroup("s2/" + std::to_string(i), {0, 1, i * 0.1}, version)).status(),
              v1::GROUP_STATUS_ACCEPTED);
    if (i % 2 == 1) WaitState([](const v1::LearnerState& s) { return s.step() >= 2; });
  }
  v1::LearnerState state = WaitState([](const v1::LearnerState& s) { return PublishedStep(s, 3); });
  ASSERT_EQ(state.step(), 3u);
  const v1::GroupAck stale = stream.Send(MakeGroup("s3/stale", {0, 1}, /*version=*/1));
  EXPECT_EQ(stale.status(), v1::GROUP_STATUS_DROPPED_STALE);
  EXPECT_THAT(stale.message(), HasSubstr("group.samples[0].adapter_version: 1"));
  EXPECT_EQ(stream.Send(MakeGroup("s3/fresh", {0, 1}, /*version=*/2)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_TRUE(stream.Close().ok());

  state = State();
  EXPECT_EQ(state.step(), 3u);
  const v1::RoleState* gen = Role(state, v1::ADAPTER_ROLE_GENERATOR);
  ASSERT_NE(gen, nullptr);
  EXPECT_EQ(gen->adapter_version(), 3u);
  EXPECT_EQ(gen->optimizer_steps(), 3u);
  EXPECT_EQ(gen->buffered_groups(), 1u);
  ASSERT_TRUE(gen->has_last_step());
  EXPECT_EQ(gen->last_step().groups(), 2u);
  EXPECT_EQ(gen->last_step().samples(), 6u);
  EXPECT_GT(gen->last_step().tokens(), 0u);
  EXPECT_GT(gen->last_step().grad_norm(), 0);
  EXPECT_TRUE(state.has_last_step_at());
  EXPECT_EQ(Role(state, v1::ADAPTER_ROLE_VERIFIER)->adapter_version(), 0u);
  EXPECT_EQ(state.counters().accepted(), 7u);
  EXPECT_EQ(state.counters().dropped_stale(), 1u);
  EXPECT_EQ(state.counters().samples_trained(), 18u);
  EXPECT_EQ(state.max_policy_lag(), 1u);
  // The state counts step 3 before the step's version is published (and the gauge set).
  const std::string published = "dsm_adapter_version{role=\"generator\"} 3";
  const std::string metrics = MetricsOnceThere(published);
  EXPECT_THAT(metrics, HasSubstr("dsm_learner_steps_total{role=\"generator\"} 3"));
  EXPECT_THAT(metrics, HasSubstr("dsm_learner_dropped_samples_total{reason=\"stale\"} 2"));
  EXPECT_THAT(metrics, HasSubstr(published));
  EXPECT_THAT(metrics, HasSubstr("dsm_learner_step_seconds_count{role=\"generator\"} 3"));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("dsm_adapter_bytes_sent_total 0\n")));
  EXPECT_THAT(metrics, HasSubstr("dsm_adapter_versions_sent_total{path=\"bulk\"} 0\n"));  // none offered
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("dsm_adapter_versions_sent_total{path=\"in_band\"} 0\n")));
  subscriber->Stop();
}

TEST_F(LearnerServiceTest, FullBufferStopsCreditsUntilTrainingFreesSpace) {
  LearnerOptions o = TestOptions();
  o.max_buffered_groups = 4;
  o.start_paused = true;
  Start(o);
  GroupStream stream(stub_.get());
  ASSERT_EQ(stream.balance(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(stream.Send(MakeGroup("bp/" + std::to_string(i), {0, 1})).status(), v1::GROUP_STATUS_ACCEPTED);
  }
  EXPECT_EQ(stream.balance(), 0u);  // the client must wait now
  v1::LearnerState state = State();
  EXPECT_EQ(Role(state, v1::ADAPTER_ROLE_GENERATOR)->buffered_groups(), 4u);
  EXPECT_EQ(state.outstanding_credits(), 0u);
  // A group sent anyway is refused, and not buffered.
  const v1::GroupAck over = stream.Send(MakeGroup("bp/over", {0, 1}));
  EXPECT_EQ(over.status(), v1::GROUP_STATUS_REJECTED);
  EXPECT_THAT(over.message(), HasSubstr("credit"));
  EXPECT_EQ(Role(State(), v1::ADAPTER_ROLE_GENERATOR)->buffered_groups(), 4u);

  core_->SetPaused(false);  // two steps free the four slots
  uint32_t granted = 0;
  while (granted < 4) {
    const uint32_t c = stream.AwaitCredits();
    ASSERT_GT(c, 0u);
    granted += c;
    const v1::LearnerState s = State();
    EXPECT_LE(Role(s, v1::ADAPTER_ROLE_GENERATOR)->buffered_groups() + s.outstanding_credits(), 4u);
  }
  EXPECT_EQ(stream.balance(), 4u);
  EXPECT_EQ(State().step(), 2u);
  EXPECT_TRUE(stream.Close().ok());
}

TEST_F(LearnerServiceTest, FlushTrainsTheGroupsLeftBelowAFullBatch) {
  LearnerOptions o = TestOptions();
  o.groups_per_step = 4;
  const std::string dir = ::testing::TempDir() + "/learner_service_flush_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  o.trainer.checkpoint_dir = dir;
  o.trainer.checkpoint_every_steps = 0;  // only the flush writes one
  Start(o);
  GroupStream stream(stub_.get());
  for (const char* id : {"f/a", "f/b", "f/c", "f/d", "f/e"}) {
    ASSERT_EQ(stream.Send(MakeGroup(id, {0, 1, 0.5})).status(), v1::GROUP_STATUS_ACCEPTED);
  }
  v1::LearnerState state = WaitState([](const v1::LearnerState& s) { return s.step() >= 1; });
  ASSERT_EQ(state.step(), 1u);  // one full batch; one group left over
  EXPECT_EQ(Role(state, v1::ADAPTER_ROLE_GENERATOR)->buffered_groups(), 1u);

  grpc::ClientContext context;
  v1::FlushRequest request;
  request.set_role(v1::ADAPTER_ROLE_GENERATOR);
  v1::FlushResponse response;
  grpc::Status s = stub_->Flush(&context, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.steps(), 1u);
  EXPECT_EQ(response.groups(), 1u);
  EXPECT_EQ(response.published().version(), 2u);
  state = State();
  EXPECT_EQ(state.step(), 2u);
  EXPECT_EQ(Role(state, v1::ADAPTER_ROLE_GENERATOR)->buffered_groups(), 0u);
  EXPECT_EQ(state.counters().samples_trained(), 15u);
  // The phase's last adapter is on disk: a checkpoint of step 2 (and none of step 1).
  const auto written = ListCheckpoints(dir + "/generator");
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].first, 2);

  // Nothing buffered: the current version at once, no step.
  grpc::ClientContext again_context;
  v1::FlushResponse again;
  ASSERT_TRUE(stub_->Flush(&again_context, request, &again).ok());
  EXPECT_EQ(again.steps(), 0u);
  EXPECT_EQ(again.published().version(), 2u);
  EXPECT_EQ(ListCheckpoints(dir + "/generator").size(), 1u);  // step 2 is on disk already

  grpc::ClientContext bad_context;
  v1::FlushRequest bad;
  bad.set_role(v1::ADAPTER_ROLE_META_VERIFIER);  // not trained here
  v1::FlushResponse unused;
  s = stub_->Flush(&bad_context, bad, &unused);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("role"));
  EXPECT_TRUE(stream.Close().ok());
}

TEST_F(LearnerServiceTest, InitAdapterCopiesAnotherRoleAndCheckpointWritesEveryRole) {
  LearnerOptions o = TestOptions();
  const std::string dir = ::testing::TempDir() + "/learner_service_ckpt_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  o.trainer.checkpoint_dir = dir;
  o.trainer.checkpoint_every_steps = 0;
  Start(o);
  GroupStream stream(stub_.get());
  EXPECT_EQ(stream.Send(MakeGroup("c/a", {0, 1})).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_EQ(stream.Send(MakeGroup("c/b", {1, 0})).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_TRUE(stream.Close().ok());
  WaitState([](const v1::LearnerState& s) { return s.step() >= 1; });

  {
    v1::InitAdapterResponse response;
    grpc::Status s = CopyAdapter(v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_GENERATOR, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.published().role(), v1::ADAPTER_ROLE_VERIFIER);
    EXPECT_EQ(response.published().version(), 1u);
    auto gen = core_->SnapshotAdapter(v1::ADAPTER_ROLE_GENERATOR);
    auto ver = core_->SnapshotAdapter(v1::ADAPTER_ROLE_VERIFIER);
    ASSERT_TRUE(gen.ok() && ver.ok());
    const auto g = (*gen)->NamedTensors();
    const auto v = (*ver)->NamedTensors();
    for (const auto& [name, t] : g) EXPECT_TRUE(torch::equal(t, v.at(name))) << name;
    EXPECT_EQ(publisher_.latest_version(v1::ADAPTER_ROLE_VERIFIER), 1u);
  }
  {
    grpc::ClientContext context;
    v1::InitAdapterRequest request;
    request.set_role(v1::ADAPTER_ROLE_VERIFIER);
    v1::InitAdapterResponse response;
    grpc::Status s = stub_->InitAdapter(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("source"));
  }
  {
    grpc::ClientContext context;
    v1::CheckpointResponse response;
    grpc::Status s = stub_->Checkpoint(&context, {}, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.step(), 1u);
    EXPECT_EQ(response.accept_sequence(), 2u);
    EXPECT_TRUE(std::filesystem::exists(dir + "/generator"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/verifier"));
    EXPECT_EQ(State().checkpointed_accept_sequence(), 2u);
    // The checkpoint records the versions as published, so a restarted
    // learner never re-uses a version number the samplers already hold.
    auto generator = LatestValidCheckpoint(dir + "/generator", model_->config());
    auto verifier = LatestValidCheckpoint(dir + "/verifier", model_->config());
    ASSERT_TRUE(generator.ok() && generator->has_value());
    ASSERT_TRUE(verifier.ok() && verifier->has_value());
    EXPECT_EQ((*generator)->state.adapter_version, 1);
    EXPECT_EQ((*verifier)->state.adapter_version, 1);
  }
  {
    grpc::ClientContext context;
    v1::ServerInfo info;
    ASSERT_TRUE(stub_->GetServerInfo(&context, {}, &info).ok());
    EXPECT_EQ(info.service(), "dsm.v1.Learner");
    EXPECT_EQ(info.model().vocab_size(), 300u);
    EXPECT_EQ(info.limits().max_buffered_groups(), 16u);
    ASSERT_EQ(info.adapter_versions_size(), 2);
  }
  {
    // WatchAdapters for a role this learner does not train.
    grpc::ClientContext context;
    v1::WatchAdaptersRequest request;
    request.add_roles(v1::ADAPTER_ROLE_META_VERIFIER);
    auto reader = stub_->WatchAdapters(&context, request);
    v1::AdapterChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  std::filesystem::remove_all(dir);
}

// learner.warmup_steps reaches every role's trainer, and an adapter that InitAdapter replaces
// (phase 4's generator, copied from the verifier) starts from fresh optimizer moments at the
// bottom of the ramp again, not at the full rate its step numbers would give.
TEST_F(LearnerServiceTest, AnAdapterInitAdapterReplacesWarmsUpAgain) {
  absl::StatusOr<DsmConfig> config = ParseConfig(
      "run: {name: w}\nlearner: {warmup_steps: 2, grpo: {importance_correction: false}}\n", "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<LearnerOptions> from_config = LearnerOptionsFromConfig(*config);
  ASSERT_TRUE(from_config.ok()) << from_config.status();
  EXPECT_EQ(from_config->trainer.warmup_steps, 2);
  EXPECT_FALSE(from_config->trainer.grpo.importance_correction);  // learner.grpo.* reaches the trainer

  LearnerOptions o = TestOptions();
  o.trainer.warmup_steps = 2;
  Start(o);
  // The generator's learning rate once it has taken `steps` optimizer steps.
  auto rate_after = [this](uint64_t steps) {
    const v1::LearnerState s = WaitState([steps](const v1::LearnerState& s) {
      const v1::RoleState* g = Role(s, v1::ADAPTER_ROLE_GENERATOR);
      return g != nullptr && g->optimizer_steps() >= steps && g->adapter_version() >= steps;
    });
    const v1::RoleState* g = Role(s, v1::ADAPTER_ROLE_GENERATOR);
    EXPECT_TRUE(g != nullptr && g->optimizer_steps() == steps) << steps;
    return g == nullptr ? -1.0 : g->last_step().learning_rate();
  };
  GroupStream stream(stub_.get());
  EXPECT_EQ(stream.Send(MakeGroup("w/a", {0, 1}, 0)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_EQ(stream.Send(MakeGroup("w/b", {1, 0}, 0)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_DOUBLE_EQ(rate_after(1), 0.5e-2);
  EXPECT_EQ(stream.Send(MakeGroup("w/c", {0, 1}, 1)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_EQ(stream.Send(MakeGroup("w/d", {1, 0}, 1)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_DOUBLE_EQ(rate_after(2), 1e-2);
  {
    v1::InitAdapterResponse response;
    grpc::Status s = CopyAdapter(v1::ADAPTER_ROLE_GENERATOR, v1::ADAPTER_ROLE_VERIFIER, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.published().version(), 3u);
  }
  EXPECT_EQ(stream.Send(MakeGroup("w/e", {0, 1}, 3)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_EQ(stream.Send(MakeGroup("w/f", {1, 0}, 3)).status(), v1::GROUP_STATUS_ACCEPTED);
  EXPECT_DOUBLE_EQ(rate_after(3), 0.5e-2);
  EXPECT_TRUE(stream.Close().ok());
}

TEST_F(LearnerServiceTest, InitAdapterIsDurableAcrossARestart) {
  LearnerOptions o = TestOptions();
  o.roles = {v1::ADAPTER_ROLE_GENERATOR};
  o.max_policy_lag = 100;
  const std::string dir = ::testing::TempDir() + "/learner_service_init_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  o.trainer.checkpoint_dir = dir;
  o.trainer.checkpoint_every_steps = 1;
  Start(o);
  GroupStream stream(stub_.get());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(stream.Send(MakeGroup(absl::StrCat("d/", i), {0, 1})).status(), v1::GROUP_STATUS_ACCEPTED);
  }
  EXPECT_TRUE(stream.Close().ok());
  WaitState([](const v1::LearnerState& s) { return PublishedStep(s, 2); });  // checkpoints of steps 1 and 2

  // A phase change replaces the adapter: the replacement must be what a
  // restarted learner resumes from, not the older checkpoints.
  AdapterSource fresh;
  fresh.seed = 99;
  auto version = core_->InitAdapter(v1::ADAPTER_ROLE_GENERATOR, fresh);
  ASSERT_TRUE(version.ok()) << version.status();
  auto replaced = core_->SnapshotAdapter(v1::ADAPTER_ROLE_GENERATOR);
  ASSERT_TRUE(replaced.ok());
  core_->Stop();

  auto model = LlamaModel::Load(model_test::ReferenceDir() + "/llama_gqa_tied");
  ASSERT_TRUE(model.ok());
  MetricsRegistry registry;
  auto metrics = LearnerMetrics::Create(registry);
  ASSERT_TRUE(metrics.ok());
  AdapterPublisher publisher;
  auto restarted = LearnerCore::Create(model->get(), o, &publisher, metrics->get());
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  auto resumed = (*restarted)->SnapshotAdapter(v1::ADAPTER_ROLE_GENERATOR);
  ASSERT_TRUE(resumed.ok());
  const auto want = (*replaced)->NamedTensors();
  const auto got = (*resumed)->NamedTensors();
  for (const auto& [name, t] : want) EXPECT_TRUE(torch::equal(t, got.at(name))) << name;
  EXPECT_GE((*restarted)->adapter_version(v1::ADAPTER_ROLE_GENERATOR), *version);
  // The step count and the data position carry on.
  const LearnerSnapshot state = (*restarted)->State();
  EXPECT_EQ(state.step, 2u);
  EXPECT_EQ(state.checkpointed_accept_sequence, 4u);
  (*restarted)->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dsm
