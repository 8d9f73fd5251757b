// Phase 4 against a scripted worker session on the LeaseDispatcher and fake
// scoring services: the proofs and self-evaluations are judged and rewarded
// per METHOD.md, format failures earn 0, an unjudged sample is left out, and
// a rerun repeats nothing.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "common/seed_mix.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/generator_phase.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "services/scoring/score_parser.h"
#include "tests/integration/dispatcher_session.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

// s = 1 for a proof containing "good", 0 otherwise, none for "??";
// every self-evaluation gets ms = 1. Each call is answered 50 ms later from a
// thread of its own, and the most calls open at once is recorded.
class FakeScoring final : public v1::Verifier::CallbackService, public v1::MetaVerifier::CallbackService {
 public:
  ~FakeScoring() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : answers_) t.join();
  }
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override {
    if (!absl::StrContains(request->proof(), "??")) {
      response->set_aggregate_score(absl::StrContains(request->proof(), "good") ? 1.0 : 0.0);
    }
    return AnswerLater(context);
  }
  grpc::ServerUnaryReactor* Assess(grpc::CallbackServerContext* context, const v1::AssessRequest*,
                                   v1::AssessResponse* response) override {
    response->set_aggregate_meta_score(1.0);
    return AnswerLater(context);
  }
  int most_open() const { return most_open_.load(); }

 private:
  grpc::ServerUnaryReactor* AnswerLater(grpc::CallbackServerContext* context) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    const int now = ++open_;
    for (int seen = most_open_.load(); now > seen && !most_open_.compare_exchange_weak(seen, now);) {
    }
    std::lock_guard<std::mutex> lock(mu_);
    answers_.emplace_back([this, reactor] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      --open_;
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  std::atomic<int> open_{0};
  std::atomic<int> most_open_{0};
  std::mutex mu_;
  std::vector<std::thread> answers_;
};

std::string Output(const std::string& proof, const std::string& self_score) {
  return absl::StrCat("## Solution\n", proof, "\n## Self Evaluation\nHere is my evaluation of the solution:\n",
                      "fine\nBased on my evaluation, the final overall score should be:\n\\boxed{", self_score, "}");
}

// One completion per text, indexed in order, each ended by the stop string.
void AddCompletions(const std::vector<std::string>& texts, v1::GenerateResult* generated) {
  for (size_t i = 0; i < texts.size(); ++i) {
    v1::Completion* c = generated->add_completions();
    c->set_index(static_cast<uint32_t>(i));
    c->set_text(texts[i]);
    c->add_token_ids(static_cast<int>(i));
    c->add_logprobs(-1.0f);
    c->set_finish_reason(v1::FINISH_REASON_STOP_TOKEN);
  }
}

