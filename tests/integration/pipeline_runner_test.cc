// The pipeline runner over one iteration against mock peers: fake verifier
// and meta-verifier services, a scripted worker on the lease dispatcher, and
// a gMock learner stub for InitAdapter. Every phase runs in METHOD.md's
// order with its events, records its groups, and the run ends SUCCEEDED.
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_server.h"
#include "common/seed_mix.h"
#include "dsm/v1/learner_mock.grpc.pb.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/pipeline_runner.h"
#include "services/scoring/score_parser.h"
#include "tests/integration/fake_scoring.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using ::testing::_;
using ::testing::Return;

using dsm_test::FakeScoring;
using dsm_test::kAnalysis;

// Every proof is worth 0.5 and no analysis hallucinates.
class GraderStub final : public Grader {
 public:
  absl::StatusOr<GradedProof> GradeProof(const std::string&, const std::string&) const override {
    GradedProof g;
    g.score = 0.5;
    return g;
  }
  absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string&, const std::string&,
                                               const std::string&) const override {
    return GradedAnalysis{};
  }
};

PromptTemplate Template(const std::string& role, const std::string& body, const std::string& header = "") {
  auto t = PromptTemplate::Parse(absl::StrCat("role: ", role,
                                              "\nevaluation_marker: Here is my evaluation of the solution:\n"
                                              "score_marker: Based on my evaluation, the final overall score should "
                                              "be:\n",
                                              header, "---\n", body),
                                 role + ".txt");
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// One iteration's data (a problem, a labelled proof and analysis, a held-out problem and proof),
// fake scorers, a scripted worker answering every grant with proofs and self-evaluations, and a
// learner stub whose every Flush publishes the next version.
class PipelineRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunStoreOptions store_options;
    store_options.db.synchronous_full = false;
    auto store = RunStore::Open(dir_.File("state.db"), store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ASSERT_TRUE(store_->CreateRun("pipeline", "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
    std::vector<v1::ImportRecordsRequest> records(3);
    records[0].mutable_problem()->set_problem_id("p1");
    records[0].mutable_problem()->set_statement("Given: a=b, b=c. Prove: a=c.");
    auto* proof = records[1].mutable_proof();
    proof->set_proof_id("q1");
    proof->set_problem_id("p1");
    proof->set_proof("1. a=b, so a=b\n2. b=c, so a=c\nThus a=c.");
    proof->set_score(1);
    auto* analysis = records[2].mutable_analysis();
    analysis->set_analysis_id("a1");
    analysis->set_proof_id("q1");
    analysis->set_analysis(kAnalysis);
    analysis->set_meta_score(1);
    // A held-out problem and proof: evaluated, never trained on.
    auto* eval_problem = records.emplace_back().mutable_problem();
    eval_problem->set_problem_id("e1");
    eval_problem->set_statement("Given: x=y. Prove: x=y.");
    eval_problem->set_split(v1::DATASET_SPLIT_EVAL);
    auto* eval_proof = records.emplace_back().mutable_proof();
    eval_proof->set_proof_id("qe");
    eval_proof->set_problem_id("e1");
    eval_proof->set_proof("Thus x=y.");
    eval_proof->set_score(0.5);
    ASSERT_TRUE(store_->ImportRecords(records, true).ok());

    GrpcServerOptions server_options;
    server_options.drain = absl::ZeroDuration();
    server_options.shutdown_grace = absl::Milliseconds(100);
    server_ = std::make_unique<GrpcServer>(server_options);
    scoring_.RegisterOn(*server_);
    ASSERT_TRUE(server_->Start().ok());
    dispatcher_ = std::make_unique<LeaseDispatcher>(store_.get(), DispatcherOptions{}, nullptr);
    v1::Hello hello;
    hello.set_worker_id("w");
    hello.add_roles(v1::ADAPTER_ROLE_GENERATOR);
    hello.set_capacity(2);
    auto session = dispatcher_->Connect(
        hello,
        [this](v1::CoordinatorMessage m) {
          absl::MutexLock lock(&mu_);
          if (m.has_grant()) grants_.push_back(m.grant());
          return true;
        },
        [](const absl::Status&) {});
    ASSERT_TRUE(session.ok());
    session_ = *session;
    worker_ = std::thread([this] { Work(); });

    EXPECT_CALL(learner_, InitAdapter(_, _, _))
        .WillOnce([](grpc::ClientContext*, const v1::InitAdapterRequest& r, v1::InitAdapterResponse*) {
          EXPECT_EQ(r.role(), v1::ADAPTER_ROLE_GENERATOR);
          EXPECT_EQ(r.copy_from(), v1::ADAPTER_ROLE_VERIFIER);
          return grpc::Status::OK;
        });
    EXPECT_CALL(learner_, Flush(_, _, _))
        .WillRepeatedly([this](grpc::ClientContext*, const v1::FlushRequest& r, v1::FlushResponse* response) {
          flushed_.push_back(r.role());
          response->mutable_published()->set_role(r.role());
          response->mutable_published()->set_version(flushed_.size());
          return grpc::Status::OK;
        });

    options_.verifier.group_size = 2;
    options_.meta_verifier.group_size = 2;
    options_.generator.group_size = 2;
    options_.generator.verifications = 2;
    options_.auto_label.proofs_per_problem = 2;
    options_.auto_label.n = 2;
    options_.auto_label.m = 1;
    options_.auto_label.rule.k = 1;  // one confirmed lowest analysis is enough here
    options_.verifier_epochs = 2;    // phases 1 and 2 pass over their data twice, phase 3 once
    options_.meta_verifier_epochs = 2;
    options_.generator_epochs = 2;  // phase 4 passes over its problem twice
    options_.poll = absl::Milliseconds(10);
    options_.grader = &grader_;
  }

  void TearDown() override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    if (worker_.joinable()) worker_.join();
  }

  absl::Status RunPipeline(ScoringClientOptions client_options = {}) {
    client_options.verifier_target = server_->address();
    client_options.meta_verifier_target = server_->address();
    auto client = ScoringClient::Create(client_options, nullptr);
    if (!client.ok()) return client.status();
    PipelineRunner runner(store_.get(), dispatcher_.get(), client->get(), nullptr, &learner_,
                          {Template("generator", "Prove: {problem}", "stop: \\boxed{0}\n"),
                           Template("verifier", "{problem} {proof}"),
                           Template("meta_verifier", "{problem} {proof} {analysis}"), VerifierMarkers()},
                          options_);
    std::atomic<bool> stop{false};
    return runner.Run(&stop);
  }

  // The grants the worker answered, in order.
  std::vector<v1::LeaseGrant> answered() {
    absl::MutexLock lock(&mu_);
    return answered_;
  }

  TestDir dir_;
  std::unique_ptr<RunStore> store_;
  FakeScoring scoring_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<LeaseDispatcher> dispatcher_;
  v1::MockLearnerStub learner_;
  std::vector<v1::AdapterRole> flushed_;
  GraderStub grader_;
  PipelineOptions options_;

 private:
  void Work() {
    while (true) {
      v1::LeaseGrant grant;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || !grants_.empty(); };
        mu_.Await(absl::Condition(&ready));
        if (done_ && grants_.empty()) return;
        grant = grants_.front();
        grants_.pop_front();
        answered_.push_back(grant);
      }
      // Every generation (phase 4, phase 5's proofs, the evaluations) ends at the template's stop.
      EXPECT_THAT(grant.generate().params().stop(), ::testing::ElementsAre("\\boxed{0}"));
      EXPECT_TRUE(grant.generate().params().include_stop_str_in_output());
      v1::LeaseResult result;
      result.set_lease_id(grant.lease_id());
      result.mutable_generated()->add_prompt_token_ids(1);
      for (uint32_t i = 0; i < grant.generate().n(); ++i) {
        v1::Completion* c = result.mutable_generated()->add_completions();
        c->set_index(i);
        c->set_text(absl::StrCat("## Solution\n1. a=b, so a=b\n2. b=c, so a=c\nThus a=c.", i,
                                 "\n## Self Evaluation\n", kAnalysis));
        c->add_token_ids(4);
        c->add_logprobs(-1.0f);
      }
      EXPECT_TRUE(dispatcher_->OnResult(session_, result).ok());
    }
  }

  absl::Mutex mu_;
  std::deque<v1::LeaseGrant> grants_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::LeaseGrant> answered_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t session_ = 0;
  std::thread worker_;
};

