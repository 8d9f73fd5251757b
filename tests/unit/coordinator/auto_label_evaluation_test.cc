// EvaluateAutoLabels: phase 5's kept labels against the exact grader, and where the ones that
// disagree go wrong (a missed issue, an issue that is not there, the wrong severity).
#include "services/coordinator/auto_label_evaluation.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// The true score of a proof is written in it: "proof worth 0.5 #3" is worth 0.5.
class ScoreInTextGrader final : public Grader {
 public:
  absl::StatusOr<GradedProof> GradeProof(const std::string&, const std::string& proof) const override {
    GradedProof g;
    g.score = std::stod(proof.substr(std::string("proof worth ").size()));
    return g;
  }
  absl::StatusOr<GradedAnalysis> GradeAnalysis(const std::string&, const std::string&,
                                               const std::string&) const override {
    return GradedAnalysis{};
  }
};

class AutoLabelEvaluationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunStoreOptions o;
    o.db.synchronous_full = false;
    auto s = RunStore::Open(dir_.File("state.db"), o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    v1::ImportRecordsRequest problem;
    problem.mutable_problem()->set_problem_id("p1");
    problem.mutable_problem()->set_statement("Given: a=b. Prove: a=b.");
    ASSERT_TRUE(store_->ImportRecords({problem}, false).ok());
  }
  // A label `label` of iteration `iteration` on a proof whose true score is `truth`.
  void Label(double truth, double label, uint32_t iteration = 1) {
    v1::LabelledProof p;
    p.set_proof_id(absl::StrCat("auto-", ++labels_));
    p.set_problem_id("p1");
    p.set_proof(absl::StrCat("proof worth ", truth, " #", labels_));
    p.set_score(label);
    p.set_labeller("auto");
    ASSERT_TRUE(store_->AddAutoLabels({p}, iteration, std::nullopt, kT0).ok());
  }
  TestDir dir_;
  std::unique_ptr<RunStore> store_;
  ScoreInTextGrader grader_;
  int labels_ = 0;
};

TEST_F(AutoLabelEvaluationTest, SplitsTheDisagreementsByKind) {
  // Agree: 4. Missed issues: 0 -> 1, 0.5 -> 1. False issues: 1 -> 0, 1 -> 0.5. Wrong severity:
  // 0.5 -> 0, 0 -> 0.5. Another iteration's label is not counted.
  for (auto [truth, label] : std::vector<std::pair<double, double>>{
           {0, 0}, {0.5, 0.5}, {1, 1}, {1, 1}, {0, 1}, {0.5, 1}, {1, 0}, {1, 0.5}, {0.5, 0}, {0, 0.5}}) {
    Label(truth, label);
  }
  Label(0, 1, /*iteration=*/2);
  absl::StatusOr<v1::Evaluation> e = EvaluateAutoLabels(store_.get(), grader_, 1, 20);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->phase(), v1::PHASE_AUTO_LABEL);
  EXPECT_EQ(e->items(), 10u);
  const auto& m = e->metrics();
  EXPECT_DOUBLE_EQ(m.at("autolabel_agreement"), 0.4);
  EXPECT_DOUBLE_EQ(m.at("autolabel_kept_fraction"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("autolabel_missed_issue_rate"), 0.2);
  EXPECT_DOUBLE_EQ(m.at("autolabel_false_issue_rate"), 0.2);
  EXPECT_DOUBLE_EQ(m.at("autolabel_wrong_severity_rate"), 0.2);
  // Stored in the run.
  auto stored = store_->Evaluations();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_DOUBLE_EQ((*stored)[0].metrics().at("autolabel_missed_issue_rate"), 0.2);
}

TEST_F(AutoLabelEvaluationTest, NoLabelIsAFailedPrecondition) {
  Label(1, 1, /*iteration=*/2);
  absl::StatusOr<v1::Evaluation> e = EvaluateAutoLabels(store_.get(), grader_, 1, 7);
  EXPECT_TRUE(absl::IsFailedPrecondition(e.status())) << e.status();
  EXPECT_EQ(std::string(e.status().message()), "evaluation: no proof was auto-labelled in iteration 1 (7 considered)");
}

}  // namespace
}  // namespace dsm
