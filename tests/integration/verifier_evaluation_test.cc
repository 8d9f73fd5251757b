// EvaluateVerifier against a fake verifier service and a scripted Grader:
// only evaluation problems count, format failures are misses, hallucinations
// are counted among well-formed analyses, and the evaluation is stored.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/grpc_server.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/verifier_evaluation.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

// "good" proofs: score 1; "bad": score 0 with a bogus issue; "meh": no valid score.
class FakeVerifier final : public v1::Verifier::CallbackService {
 public:
  int calls = 0;
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) override {
    ++calls;
    v1::Analysis* a = response->add_analyses();
    if (absl::StrContains(request->proof(), "meh")) {
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
    g.score = absl::StrContains(proof, "good") ? 1.0 : 0.0;
    return g;
  }
  absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string&, const std::string&,
                                               const std::string& analysis) const override {
    GradedAnalysis g;
    g.hallucinated = absl::StrContains(analysis, "bogus");
    return g;
  }
};

TEST(VerifierEvaluation, MeasuresAgreementAndHallucinationsOnEvalProofs) {
  TestDir dir;
  RunStoreOptions o;
  o.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::ImportRecordsRequest> records;
  auto problem = [&](const std::string& id, v1::DatasetSplit split) {
    auto* p = records.emplace_back().mutable_problem();
    p->set_problem_id(id);
    p->set_statement("Prove " + id);
    p->set_split(split);
  };
  auto proof = [&](const std::string& id, const std::string& problem_id, const std::string& text, double score) {
    auto* p = records.emplace_back().mutable_proof();
    p->set_proof_id(id);
    p->set_problem_id(problem_id);
    p->set_proof(text);
    p->set_score(score);
  };
  problem("e1", v1::DATASET_SPLIT_EVAL);
  problem("t1", v1::DATASET_SPLIT_TRAIN);
  proof("q1", "e1", "good proof", 1);
  proof("q2", "e1", "bad proof", 0);
  proof("q3", "e1", "meh proof", 0);
  proof("q4", "t1", "good training proof", 1);
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());

  FakeVerifier verifier;
  GrpcServerOptions server_options;
  server_options.drain = absl::ZeroDuration();
  server_options.shutdown_grace = absl::Milliseconds(100);
  GrpcServer server(server_options);
  server.RegisterService(&verifier, v1::Verifier::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  ScoringClientOptions client_options;
  client_options.verifier_target = server.address();
  auto client = ScoringClient::Create(client_options, nullptr);
  ASSERT_TRUE(client.ok());

  VerifierEvaluationOptions options;
  options.phase = v1::PHASE_VERIFIER_RL;
  options.point = v1::EVALUATION_POINT_BEFORE;
  auto e = EvaluateVerifier(store->get(), client->get(), ScriptedGrader(), options);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(verifier.calls, 3);  // the training proof is not evaluated
  EXPECT_EQ(e->items(), 3u);
  EXPECT_DOUBLE_EQ(e->metrics().at("verifier_agreement"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(e->metrics().at("format_ok_rate"), 2.0 / 3);
  EXPECT_DOUBLE_EQ(e->metrics().at("hallucinated_issue_rate"), 0.5);
  EXPECT_DOUBLE_EQ(e->metrics().at("adapter_version"), 5);  // the oldest adapter graded
  auto stored = (*store)->Evaluations();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].point(), v1::EVALUATION_POINT_BEFORE);
}

}  // namespace
}  // namespace dsm
