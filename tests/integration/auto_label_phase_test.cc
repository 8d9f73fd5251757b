// Phase 5 against a scripted worker session and fake scoring services: a
// proof every analysis accepts is labelled 1, one with k confirmed issues is
// labelled with their score, bogus issues do not count, repeated proofs are
// skipped, and the labels land in the run as "auto" proofs.
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_server.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/auto_label_phase.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/run_store.h"
#include "services/coordinator/scoring_client.h"
#include "tests/integration/dispatcher_session.h"
#include "tests/integration/log_capture.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

// Analyses: "good" proofs all 1; "bad" proofs all 0; "mixed" proofs one 0; "sly" proofs 1, but 0
// in the second and fourth analysis of a request for more ("-more").
// Meta-verifications confirm the issues of "bad" and "sly" proofs only.
// With `gather_problems` > 0, each verification is held (up to 2 s) until proofs of that many
// problems are being verified at once, as a batching verifier would see them.
// With `hold` set, each verification of a problem whose statement holds that text is held (up to
// 2 s) until a problem whose statement holds `release` is being verified.
class FakeScoring final : public v1::Verifier::CallbackService, public v1::MetaVerifier::CallbackService {
 public:
  int gather_problems = 0;
  std::string hold, release;
  uint32_t max_n = 64;  // as the real scorers' limits.max_n: a request for more is INVALID_ARGUMENT
  int most_problems_at_once() {
    absl::MutexLock lock(&mu_);
    return most_problems_;
  }
  // Whether every held verification was released before its 2 s ran out.
  bool released_in_time() {
    absl::MutexLock lock(&mu_);
    return released_in_time_;
  }