// A run store, the fake scorers behind a ScoringClient, a dispatcher with one scripted worker
// session, and the generator template.
class GeneratorPhaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunStoreOptions store_options;
    store_options.db.synchronous_full = false;
    auto store = RunStore::Open(dir_.File("state.db"), store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    GrpcServerOptions server_options;
    server_options.drain = absl::ZeroDuration();
    server_options.shutdown_grace = absl::Milliseconds(100);
    server_ = std::make_unique<GrpcServer>(server_options);
    server_->RegisterService(static_cast<v1::Verifier::CallbackService*>(&scoring_),
                             v1::Verifier::service_full_name());
    server_->RegisterService(static_cast<v1::MetaVerifier::CallbackService*>(&scoring_),
                             v1::MetaVerifier::service_full_name());
    ASSERT_TRUE(server_->Start().ok());
    ScoringClientOptions client_options;
    client_options.verifier_target = server_->address();
    client_options.meta_verifier_target = server_->address();
    auto client = ScoringClient::Create(client_options, nullptr);
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
    dispatcher_ = std::make_unique<LeaseDispatcher>(store_.get(), DispatcherOptions{}, nullptr);
    auto session = worker_.Connect(*dispatcher_, "w", 4);
    ASSERT_TRUE(session.ok());
    session_ = *session;
    auto generator = PromptTemplate::Parse(
        "role: generator\nevaluation_marker: Here is my evaluation of the solution:\n"
        "score_marker: Based on my evaluation, the final overall score should be:\nstop: \\boxed{1}\n---\n"
        "Prove: {problem}\n",
        "generator.txt");
    ASSERT_TRUE(generator.ok()) << generator.status();
    generator_.emplace(*std::move(generator));
  }

  // Problems with these ids and statements.
  void Import(const std::vector<std::pair<std::string, std::string>>& problems) {
    std::vector<v1::ImportRecordsRequest> records(problems.size());
    for (size_t i = 0; i < problems.size(); ++i) {
      records[i].mutable_problem()->set_problem_id(problems[i].first);
      records[i].mutable_problem()->set_statement(problems[i].second);
    }
    ASSERT_TRUE(store_->ImportRecords(records, true).ok());
  }

  GeneratorPhase Phase(const GeneratorPhaseOptions& options) {
    return GeneratorPhase(store_.get(), dispatcher_.get(), client_.get(), *generator_, VerifierMarkers(), options);
  }

  TestDir dir_;
  std::unique_ptr<RunStore> store_;
  FakeScoring scoring_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<ScoringClient> client_;
  std::unique_ptr<LeaseDispatcher> dispatcher_;
  dsm_test::GrantCollector worker_;
  uint64_t session_ = 0;
  std::optional<PromptTemplate> generator_;
};

TEST_F(GeneratorPhaseTest, JudgesAndRewardsEachCompletion) {
  Import({{"p1", "Given: a=b, b=c. Prove: a=c."}});
  GeneratorPhaseOptions options;
  options.group_size = 5;
  GeneratorPhase phase = Phase(options);
  auto enqueued = phase.Enqueue(10);
  ASSERT_TRUE(enqueued.ok()) << enqueued.status();
  EXPECT_EQ(enqueued->enqueued, 1u);
  EXPECT_EQ(phase.Enqueue(10)->enqueued, 0u);  // the cursor moved
  ASSERT_EQ(worker_.grants().size(), 1u);
  const v1::LeaseGrant grant = worker_.grants()[0];
  EXPECT_EQ(grant.generate().prompt().text(), "Prove: Given: a=b, b=c. Prove: a=c.");
  EXPECT_EQ(grant.generate().n(), 5u);
  EXPECT_TRUE(grant.generate().params().return_logprobs());
  // The template's stop string ends each answer, and stays in it.
  EXPECT_EQ(grant.generate().params().stop_size(), 1);
  EXPECT_EQ(grant.generate().params().stop(0), "\\boxed{1}");
  EXPECT_TRUE(grant.generate().params().include_stop_str_in_output());

  v1::LeaseResult result;
  result.set_lease_id(grant.lease_id());
  v1::GenerateResult* generated = result.mutable_generated();
  for (int id : {4, 5}) generated->add_prompt_token_ids(id);
  AddCompletions({Output("good proof", "1"), Output("bad proof", "1"), Output("bad proof", "0"),
                  "no sections at all", Output("?? proof", "1")},
                 generated);
  ASSERT_TRUE(dispatcher_->OnResult(session_, result).ok());

  auto progress = phase.ProcessResults();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->groups, 1u);
  EXPECT_EQ(progress->finished_items, 1u);
  EXPECT_EQ(progress->samples, 4u);  // the unjudged one is left out
  EXPECT_EQ(progress->format_failures, 1u);
  auto groups = store_->GroupsWithStatus(kGroupPending, 10);
  ASSERT_TRUE(groups.ok());
  ASSERT_EQ(groups->size(), 1u);
  const GroupRecord& g = groups->front();
  EXPECT_EQ(g.role, v1::ADAPTER_ROLE_GENERATOR);
  EXPECT_EQ(g.prompt_token_ids, (std::vector<int32_t>{4, 5}));
  ASSERT_EQ(g.samples.size(), 4u);
  EXPECT_DOUBLE_EQ(g.samples[0].sample.reward(), 1.0);   // correct and honest
  EXPECT_DOUBLE_EQ(g.samples[1].sample.reward(), 0.0);   // wrong, claims 1
  EXPECT_DOUBLE_EQ(g.samples[2].sample.reward(), 0.24);  // wrong, admits it
  EXPECT_DOUBLE_EQ(g.samples[3].sample.reward(), 0.0);   // format failure
  EXPECT_EQ(g.samples[3].reward_parts.at("r_format"), 0.0);
  EXPECT_EQ(phase.ProcessResults()->groups, 0u);  // a rerun repeats nothing
  // The group's 8 scoring calls (4 well-formed proofs: a verification and a meta-verification
  // each) were made side by side, not one after another.
  EXPECT_GE(scoring_.most_open(), 4);

  // A problem whose answers leave under 2 samples records no group, but it is done: phase 4's
  // window of problems in flight counts it, or the pass would wait for it forever.
  Import({{"p2", "Given: a=b, b=c. Prove: a=c."}});
  ASSERT_EQ(phase.Enqueue(10)->enqueued, 1u);
  ASSERT_EQ(worker_.grants().size(), 2u);
  v1::LeaseResult thin;
  thin.set_lease_id(worker_.grants()[1].lease_id());
  thin.mutable_generated()->add_prompt_token_ids(4);
  AddCompletions({Output("good proof", "1"), Output("?? proof", "1")}, thin.mutable_generated());
  ASSERT_TRUE(dispatcher_->OnResult(session_, thin).ok());
  auto second = phase.ProcessResults();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->groups, 0u);
  EXPECT_EQ(second->finished_items, 1u);
}

