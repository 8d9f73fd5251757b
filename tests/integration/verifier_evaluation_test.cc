// EvaluateVerifier against a fake verifier service and a scripted Grader:
// only evaluation problems count, format failures are misses, hallucinations
// are counted among well-formed analyses, each disagreement is sorted by kind, and the
// evaluation is stored.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/grpc_server.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/verifier_evaluation.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

// "good" proofs: score 1; "bad": score 0 with a bogus issue; "meh": no valid score;
// "says <s>": score s.
class FakeVerifier final : public v1::Verifier::CallbackService {
 public:
  int calls = 0;
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override {
    ++calls;
    v1::Analysis* a = response->add_analyses();
    if (absl::StrContains(request->proof(), "says ")) {  // "says <score>": that score, well formed
      double said = 0;
      EXPECT_TRUE(absl::SimpleAtod(request->proof().substr(request->proof().find("says ") + 5), &said));
      a->mutable_completion()->set_text("fine");
      a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
      a->mutable_score()->set_value(said);
    } else if (absl::StrContains(request->proof(), "meh")) {
      a->mutable_score()->set_format(v1::FORMAT_STATUS_NO_BOXED_SCORE);
    } else {
      const bool good = absl::StrContains(request->proof(), "good");
      a->mutable_completion()->set_text(good ? "fine" : "bogus issue");
      a->mutable_score()->set_format(v1::FORMAT_STATUS_OK);
      a->mutable_score()->set_value(good ? 1.0 : 0.0);
      a->mutable_completion()->set_adapter_version(good ? 7 : 5);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class ScriptedGrader final : public Grader {
 public:
  absl::StatusOr<GradedProof> GradeProof(const std::string&, const std::string& proof) const override {
    GradedProof g;
    g.score = absl::StrContains(proof, "good") ? 1.0 : absl::StrContains(proof, "minor") ? 0.5 : 0.0;
    return g;
  }
  absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string&, const std::string&,
                                               const std::string& analysis) const override {
    GradedAnalysis g;
    g.hallucinated = absl::StrContains(analysis, "bogus");
    return g;
  }
};

// A run store and the fake verifier service behind a ScoringClient.
class VerifierEvaluationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunStoreOptions o;
    o.db.synchronous_full = false;
    auto store = RunStore::Open(dir_.File("state.db"), o);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    GrpcServerOptions server_options;
    server_options.drain = absl::ZeroDuration();
    server_options.shutdown_grace = absl::Milliseconds(100);
    server_ = std::make_unique<GrpcServer>(server_options);
    server_->RegisterService(&verifier_, v1::Verifier::service_full_name());
    ASSERT_TRUE(server_->Start().ok());
    ScoringClientOptions client_options;
    client_options.verifier_target = server_->address();
    auto client = ScoringClient::Create(client_options, nullptr);
    ASSERT_TRUE(client.ok());
    client_ = *std::move(client);
  }

  void AddProblem(const std::string& id, v1::DatasetSplit split) {
    auto* p = records_.emplace_back().mutable_problem();
    p->set_problem_id(id);
    p->set_statement("Prove " + id);
    p->set_split(split);
  }

  void AddProof(const std::string& id, const std::string& problem_id, const std::string& text, double score) {
    auto* p = records_.emplace_back().mutable_proof();
    p->set_proof_id(id);
    p->set_problem_id(problem_id);
    p->set_proof(text);
    p->set_score(score);
  }

  absl::StatusOr<v1::Evaluation> Evaluate(const VerifierEvaluationOptions& options) {
    if (absl::Status s = store_->ImportRecords(records_, true).status(); !s.ok()) return s;
    return EvaluateVerifier(store_.get(), client_.get(), ScriptedGrader(), options);
  }

  TestDir dir_;
  FakeVerifier verifier_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<ScoringClient> client_;
  std::vector<v1::ImportRecordsRequest> records_;
};

TEST_F(VerifierEvaluationTest, MeasuresAgreementAndHallucinationsOnEvalProofs) {
  AddProblem("e1", v1::DATASET_SPLIT_EVAL);
  AddProblem("t1", v1::DATASET_SPLIT_TRAIN);
  AddProof("q1", "e1", "good proof", 1);
  AddProof("q2", "e1", "bad proof", 0);
  AddProof("q3", "e1", "meh proof", 0);
  AddProof("q4", "t1", "good training proof", 1);

  VerifierEvaluationOptions options;
  options.phase = v1::PHASE_VERIFIER_RL;
  options.point = v1::EVALUATION_POINT_BEFORE;
  auto e = Evaluate(options);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(verifier_.calls, 3);  // the training proof is not evaluated
  EXPECT_EQ(e->items(), 3u);
  EXPECT_DOUBLE_EQ(e->metrics().at("verifier_agreement"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(e->metrics().at("format_ok_rate"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(e->metrics().at("hallucinated_issue_rate"), 0.5);
  EXPECT_DOUBLE_EQ(e->metrics().at("adapter_version"), 5);  // the oldest adapter graded
  auto stored = store_->Evaluations();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].point(), v1::EVALUATION_POINT_BEFORE);
}

TEST_F(VerifierEvaluationTest, SortsEachDisagreementByKind) {
  AddProblem("e1", v1::DATASET_SPLIT_EVAL);
  // The grader's truth: "good" 1, "minor" 0.5, else 0; the fake verifier's score: "says <s>".
  AddProof("q1", "e1", "good, says 1", 1);      // agrees
  AddProof("q2", "e1", "flawed, says 1", 0);    // missed an issue
  AddProof("q3", "e1", "minor, says 1", 0.5);   // missed an issue
  AddProof("q4", "e1", "good, says 0.5", 1);    // a false issue
  AddProof("q5", "e1", "minor, says 0", 0.5);   // the wrong severity
  AddProof("q6", "e1", "flawed, says 0.5", 0);  // the wrong severity
  AddProof("q7", "e1", "meh", 0);               // no valid score

  auto e = Evaluate(VerifierEvaluationOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->items(), 7u);
  EXPECT_DOUBLE_EQ(e->metrics().at("verifier_agreement"), 1.0 / 7);
  EXPECT_DOUBLE_EQ(e->metrics().at("verifier_missed_issue_rate"), 2.0 / 7);
  EXPECT_DOUBLE_EQ(e->metrics().at("verifier_false_issue_rate"), 1.0 / 7);
  EXPECT_DOUBLE_EQ(e->metrics().at("verifier_wrong_severity_rate"), 2.0 / 7);
  EXPECT_DOUBLE_EQ(e->metrics().at("format_ok_rate"), 6.0 / 7);
}

}  // namespace
}  // namespace dsm