TEST_F(PipelineRunnerTest, RunsEveryPhaseOfAnIterationInOrder) {
  const absl::Status status = RunPipeline();
  ASSERT_TRUE(status.ok()) << status;
  RunStore* store = store_.get();
  const std::vector<v1::AdapterRole>& flushed = flushed_;

  auto run = store->GetRun();
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_STATE_SUCCEEDED);
  std::vector<v1::Phase> started, finished;
  auto events = store->EventsFrom(0, 1000);
  ASSERT_TRUE(events.ok());
  for (const v1::RunEvent& e : *events) {
    if (e.has_phase_started()) started.push_back(e.phase_started().phase());
    if (e.has_phase_finished()) finished.push_back(e.phase_finished().phase());
  }
  const std::vector<v1::Phase> order = {v1::PHASE_VERIFIER_RL, v1::PHASE_META_VERIFIER_RL,
                                        v1::PHASE_ENHANCED_VERIFIER_RL, v1::PHASE_GENERATOR_RL,
                                        v1::PHASE_AUTO_LABEL};
  EXPECT_EQ(started, order);
  EXPECT_EQ(finished, order);
  // Each training phase ended with a flush of its role (phase 4: after the generator's initialisation, then
  // after its training).
  EXPECT_EQ(flushed, (std::vector<v1::AdapterRole>{v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_META_VERIFIER,
                                                   v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_GENERATOR,
                                                   v1::ADAPTER_ROLE_GENERATOR}));
  // The verifier was evaluated before and after phase 1 and after phase 3, on the held-out proof only; the
  // generator before and after phase 4 on the held-out problem; the auto-labels after phase 5.
  auto evaluations = store->Evaluations();
  ASSERT_TRUE(evaluations.ok());
  ASSERT_EQ(evaluations->size(), 6u);
  for (int i : {0, 1, 2}) {
    const v1::Evaluation& e = (*evaluations)[i];
    EXPECT_EQ(e.items(), 1u);
    EXPECT_EQ(e.metrics().at("verifier_agreement"), 0.0);  // the fake says 1, the truth is 0.5
  }
  for (int i : {3, 4}) {
    const v1::Evaluation& e = (*evaluations)[i];
    EXPECT_EQ(e.phase(), v1::PHASE_GENERATOR_RL);
    EXPECT_EQ(e.point(), i == 3 ? v1::EVALUATION_POINT_BEFORE : v1::EVALUATION_POINT_AFTER);
    EXPECT_EQ(e.items(), 1u);
    EXPECT_EQ(e.metrics().at("generator_score"), 0.5);       // the grader's score of the proof
    EXPECT_EQ(e.metrics().at("self_score_agreement"), 0.0);  // the self-evaluation says 1
    EXPECT_EQ(e.metrics().at("format_ok_rate"), 1.0);
  }
  const v1::Evaluation& labels = (*evaluations)[5];
  EXPECT_EQ(labels.phase(), v1::PHASE_AUTO_LABEL);
  EXPECT_EQ(labels.metrics().at("autolabel_agreement"), 0.0);  // labelled 0, the truth is 0.5
  EXPECT_EQ(labels.metrics().at("autolabel_kept_fraction"), 1.0);
  // The evaluation's generations never became training groups.
  auto all_groups = store->GroupsWithStatus(kGroupPending, 1000);
  ASSERT_TRUE(all_groups.ok());
  for (const GroupRecord& g : *all_groups) EXPECT_NE(g.problem_id, "e1") << g.group_id;
  EXPECT_FALSE(store->GetGroup("p2-i1-qe").value().has_value()) << "trained on a held-out proof";
  for (const char* id : {"p2-i1-q1", "p2-i1-q1-e2", "p3-i1-a1", "p3-i1-a1-e2", "p4-i1-q1", "p4-i1-a1"}) {
    auto g = store->GetGroup(id);
    EXPECT_TRUE(g.ok() && g->has_value()) << id;
  }
  for (const char* id : {"p2-i1-q1-e3", "p4-i1-q1-e2", "p4-i1-a1-e2"}) {
    auto g = store->GetGroup(id);
    EXPECT_TRUE(g.ok() && !g->has_value()) << id;
  }
  auto pending = store->GroupsWithStatus(kGroupPending, 100);
  ASSERT_TRUE(pending.ok());
  int generator_groups = 0;
  for (const GroupRecord& g : *pending) generator_groups += g.role == v1::ADAPTER_ROLE_GENERATOR;
  EXPECT_EQ(generator_groups, 2);  // one per pass
  auto proofs = store->Proofs(0, 100);
  ASSERT_TRUE(proofs.ok());
  int auto_labelled = 0;
  for (const StoredProof& p : *proofs) {
    if (p.record.labeller() != "auto") continue;
    ++auto_labelled;
    // Analysis 1 of every verification says 0 and its meta-verification confirms it.
    EXPECT_EQ(p.record.score(), 0.0);
  }
  EXPECT_EQ(auto_labelled, 2);  // the two new proofs
}