// Groups are recorded in the order the problems were enqueued, whatever order the worker
// finishes them in, so the learner gets them in the same order every run; each problem's work
// carries the seed derived from the run's seed and its key.
TEST_F(GeneratorPhaseTest, RecordsGroupsInProblemOrderWithSeededWork) {
  Import({{"p0", "Given: a=b. Prove: a=b."}, {"p1", "Given: b=c. Prove: b=c."}, {"p2", "Given: c=d. Prove: c=d."}});
  GeneratorPhaseOptions options;
  options.group_size = 2;
  options.seed = 77;
  GeneratorPhase phase = Phase(options);
  ASSERT_EQ(phase.Enqueue(3)->enqueued, 3u);
  const std::vector<v1::LeaseGrant> grants = worker_.grants();
  ASSERT_EQ(grants.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const std::string key = absl::StrCat("p", static_cast<int>(v1::PHASE_GENERATOR_RL), "-i1-p", i);
    EXPECT_EQ(grants[i].generate().params().seed(), NamedSeed(77, key)) << key;
  }
  for (int i : {2, 0, 1}) {  // finished out of order
    v1::LeaseResult result;
    result.set_lease_id(grants[i].lease_id());
    result.mutable_generated()->add_prompt_token_ids(4);
    AddCompletions({Output("good proof", "1"), Output("bad proof", "1")}, result.mutable_generated());
    ASSERT_TRUE(dispatcher_->OnResult(session_, result).ok());
  }
  auto progress = phase.ProcessResults();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->groups, 3u);
  auto groups = store_->GroupsWithStatus(kGroupPending, 10);
  ASSERT_TRUE(groups.ok());
  std::vector<std::string> order;
  for (const GroupRecord& g : *groups) order.push_back(g.problem_id);
  EXPECT_EQ(order, (std::vector<std::string>{"p0", "p1", "p2"}));
  EXPECT_EQ(phase.ProcessResults()->finished_items, 0u);  // the cursor passed all three
}

}  // namespace
}  // namespace dsm
