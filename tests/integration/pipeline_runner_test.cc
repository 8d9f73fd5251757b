// The pipeline runner over one iteration against mock peers: fake verifier
// and meta-verifier services, a scripted worker on the lease dispatcher, and
// a gMock learner stub for InitAdapter. Every phase runs in METHOD.md's
// order with its events, records its groups, and the run ends SUCCEEDED.
#include <deque>
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

TEST(PipelineRunner, RunsEveryPhaseOfAnIterationInOrder) {
  TestDir dir;
  RunStoreOptions store_options;
  store_options.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), store_options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateRun("pipeline", "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
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
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());

  FakeScoring scoring;
  GrpcServerOptions server_options;
  server_options.drain = absl::ZeroDuration();
  server_options.shutdown_grace = absl::Milliseconds(100);
  GrpcServer server(server_options);
  scoring.RegisterOn(server);
  ASSERT_TRUE(server.Start().ok());
  ScoringClientOptions client_options;
  client_options.verifier_target = server.address();
  client_options.meta_verifier_target = server.address();
  auto client = ScoringClient::Create(client_options, nullptr);
  ASSERT_TRUE(client.ok());

  // A scripted worker: answers every grant with proofs and self-evaluations.
  LeaseDispatcher dispatcher(store->get(), DispatcherOptions{}, nullptr);
  absl::Mutex mu;
  std::deque<v1::LeaseGrant> grants;
  bool done = false;
  v1::Hello hello;
  hello.set_worker_id("w");
  hello.add_roles(v1::ADAPTER_ROLE_GENERATOR);
  hello.set_capacity(2);
  auto session = dispatcher.Connect(
      hello,
      [&](v1::CoordinatorMessage m) {
        absl::MutexLock lock(&mu);
        if (m.has_grant()) grants.push_back(m.grant());
        return true;
      },
      [](const absl::Status&) {});
  ASSERT_TRUE(session.ok());
  std::thread worker([&] {
    while (true) {
      v1::LeaseGrant grant;
      {
        absl::MutexLock lock(&mu);
        auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return done || !grants.empty(); };
        mu.Await(absl::Condition(&ready));
        if (done && grants.empty()) return;
        grant = grants.front();
        grants.pop_front();
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
      EXPECT_TRUE(dispatcher.OnResult(*session, result).ok());
    }
  });

  v1::MockLearnerStub learner;
  EXPECT_CALL(learner, InitAdapter(_, _, _))
      .WillOnce([](grpc::ClientContext*, const v1::InitAdapterRequest& r, v1::InitAdapterResponse*) {
        EXPECT_EQ(r.role(), v1::ADAPTER_ROLE_GENERATOR);
        EXPECT_EQ(r.copy_from(), v1::ADAPTER_ROLE_VERIFIER);
        return grpc::Status::OK;
      });
  std::vector<v1::AdapterRole> flushed;
  EXPECT_CALL(learner, Flush(_, _, _))
      .WillRepeatedly([&flushed](grpc::ClientContext*, const v1::FlushRequest& r, v1::FlushResponse* response) {
        flushed.push_back(r.role());
        response->mutable_published()->set_role(r.role());
        response->mutable_published()->set_version(flushed.size());
        return grpc::Status::OK;
      });

  PipelineOptions options;
  options.verifier.group_size = 2;
  options.meta_verifier.group_size = 2;
  options.generator.group_size = 2;
  options.generator.verifications = 2;
  options.auto_label.proofs_per_problem = 2;
  options.auto_label.n = 2;
  options.auto_label.m = 1;
  options.auto_label.rule.k = 1;  // one confirmed lowest analysis is enough here
  options.verifier_epochs = 2;    // phases 1 and 2 pass over their data twice, phase 3 once
  options.meta_verifier_epochs = 2;
  options.generator_epochs = 2;  // phase 4 passes over its problem twice
  options.poll = absl::Milliseconds(10);
  GraderStub grader;
  options.grader = &grader;
  PipelineRunner runner(store->get(), &dispatcher, client->get(), nullptr, &learner,
                        {Template("generator", "Prove: {problem}", "stop: \\boxed{0}\n"), Template("verifier", "{problem} {proof}"),
                         Template("meta_verifier", "{problem} {proof} {analysis}"), VerifierMarkers()},
                        options);
  std::atomic<bool> stop{false};
  const absl::Status status = runner.Run(&stop);
  {
    absl::MutexLock lock(&mu);
    done = true;
  }
  worker.join();
  ASSERT_TRUE(status.ok()) << status;

  auto run = (*store)->GetRun();
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_STATE_SUCCEEDED);
  std::vector<v1::Phase> started, finished;
  auto events = (*store)->EventsFrom(0, 1000);
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
  auto evaluations = (*store)->Evaluations();
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
  auto all_groups = (*store)->GroupsWithStatus(kGroupPending, 1000);
  ASSERT_TRUE(all_groups.ok());
  for (const GroupRecord& g : *all_groups) EXPECT_NE(g.problem_id, "e1") << g.group_id;
  EXPECT_FALSE((*store)->GetGroup("p2-i1-qe").value().has_value()) << "trained on a held-out proof";
  for (const char* id : {"p2-i1-q1", "p2-i1-q1-e2", "p3-i1-a1", "p3-i1-a1-e2", "p4-i1-q1", "p4-i1-a1"}) {
    auto g = (*store)->GetGroup(id);
    EXPECT_TRUE(g.ok() && g->has_value()) << id;
  }
  for (const char* id : {"p2-i1-q1-e3", "p4-i1-q1-e2", "p4-i1-a1-e2"}) {
    auto g = (*store)->GetGroup(id);
    EXPECT_TRUE(g.ok() && !g->has_value()) << id;
  }
  auto pending = (*store)->GroupsWithStatus(kGroupPending, 100);
  ASSERT_TRUE(pending.ok());
  int generator_groups = 0;
  for (const GroupRecord& g : *pending) generator_groups += g.role == v1::ADAPTER_ROLE_GENERATOR;
  EXPECT_EQ(generator_groups, 2);  // one per pass
  auto proofs = (*store)->Proofs(0, 100);
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

}  // namespace
}  // namespace dsm