// Outside lockstep phase 3 verifies a batch of proofs while a batch of analyses is assessed: the
// proof's verification is held until the analysis's assessment arrives (taking turns, it would
// wait out its 2 s).
TEST_F(PipelineRunnerTest, PhaseThreeVerifiesProofsWhileAnalysesAreAssessed) {
  scoring_.HoldVerify("p4-i1-q1", "p4-i1-a1");
  const absl::Status status = RunPipeline();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(scoring_.released_in_time());
  for (const char* id : {"p4-i1-q1", "p4-i1-a1"}) {
    auto g = store_->GetGroup(id);
    EXPECT_TRUE(g.ok() && g->has_value()) << id;
  }
}

// Lockstep: each round of a training phase is trained on (flushed) before the next is sampled,
// and every later request asks for the version that flush published; with the run's seed every
// request carries the seed derived from its id.
TEST_F(PipelineRunnerTest, LockstepTrainsEachRoundBeforeTheNextIsSampled) {
  options_.lockstep_round = 4;
  options_.generator.seed = 1234;
  options_.auto_label.seed = 1234;
  ScoringClientOptions seeded;
  seeded.seed = 1234;
  const absl::Status status = RunPipeline(seeded);
  ASSERT_TRUE(status.ok()) << status;
  constexpr v1::AdapterRole V = v1::ADAPTER_ROLE_VERIFIER, M = v1::ADAPTER_ROLE_META_VERIFIER,
                            G = v1::ADAPTER_ROLE_GENERATOR;
  // Versions 1-3: phase 1, a round per pass (its one proof) and the phase's end; 4-6 phase 2
  // likewise; 7-9 phase 3: the proofs' round, the analyses' round, the end; 10-13 phase 4: after
  // the generator's initialisation, a round per pass, the end.
  EXPECT_EQ(flushed_, (std::vector<v1::AdapterRole>{V, V, V, M, M, M, V, V, V, G, G, G, G}));
  std::map<std::string, FakeScoring::Seen> seen;
  for (const FakeScoring::Seen& r : scoring_.requests()) {
    seen[r.request_id] = r;
    EXPECT_TRUE(r.seeded) << r.request_id;
    EXPECT_EQ(r.seed, NamedSeed(1234, r.request_id)) << r.request_id;
  }
  const std::vector<std::pair<std::string, uint64_t>> floors = {
      {"p2-i1-q1", 0},       // phase 1's first round: nothing trained yet
      {"p2-i1-q1-e2", 1},    // its second: what the first round's training published
      {"p3-i1-a1", 0},       // phase 2 (the meta-verifier's own versions)
      {"p3-i1-a1-e2", 4},
      {"p4-i1-q1", 3},       // phase 3: the verifier phase 1 left ...
      {"p4-i1-q1-a0", 6},    // ... graded by the meta-verifier phase 2 left
      {"p4-i1-a1", 7},       // the analyses' round: after the proofs' round
  };
  for (const auto& [id, floor] : floors) {
    ASSERT_TRUE(seen.count(id)) << id;
    EXPECT_EQ(seen[id].min_adapter_version, floor) << id;
  }
  // Phase 4's rounds: sampled by the version the previous flush published, each with its seed.
  std::vector<std::pair<uint64_t, uint64_t>> phase4;  // (min version, seed)
  for (const v1::LeaseGrant& g : answered()) {
    if (g.generate().metadata().phase() != v1::PHASE_GENERATOR_RL) continue;
    phase4.emplace_back(g.generate().min_adapter_version(), g.generate().params().seed());
  }
  const std::string key = absl::StrCat("p", static_cast<int>(v1::PHASE_GENERATOR_RL), "-i1-p1");
  EXPECT_EQ(phase4, (std::vector<std::pair<uint64_t, uint64_t>>{{10, NamedSeed(1234, key)},
                                                                 {11, NamedSeed(1234, key + "-e2")}}));
}

}  // namespace
}  // namespace dsm