  // Each verification asked for: its request id and n.
  std::vector<std::pair<std::string, uint32_t>> verifications() {
    absl::MutexLock lock(&mu_);
    return verifications_;
  }
  // Each meta-verification's request id.
  std::vector<std::string> assessments() {
    absl::MutexLock lock(&mu_);
    return assessments_;
  }

  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      verifications_.emplace_back(request->request_id(), request->n());
    }
    if (request->n() > max_n) {
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   absl::StrCat("n: ", request->n(), " exceeds max_n ", max_n)));
      return reactor;
    }
    if (!hold.empty()) {
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      if (absl::StrContains(request->problem(), release)) {
        absl::MutexLock lock(&mu_);
        released_ = true;
      }
      if (!absl::StrContains(request->problem(), hold)) {
        Analyse(*request, response);
        reactor->Finish(grpc::Status::OK);
        return reactor;
      }
      std::thread([this, reactor, request, response] {
        absl::MutexLock lock(&mu_);
        if (!mu_.AwaitWithTimeout(absl::Condition(&released_), absl::Seconds(2))) released_in_time_ = false;
        Analyse(*request, response);
        reactor->Finish(grpc::Status::OK);
      }).detach();
      return reactor;
    }
    if (gather_problems > 0) {
      grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
      {
        absl::MutexLock lock(&mu_);
        verifying_.insert(request->problem());
        const std::set<std::string> problems(verifying_.begin(), verifying_.end());
        most_problems_ = std::max(most_problems_, static_cast<int>(problems.size()));
        gathered_ |= most_problems_ >= gather_problems;
      }
      std::thread([this, reactor, request, response] {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&gathered_), absl::Seconds(2));
        verifying_.erase(verifying_.find(request->problem()));
        Analyse(*request, response);
        reactor->Finish(grpc::Status::OK);
      }).detach();
      return reactor;
    }
    Analyse(*request, response);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* Assess(grpc::CallbackServerContext* context, const v1::AssessRequest* request,
                                   v1::AssessResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      assessments_.push_back(request->request_id());
    }
    for (uint32_t i = 0; i < request->n(); ++i) {
      v1::Analysis* a = response->add_assessments();
      a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
      const bool real = absl::StrContains(request->proof(), "bad") || absl::StrContains(request->proof(), "sly");
      a->mutable_score()->set_value(real ? 1.0 : 0.0);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  static void Analyse(const v1::VerifyRequest& request, v1::VerifyResponse* response) {
    for (uint32_t i = 0; i < request.n(); ++i) {
      v1::Analysis* a = response->add_analyses();
      a->mutable_completion()->set_index(i);
      double score = 1;
      if (absl::StrContains(request.proof(), "bad")) score = 0;
      if (absl::StrContains(request.proof(), "mixed") && i == 0) score = 0;
      if (absl::StrContains(request.proof(), "sly") && absl::StrContains(request.request_id(), "-more") &&
          (i == 1 || i == 3)) {
        score = 0;
      }
      a->mutable_completion()->set_text(score < 1 ? "Step 1 is wrong." : "All steps are correct.");
      a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
      a->mutable_score()->set_value(score);
    }
  }

  absl::Mutex mu_;
  std::multiset<std::string> verifying_ ABSL_GUARDED_BY(mu_);  // the problem of each verification in flight
  int most_problems_ ABSL_GUARDED_BY(mu_) = 0;
  bool gathered_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  bool released_in_time_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<std::pair<std::string, uint32_t>> verifications_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> assessments_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<PromptTemplate> GeneratorTemplate() {
  return PromptTemplate::Parse(
      "role: generator\nevaluation_marker: Here is my evaluation of the solution:\n"
      "score_marker: Based on my evaluation, the final overall score should be:\n---\nProve: {problem}\n",
      "generator.txt");
}

// The worker's answer to a GenerateWork lease: one completion per text.
v1::LeaseResult Generated(const v1::LeaseGrant& grant, const std::vector<std::string>& texts) {
  v1::LeaseResult result;
  result.set_lease_id(grant.lease_id());
  for (size_t i = 0; i < texts.size(); ++i) {
    v1::Completion* c = result.mutable_generated()->add_completions();
    c->set_index(static_cast<uint32_t>(i));
    c->set_text(texts[i]);
  }
  return result;
}

// What phase 5 runs against: fake scoring services on port 0 and a client of them, a dispatcher
// on `store` with one generator worker connected, and the generator's prompt template.
struct Phase5Rig {
  Phase5Rig(RunStore* store, FakeScoring* scoring, int capacity)
      : dispatcher(store, DispatcherOptions{}, nullptr), generator(GeneratorTemplate()) {
    GrpcServerOptions server_options;
    server_options.drain = absl::ZeroDuration();
    server_options.shutdown_grace = absl::Milliseconds(100);
    server = std::make_unique<GrpcServer>(server_options);
    server->RegisterService(static_cast<v1::Verifier::CallbackService*>(scoring), v1::Verifier::service_full_name());
    server->RegisterService(static_cast<v1::MetaVerifier::CallbackService*>(scoring),
                            v1::MetaVerifier::service_full_name());
    EXPECT_TRUE(server->Start().ok());
    ScoringClientOptions client_options;
    client_options.verifier_target = server->address();
    client_options.meta_verifier_target = server->address();
    auto created = ScoringClient::Create(client_options, nullptr);
    EXPECT_TRUE(created.ok()) << created.status();
    if (created.ok()) client = *std::move(created);
    session = worker.Connect(dispatcher, "w", capacity);
    EXPECT_TRUE(session.ok()) << session.status();
    EXPECT_TRUE(generator.ok()) << generator.status();
  }
  bool ok() const { return client != nullptr && session.ok() && generator.ok(); }
  // Every generation lease granted so far gets two proofs: "good proof of <problem>" and "bad ...".
  absl::Status AnswerEveryGrant() {
    for (const v1::LeaseGrant& grant : worker.grants()) {
      const std::string problem = grant.generate().metadata().problem_id();
      absl::Status s = dispatcher.OnResult(
          *session, Generated(grant, {"## Solution\ngood proof of " + problem, "## Solution\nbad proof of " + problem}));
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  AutoLabelPhase Phase(RunStore* store, const AutoLabelPhaseOptions& options) {
    return AutoLabelPhase(store, &dispatcher, client.get(), *generator, VerifierMarkers(), options);
  }

  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<ScoringClient> client;
  LeaseDispatcher dispatcher;
  dsm_test::GrantCollector worker;
  absl::StatusOr<uint64_t> session;
  absl::StatusOr<PromptTemplate> generator;
};

// Problems p1..pn, "Given: a=b, b=c. Prove: a=c. #i", none labelled.
absl::Status ImportProblems(RunStore* store, int n) {
  std::vector<v1::ImportRecordsRequest> records(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    records[i].mutable_problem()->set_problem_id(absl::StrCat("p", i + 1));
    records[i].mutable_problem()->set_statement(absl::StrCat("Given: a=b, b=c. Prove: a=c. #", i + 1));
  }
  return store->ImportRecords(records, true).status();
}

absl::StatusOr<std::unique_ptr<RunStore>> OpenStore(const TestDir& dir) {
  RunStoreOptions options;
  options.db.synchronous_full = false;
  return RunStore::Open(dir.File("state.db"), options);
}

// `proofs_per_problem` proofs a problem, each verified 4 times, each issue checked 3 times, a label
// when 2 lowest-score analyses are confirmed.
AutoLabelPhaseOptions FourAnalysesThreeChecks(uint32_t proofs_per_problem) {
  AutoLabelPhaseOptions options;
  options.proofs_per_problem = proofs_per_problem;
  options.n = 4;
  options.m = 3;
  options.rule.k = 2;
  return options;
}

TEST(AutoLabelPhase, LabelsNewProofsByScaledVerification) {
  TestDir dir;
  auto store = OpenStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::ImportRecordsRequest> records(1);
  records[0].mutable_problem()->set_problem_id("p1");
  records[0].mutable_problem()->set_statement("Given: a=b, b=c. Prove: a=c.");
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());

  FakeScoring scoring;
  Phase5Rig rig(store->get(), &scoring, 4);
  ASSERT_TRUE(rig.ok());
  AutoLabelPhaseOptions options = FourAnalysesThreeChecks(5);
  AutoLabelPhase phase = rig.Phase(store->get(), options);
  ASSERT_EQ(phase.Enqueue(10)->enqueued, 1u);
  ASSERT_EQ(rig.worker.grants().size(), 1u);
  const v1::LeaseGrant grant = rig.worker.grants()[0];
  EXPECT_EQ(grant.generate().n(), 5u);
  ASSERT_TRUE(rig.dispatcher
                  .OnResult(*rig.session, Generated(grant, {"## Solution\ngood proof", "## Solution\nbad proof",
                                                        "## Solution\nmixed proof", "## Solution\ngood proof",
                                                        "nothing"}))
                  .ok());

  dsm_test::LogCapture log;
  auto progress = phase.ProcessResults();
  ASSERT_TRUE(progress.ok()) << progress.status();
  // At debug level, each proof's label with its evidence: scores, meta-scores, issue lines.
  EXPECT_NE(log.text().find("debug auto-label p6-i1-"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("| score 0 meta [1,1,1] \"Step 1 is wrong.\""), std::string::npos) << log.text();
  EXPECT_NE(log.text().find(": 1 (no analysis found a confirmed issue) | score 1 meta []"), std::string::npos)
      << log.text();
  EXPECT_EQ(progress->proofs, 3u);
  EXPECT_EQ(progress->labelled, 3u);
  EXPECT_EQ(progress->duplicates, 1u);
  EXPECT_EQ(progress->malformed, 1u);
  EXPECT_EQ(progress->dropped, 0u);
  auto proofs = (*store)->Proofs(0, 10);
  ASSERT_TRUE(proofs.ok());
  ASSERT_EQ(proofs->size(), 3u);
  for (const StoredProof& p : *proofs) {
    EXPECT_EQ(p.record.labeller(), "auto");
    EXPECT_EQ(p.iteration, 1u);
    if (p.record.proof() == "bad proof") {
      EXPECT_EQ(p.record.score(), 0.0);
      EXPECT_EQ(p.record.issue(), "Step 1 is wrong.");
    } else {
      EXPECT_EQ(p.record.score(), 1.0) << p.record.proof();  // good, or mixed with a bogus issue
    }
  }
  EXPECT_EQ(phase.ProcessResults()->labelled, 0u);  // a rerun repeats nothing
}

// With correct_n, a proof that all n analyses pass gets the rest before it is labelled 1: the
// "sly" proof's issue, which only the later analyses find (confirmed twice), labels it 0; without,
// it passes as 1. A proof with an issue found gets no more analyses.
// The analyses past n go in requests of at most the scorers' max_n ("-more", "-more-2", ...):
// one request for all of them is refused, and the proof would be left out, never labelled 1.
TEST(AutoLabelPhase, AProofAllAnalysesPassGetsMoreBeforeALabelOfOne) {
  struct Case {
    uint32_t correct_n;
    uint32_t max_n;
    std::vector<std::pair<std::string, uint32_t>> more;  // each "more" request of proof 0 (and 1)
  };
  for (const Case& c : {Case{0, 4, {}}, Case{10, 64, {{"-more", 6}}},
                        Case{14, 4, {{"-more", 4}, {"-more-2", 4}, {"-more-3", 2}}}}) {
    SCOPED_TRACE(c.correct_n);
    TestDir dir;
    auto store = OpenStore(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(ImportProblems(store->get(), 1).ok());
    FakeScoring scoring;
    scoring.max_n = c.max_n;
    Phase5Rig rig(store->get(), &scoring, 4);
    ASSERT_TRUE(rig.ok());
    AutoLabelPhaseOptions options = FourAnalysesThreeChecks(3);
    options.correct_n = c.correct_n;
    options.max_n_per_request = c.max_n;
    options.rule.unanimous_correct = true;
    AutoLabelPhase phase = rig.Phase(store->get(), options);
    ASSERT_EQ(phase.Enqueue(10)->enqueued, 1u);
    ASSERT_EQ(rig.worker.grants().size(), 1u);
    ASSERT_TRUE(rig.dispatcher
                    .OnResult(*rig.session, Generated(rig.worker.grants()[0],
                                                      {"## Solution\ngood proof", "## Solution\nsly proof",
                                                       "## Solution\nbad proof"}))
                    .ok());
    auto progress = phase.ProcessResults();
    ASSERT_TRUE(progress.ok()) << progress.status();
    EXPECT_EQ(progress->labelled, 3u);
    std::map<std::string, double> labels;
    auto proofs = (*store)->Proofs(0, 10);
    ASSERT_TRUE(proofs.ok());
    for (const StoredProof& p : *proofs) labels[p.record.proof()] = p.record.score();
    EXPECT_EQ(labels["good proof"], 1.0);
    EXPECT_EQ(labels["bad proof"], 0.0);
    EXPECT_EQ(labels["sly proof"], c.correct_n == 0 ? 1.0 : 0.0);
    std::vector<std::pair<std::string, uint32_t>> asked = scoring.verifications();
    std::sort(asked.begin(), asked.end());
    std::vector<std::pair<std::string, uint32_t>> want;
    for (const std::string proof : {"p6-i1-1-0", "p6-i1-1-1"}) {  // good, sly: all 4 pass them
      want.emplace_back(proof, 4);
      for (const auto& [suffix, n] : c.more) want.emplace_back(proof + suffix, n);
    }
    want.emplace_back("p6-i1-1-2", 4);  // bad
    std::sort(want.begin(), want.end());
    EXPECT_EQ(asked, want);
    // The sly proof's issue-reporting analyses (1 and 3 of each "more" request) are meta-verified
    // under their own numbers, n on: none twice.
    const std::vector<std::string> assessed = scoring.assessments();
    const std::set<std::string> sly(assessed.begin(), assessed.end());
    EXPECT_EQ(sly.size(), assessed.size());
    if (c.correct_n == 14) {
      EXPECT_EQ(sly, (std::set<std::string>{"p6-i1-1-1-a5", "p6-i1-1-1-a7", "p6-i1-1-1-a9", "p6-i1-1-1-a11",
                                             "p6-i1-1-1-a13", "p6-i1-1-2-a0", "p6-i1-1-2-a1", "p6-i1-1-2-a2",
                                             "p6-i1-1-2-a3"}));
    }
  }
}

// Several problems' proofs are labelled side by side (the verifier samples one problem's proofs
// while the meta-verifier checks another's), and their labels are stored all the same, the caller
// told after each item.
TEST(AutoLabelPhase, LabelsSeveralProblemsSideBySide) {
  TestDir dir;
  auto store = OpenStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(ImportProblems(store->get(), 3).ok());
  FakeScoring scoring;
  scoring.gather_problems = 3;
  Phase5Rig rig(store->get(), &scoring, 8);
  ASSERT_TRUE(rig.ok());
  AutoLabelPhaseOptions options;
  options.proofs_per_problem = 2;
  options.n = 2;
  options.m = 1;
  options.items_at_once = 4;
  AutoLabelPhase phase = rig.Phase(store->get(), options);
  ASSERT_EQ(phase.Enqueue(3)->enqueued, 3u);
  ASSERT_EQ(rig.worker.grants().size(), 3u);
  ASSERT_TRUE(rig.AnswerEveryGrant().ok());
  std::vector<uint32_t> stored;  // the items stored so far, after each item (the progress bar)
  std::vector<uint32_t> labels;
  auto progress = phase.ProcessResults([&](const AutoLabelProgress& so_far) {
    stored.push_back(so_far.items);
    labels.push_back(so_far.labelled);
  });
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(scoring.most_problems_at_once(), 3);
  EXPECT_EQ(progress->items, 3u);
  EXPECT_EQ(progress->labelled, 6u);
  EXPECT_EQ(stored, (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(labels, (std::vector<uint32_t>{2, 4, 6}));
  EXPECT_EQ((*store)->Proofs(0, 10)->size(), 6u);
  EXPECT_EQ(phase.ProcessResults()->labelled, 0u);  // the cursor is past all three
}

// Items are labelled in a sliding window, not in waves: with two at a time, the third starts as
// soon as the second is done, while the first is still being verified; the labels are still
// stored in the items' order.
TEST(AutoLabelPhase, StartsTheNextItemWhenAnyIsDoneAndStoresInOrder) {
  TestDir dir;
  auto store = OpenStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(ImportProblems(store->get(), 3).ok());
  FakeScoring scoring;
  scoring.hold = "#1";     // the first item's verifications wait ...
  scoring.release = "#3";  // ... for the third item's
  Phase5Rig rig(store->get(), &scoring, 8);
  ASSERT_TRUE(rig.ok());
  AutoLabelPhaseOptions options;
  options.proofs_per_problem = 2;
  options.n = 2;
  options.m = 1;
  options.items_at_once = 2;
  AutoLabelPhase phase = rig.Phase(store->get(), options);
  ASSERT_EQ(phase.Enqueue(3)->enqueued, 3u);
  ASSERT_EQ(rig.worker.grants().size(), 3u);
  ASSERT_TRUE(rig.AnswerEveryGrant().ok());
  auto progress = phase.ProcessResults();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_TRUE(scoring.released_in_time());  // in waves of two, the third waits for the first
  EXPECT_EQ(progress->items, 3u);
  EXPECT_EQ(progress->labelled, 6u);
  auto proofs = (*store)->Proofs(0, 10);
  ASSERT_TRUE(proofs.ok()) << proofs.status();
  std::vector<std::string> order;
  for (const auto& p : *proofs) order.push_back(p.record.problem_id());
  EXPECT_EQ(order, (std::vector<std::string>{"p1", "p1", "p2", "p2", "p3", "p3"}));
}

// Phase 5 labels problems nobody labelled first, in import order, then labelled ones.
TEST(AutoLabelPhase, TakesProblemsNobodyLabelledFirst) {
  TestDir dir;
  auto store = OpenStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::ImportRecordsRequest> records(5);
  for (int i = 0; i < 3; ++i) {
    records[i].mutable_problem()->set_problem_id(absl::StrCat("p", i + 1));
    records[i].mutable_problem()->set_statement(absl::StrCat("Given: a=b, b=c. Prove: a=c. #", i + 1));
  }
  // p1 and p3 have expert labels; p2 has none.
  for (int i : {3, 4}) {
    const std::string problem = i == 3 ? "p1" : "p3";
    records[i].mutable_proof()->set_proof_id(problem + "-label");
    records[i].mutable_proof()->set_problem_id(problem);
    records[i].mutable_proof()->set_proof("1. a=b, so a=b\n2. b=c, so a=c\nThus a=c.");
    records[i].mutable_proof()->set_score(1);
  }
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());

  LeaseDispatcher dispatcher(store->get(), DispatcherOptions{}, nullptr);
  dsm_test::GrantCollector worker;
  auto session = worker.Connect(dispatcher, "w", 8);
  ASSERT_TRUE(session.ok());
  absl::StatusOr<PromptTemplate> generator = GeneratorTemplate();
  ASSERT_TRUE(generator.ok()) << generator.status();
  AutoLabelPhase phase(store->get(), &dispatcher, nullptr, *generator, VerifierMarkers(), AutoLabelPhaseOptions{});
  auto problem_of = [&](size_t grant) { return worker.grants()[grant].generate().metadata().problem_id(); };
  ASSERT_EQ(phase.Enqueue(2)->enqueued, 2u);
  ASSERT_EQ(worker.grants().size(), 2u);
  EXPECT_EQ(problem_of(0), "p2");  // the unlabelled one, though imported after p1
  EXPECT_EQ(problem_of(1), "p1");  // then the labelled ones in import order
  ASSERT_EQ(phase.Enqueue(5)->enqueued, 1u);  // each kind goes on from where it stopped
  ASSERT_EQ(worker.grants().size(), 3u);
  EXPECT_EQ(problem_of(2), "p3");
  EXPECT_EQ(phase.Enqueue(5)->enqueued, 0u);
}

}  // namespace
}  // namespace dsm
