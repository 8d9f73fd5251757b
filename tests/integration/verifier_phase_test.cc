// Phase 1 / phase 3 of the pipeline against fake verifier and meta-verifier
// services on port 0: one GRPO group per labelled proof with the METHOD.md
// rewards, the cursor moving with each group (a rerun repeats nothing), and a
// scoring outage that stops the phase without recording anything.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/meta_verifier_phase.h"
#include "services/coordinator/pass_order.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "services/coordinator/verifier_phase.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

// Analysis i of every request says scores[i % 4]; index 3 fails its format.
class FakeScorers final : public v1::Verifier::CallbackService {
 public:
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override {
    ++calls;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (down) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "verifier down"));
      return reactor;
    }
    for (int id : {7, 8, 9}) response->add_prompt_token_ids(id);
    const double scores[] = {1, 0, 0.5, -1};
    for (uint32_t i = 0; i < request->n(); ++i) {
      v1::Analysis* a = response->add_analyses();
      a->mutable_completion()->set_index(i);
      a->mutable_completion()->set_text(absl::StrCat("analysis ", i));
      a->mutable_completion()->add_token_ids(static_cast<int>(10 + i));
      a->mutable_completion()->add_logprobs(-1.0f);
      a->mutable_completion()->set_adapter_version(3);
      const double s = scores[i % 4];
      if (s < 0) {
        a->mutable_score()->set_format(v1::FORMAT_STATUS_MISSING_SCORE_MARKER);
      } else {
        a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
        a->mutable_score()->set_value(s);
      }
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Every meta-verification's aggregate says 0.5; assessment i says 1, 0.5, 0. With `gather` > 0,
// each call is held (up to 2 s) until that many are in flight, as a batching scorer would see them.
class FakeMeta final : public v1::MetaVerifier::CallbackService {
 public:
  std::atomic<int> last_role{0};
  std::atomic<uint32_t> last_n{0};
  std::atomic<float> last_temperature{-1};  // -1: the request left it unset
  std::atomic<bool> no_valid_score{false};  // every meta-verification malformed: no aggregate
  std::atomic<int> gather{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> most_in_flight{0};
  std::atomic<bool> gathered{false};
  grpc::ServerUnaryReactor* Assess(grpc::CallbackServerContext* context, const v1::AssessRequest* request,
                                   v1::AssessResponse* response) override {
    if (gather > 0) {
      const int now = ++in_flight;
      for (int seen = most_in_flight; now > seen && !most_in_flight.compare_exchange_weak(seen, now);) {
      }
      if (now >= gather) gathered = true;
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      std::thread([this, reactor, response] {
        const absl::Time until = absl::Now() + absl::Seconds(2);
        while (!gathered && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
        response->set_aggregate_meta_score(0.5);
        --in_flight;
        reactor->Finish(grpc::Status::OK);
      }).detach();
      return reactor;
    }
    last_role = request->adapter_role();
    last_n = request->n();
    last_temperature = request->params().has_temperature() ? request->params().temperature() : -1.0f;
    if (!no_valid_score) response->set_aggregate_meta_score(0.5);
    for (int id : {5, 6}) response->add_prompt_token_ids(id);
    const double scores[] = {1, 0.5, 0};
    for (uint32_t i = 0; i < request->n() && request->params().return_logprobs(); ++i) {
      v1::Analysis* a = response->add_assessments();
      a->mutable_completion()->set_index(i);
      a->mutable_completion()->add_token_ids(static_cast<int>(20 + i));
      a->mutable_completion()->add_logprobs(-0.5f);
      a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
      a->mutable_score()->set_value(scores[i % 3]);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class VerifierPhaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcServerOptions o;
    o.drain = absl::ZeroDuration();
    o.shutdown_grace = absl::Milliseconds(100);
    server_ = std::make_unique<GrpcServer>(o);
    server_->RegisterService(&verifier_, v1::Verifier::service_full_name());
    server_->RegisterService(&meta_, v1::MetaVerifier::service_full_name());
    ASSERT_TRUE(server_->Start().ok());
    ScoringClientOptions c;
    c.verifier_target = server_->address();
    c.meta_verifier_target = server_->address();
    c.max_attempts = 2;
    c.initial_backoff = absl::Milliseconds(5);
    c.channel.max_attempts = 1;
    auto client = ScoringClient::Create(c, nullptr);
    ASSERT_TRUE(client.ok());
    scoring_ = *std::move(client);
    RunStoreOptions s;
    s.db.synchronous_full = false;
    auto store = RunStore::Open(dir_.File("state.db"), s);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    std::vector<v1::ImportRecordsRequest> records;
    records.emplace_back().mutable_problem()->set_problem_id("p1");
    records.back().mutable_problem()->set_statement("Given: a=b, b=c. Prove: a=c.");
    for (int i = 0; i < 3; ++i) {
      v1::LabelledProof* proof = records.emplace_back().mutable_proof();
      proof->set_proof_id(absl::StrCat("q", i));
      proof->set_problem_id("p1");
      proof->set_proof(absl::StrCat("proof ", i));
      proof->set_score(i == 0 ? 1.0 : 0.0);
    }
    v1::LabelledAnalysis* analysis = records.emplace_back().mutable_analysis();
    analysis->set_analysis_id("a0");
    analysis->set_proof_id("q1");
    analysis->set_analysis("Step 2 is wrong. \\boxed{0}");
    analysis->set_meta_score(1.0);
    auto imported = store_->ImportRecords(records, true);
    ASSERT_TRUE(imported.ok()) << imported.status();
    ASSERT_EQ(imported->imported(), 5u);
  }

  TestDir dir_;
  FakeScorers verifier_;
  FakeMeta meta_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<ScoringClient> scoring_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(VerifierPhaseTest, OneGroupPerProofWithTheVerifierReward) {
  VerifierPhaseOptions o;
  o.group_size = 4;
  int notified = 0;
  VerifierPhase phase(store_.get(), scoring_.get(), o, [&] { ++notified; });
  auto progress = phase.RunOnce();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->items, 3u);
  EXPECT_EQ(progress->groups_recorded, 3u);
  EXPECT_EQ(progress->format_failures, 3u);
  EXPECT_EQ(notified, 3);
  // q0 is labelled 1: analyses say 1, 0, 0.5, (format failure).
  auto q0 = store_->GetGroup("p2-i1-q0");
  ASSERT_TRUE(q0.ok() && q0->has_value());
  ASSERT_EQ((*q0)->samples.size(), 4u);
  EXPECT_EQ((*q0)->samples[0].sample.reward(), 1.0);
  EXPECT_EQ((*q0)->samples[1].sample.reward(), 0.0);
  EXPECT_EQ((*q0)->samples[2].sample.reward(), 0.5);
  EXPECT_EQ((*q0)->samples[3].sample.reward(), 0.0);
  EXPECT_EQ((*q0)->samples[3].reward_parts.at("r_format"), 0.0);
  EXPECT_EQ((*q0)->prompt_token_ids, (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ((*q0)->samples[1].sample.completion_token_ids(0), 11);
  EXPECT_EQ((*q0)->samples[1].sample.adapter_version(), 3u);
  EXPECT_EQ((*q0)->status, kGroupPending);
  // q1 is labelled 0: 1 -> 0, 0 -> 1, 0.5 -> 0.5.
  auto q1 = store_->GetGroup("p2-i1-q1");
  ASSERT_TRUE(q1.ok() && q1->has_value());
  EXPECT_EQ((*q1)->samples[0].sample.reward(), 0.0);
  EXPECT_EQ((*q1)->samples[1].sample.reward(), 1.0);
  EXPECT_EQ((*q1)->samples[2].sample.reward(), 0.5);
  // A rerun (or a restarted coordinator) starts after the cursor: nothing again.
  const int calls = verifier_.calls.load();
  VerifierPhase again(store_.get(), scoring_.get(), o);
  auto rerun = again.RunOnce();
  ASSERT_TRUE(rerun.ok());
  EXPECT_EQ(rerun->items, 0u);
  EXPECT_EQ(verifier_.calls.load(), calls);
}

TEST_F(VerifierPhaseTest, ASecondEpochSamplesNewGroupsWithItsOwnCursor) {
  VerifierPhaseOptions o;
  o.group_size = 2;
  VerifierPhase first(store_.get(), scoring_.get(), o);
  ASSERT_EQ(first.RunOnce()->items, 3u);
  o.epoch = 2;
  VerifierPhase second(store_.get(), scoring_.get(), o);
  EXPECT_NE(second.CursorName(), first.CursorName());
  auto progress = second.RunOnce();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->items, 3u);
  for (const char* id : {"p2-i1-q0", "p2-i1-q0-e2", "p2-i1-q2-e2"}) {
    auto g = store_->GetGroup(id);
    EXPECT_TRUE(g.ok() && g->has_value()) << id;
  }
  // Each epoch's cursor is at its end: neither pass repeats.
  EXPECT_EQ(VerifierPhase(store_.get(), scoring_.get(), o).RunOnce()->items, 0u);
}

// A shuffled pass (coordinator.shuffle) takes the proofs in its PassOrder, not import order, and a
// phase restarted mid-pass (a new VerifierPhase on the same store) carries on where it was.
TEST_F(VerifierPhaseTest, AShuffledPassTakesTheProofsInItsOrderAndResumesAtItsCursor) {
  VerifierPhaseOptions o;
  o.group_size = 2;
  o.max_proofs = 1;
  o.shuffle_seed = 8;
  const PassOrder order(PassOrder::PassSeed(8, o.phase, o.iteration, o.epoch, "proofs"));
  auto seqs = store_->ProofSeqs();
  ASSERT_TRUE(seqs.ok());
  auto expected = store_->ProofsAt(order.After(*seqs, 0));
  ASSERT_TRUE(expected.ok());
  std::vector<std::string> want;
  for (const StoredProof& p : *expected) want.push_back(absl::StrCat("p2-i1-", p.record.proof_id()));
  ASSERT_NE(want, (std::vector<std::string>{"p2-i1-q0", "p2-i1-q1", "p2-i1-q2"}));  // the seed shuffles them
  std::vector<std::string> got;
  auto take = [&](VerifierPhase& phase) {
    auto progress = phase.RunOnce();
    ASSERT_TRUE(progress.ok()) << progress.status();
    ASSERT_EQ(progress->items, 1u);
    for (const std::string& id : want) {
      auto g = store_->GetGroup(id);
      ASSERT_TRUE(g.ok());
      if (g->has_value() && std::find(got.begin(), got.end(), id) == got.end()) got.push_back(id);
    }
  };
  VerifierPhase phase(store_.get(), scoring_.get(), o);
  take(phase);
  VerifierPhase restarted(store_.get(), scoring_.get(), o);
  take(restarted);
  take(restarted);
  EXPECT_EQ(got, want);
  EXPECT_EQ(restarted.RunOnce()->items, 0u);
}

// The meta-verifier's pass over the labelled analyses is shuffled the same way (one analysis here:
// the pass still reaches it, and ends).
TEST_F(VerifierPhaseTest, AShuffledAnalysisPassReachesEveryAnalysis) {
  MetaVerifierPhaseOptions o;
  o.group_size = 2;
  o.shuffle_seed = 7;
  MetaVerifierPhase phase(store_.get(), scoring_.get(), o);
  auto progress = phase.RunOnce();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->items, 1u);
  auto g = store_->GetGroup("p3-i1-a0");
  EXPECT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ(MetaVerifierPhase(store_.get(), scoring_.get(), o).RunOnce()->items, 0u);
}

TEST_F(VerifierPhaseTest, TheEnhancedPhaseMultipliesTheMetaScore) {
  VerifierPhaseOptions o;
  o.phase = v1::PHASE_ENHANCED_VERIFIER_RL;
  o.group_size = 4;
  VerifierPhase phase(store_.get(), scoring_.get(), o);
  ASSERT_TRUE(phase.RunOnce().ok());
  auto q0 = store_->GetGroup("p4-i1-q0");
  ASSERT_TRUE(q0.ok() && q0->has_value());
  EXPECT_EQ((*q0)->samples[0].sample.reward(), 0.5);  // 1 · 1 · 0.5
  EXPECT_EQ((*q0)->samples[2].sample.reward(), 0.25);
  EXPECT_EQ((*q0)->samples[3].sample.reward(), 0.0);  // format failure, no meta call needed
  EXPECT_EQ((*q0)->samples[0].reward_parts.at("r_meta"), 0.5);
}

// R_meta is the mean of meta_samples meta-verifications at meta_params (greedy here).
TEST_F(VerifierPhaseTest, TheEnhancedPhaseAsksForItsMetaVerificationsCountAndTemperature) {
  VerifierPhaseOptions o;
  o.phase = v1::PHASE_ENHANCED_VERIFIER_RL;
  o.group_size = 4;
  o.meta_samples = 3;
  o.meta_params.set_temperature(0);
  ASSERT_TRUE(VerifierPhase(store_.get(), scoring_.get(), o).RunOnce().ok());
  EXPECT_EQ(meta_.last_n.load(), 3u);
  EXPECT_EQ(meta_.last_temperature.load(), 0.0f);
}

// The meta-verifications of all the proofs' analyses go out together, not a proof's at a time:
// the meta-verifier batches what it is sent at once.
TEST_F(VerifierPhaseTest, TheEnhancedPhaseAsksForEveryProofsMetaVerificationsAtOnce) {
  meta_.gather = 9;  // 3 proofs x 3 well-formed analyses (the 4th fails its format)
  VerifierPhaseOptions o;
  o.phase = v1::PHASE_ENHANCED_VERIFIER_RL;
  o.group_size = 4;
  o.max_concurrent_calls = 16;
  VerifierPhase phase(store_.get(), scoring_.get(), o);
  absl::StatusOr<ScoringPhaseProgress> done = phase.RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(meta_.most_in_flight.load(), 9);
  EXPECT_EQ(done->items, 3u);
  auto q2 = store_->GetGroup("p4-i1-q2");
  ASSERT_TRUE(q2.ok() && q2->has_value());
  EXPECT_EQ((*q2)->samples[0].reward_parts.at("r_meta"), 0.5);
}

TEST_F(VerifierPhaseTest, AnAnalysisTheMetaVerifierCannotJudgeIsLeftOutOfTheGroup) {
  meta_.no_valid_score = true;
  VerifierPhaseOptions o;
  o.phase = v1::PHASE_ENHANCED_VERIFIER_RL;
  o.group_size = 4;
  VerifierPhase phase(store_.get(), scoring_.get(), o);
  absl::StatusOr<ScoringPhaseProgress> done = phase.RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_GT(done->unjudged, 0u);
  // Only the format failure would be left (its reward needs no meta-verification; the others have
  // no R_meta): a group of one sample has nothing to compare, and the learner refuses it, so it is
  // not recorded; the cursor moves on.
  auto q0 = store_->GetGroup("p4-i1-q0");
  ASSERT_TRUE(q0.ok());
  EXPECT_FALSE(q0->has_value());
  EXPECT_GT(done->too_few_samples, 0u);
  VerifierPhase again(store_.get(), scoring_.get(), o);
  auto rerun = again.RunOnce();
  ASSERT_TRUE(rerun.ok());
  EXPECT_EQ(rerun->items, 0u);
}

TEST_F(VerifierPhaseTest, AScoringOutageStopsThePhaseWithoutRecording) {
  verifier_.down = true;
  VerifierPhaseOptions o;
  o.group_size = 2;
  VerifierPhase phase(store_.get(), scoring_.get(), o);
  auto progress = phase.RunOnce();
  ASSERT_FALSE(progress.ok());
  EXPECT_EQ(progress.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(progress.status().message(), HasSubstr("verifier down"));
  EXPECT_EQ(store_->GetCursor(phase.CursorName()).value(), 0);
  EXPECT_TRUE(store_->GroupsWithStatus(kGroupPending, 10)->empty());
  verifier_.down = false;  // back: the phase carries on from the first proof
  auto resumed = phase.RunOnce();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->items, 3u);
}

TEST_F(VerifierPhaseTest, MetaVerifierGroupsRewardAgreementWithTheMetaLabel) {
  MetaVerifierPhaseOptions o;
  o.group_size = 3;
  MetaVerifierPhase phase(store_.get(), scoring_.get(), o);
  auto progress = phase.RunOnce();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->items, 1u);
  EXPECT_EQ(meta_.last_role.load(), v1::ADAPTER_ROLE_META_VERIFIER);
  auto g = store_->GetGroup("p3-i1-a0");
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ((*g)->role, v1::ADAPTER_ROLE_META_VERIFIER);
  ASSERT_EQ((*g)->samples.size(), 3u);
  EXPECT_EQ((*g)->samples[0].sample.reward(), 1.0);  // label 1
  EXPECT_EQ((*g)->samples[1].sample.reward(), 0.5);
  EXPECT_EQ((*g)->samples[2].sample.reward(), 0.0);
  EXPECT_EQ((*g)->prompt_token_ids, (std::vector<int32_t>{5, 6}));
  // Phase 3 trains the verifier adapter on the same data.
  o.phase = v1::PHASE_ENHANCED_VERIFIER_RL;
  o.role = v1::ADAPTER_ROLE_VERIFIER;
  MetaVerifierPhase enhanced(store_.get(), scoring_.get(), o);
  ASSERT_TRUE(enhanced.RunOnce().ok());
  EXPECT_EQ(meta_.last_role.load(), v1::ADAPTER_ROLE_VERIFIER);
  auto v = store_->GetGroup("p4-i1-a0");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->role, v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ(enhanced.RunOnce()->items, 0u);
}

// A batch of analyses goes out side by side, and all of it is assessed before any group is
// recorded: the learner trains on none of a batch while the rest is still being sampled.
TEST_F(VerifierPhaseTest, MetaVerifierAssessesABatchSideBySide) {
  std::vector<v1::ImportRecordsRequest> more;
  for (int i = 1; i <= 2; ++i) {
    v1::LabelledAnalysis* analysis = more.emplace_back().mutable_analysis();
    analysis->set_analysis_id(absl::StrCat("a", i));
    analysis->set_proof_id(absl::StrCat("q", i));
    analysis->set_analysis("Step 1 is wrong. \\boxed{0}");
    analysis->set_meta_score(0.0);
  }
  ASSERT_TRUE(store_->ImportRecords(more, true).ok());
  meta_.gather = 3;
  MetaVerifierPhaseOptions o;
  o.max_concurrent_calls = 16;
  int recorded_while_assessing = 0;
  MetaVerifierPhase phase(store_.get(), scoring_.get(), o, [&] { recorded_while_assessing += meta_.in_flight.load(); });
  absl::StatusOr<ScoringPhaseProgress> done = phase.RunOnce();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->items, 3u);
  EXPECT_EQ(meta_.most_in_flight.load(), 3);
  EXPECT_EQ(recorded_while_assessing, 0);
}

}  // namespace
}  // namespace dsm
