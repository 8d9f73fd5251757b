// `dsm eval` run as a process on a small model that dsm initialises, with LoRA adapters
// written here (as PEFT folders and as learner checkpoints): both strategies run, every
// proof is graded by the chain checker, the JSON report holds what the summary says, and
// bad flags or missing inputs are exit 2 with one line.
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "learner/checkpoint.h"
#include "model/lora.h"
#include "model/model_config.h"
#include "nlohmann/json.hpp"
#include "tasks/chain_domain.h"
#include "tests/integration/dsm_process.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using dsm_test::CountLines;
using dsm_test::ReadWholeFile;
using dsm_test::RunDsm;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Source() { return std::getenv("DSM_SOURCE_DIR"); }

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/eval_cli");
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    const std::string model = *dir_ + "/model";
    auto r = RunDsm("init-model --out " + model + " --hidden 32 --layers 1 --heads 2 --kv-heads 1" +
                    " --intermediate 64 --max-len 256 --vocab 600 --seed 5 --templates " + Source() +
                    "/configs/prompts/tiny");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto config = LoadModelConfig(model);
    ASSERT_TRUE(config.ok()) << config.status();
    LoraConfig lora;
    lora.r = 2;
    for (const char* role : {"generator", "verifier"}) {
      auto adapter = LoraAdapter::Create(*config, lora, /*seed=*/role[0]);
      ASSERT_TRUE(adapter.ok()) << adapter.status();
      ASSERT_TRUE((*adapter)->Save(*dir_ + "/" + role).ok());
      TrainerState state;
      state.step = 7;
      auto written = WriteCheckpoint(*dir_ + "/runs/evalrun/checkpoints/" + role, **adapter, {}, state);
      ASSERT_TRUE(written.ok()) << written.status();
    }
    ChainDomainOptions domain;
    domain.num_variables = 6;
    domain.min_chain_length = 2;
    domain.max_chain_length = 3;
    domain.max_distractors = 2;
    auto problems = GenerateChainProblems(domain, ChainSplit::kEval, 11, 3);
    ASSERT_TRUE(problems.ok()) << problems.status();
    std::ofstream jsonl(*dir_ + "/problems.jsonl");
    for (const ChainProblem& p : *problems) {
      nlohmann::json line;
      line["problem_id"] = p.id;
      line["statement"] = p.statement.Text();
      line["split"] = "DATASET_SPLIT_EVAL";
      jsonl << line.dump() << "\n";
    }
    std::ofstream(*dir_ + "/eval.yaml") << "run: {name: evalrun, runs_dir: " << *dir_ << "/runs}\n"
                                        << "runtime: {threads: 1}\n"
                                        << "model: {path: " << model << ", max_batch: 8, max_len: 256}\n"
                                        << "coordinator: {prompts_dir: " << Source() << "/configs/prompts/tiny}\n"
                                        << "builtin: {domain: chain}\n";
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Config() { return *dir_ + "/eval.yaml"; }
  static std::string Problems() { return " --problems-file " + *dir_ + "/problems.jsonl"; }
  static std::string* dir_;
};
std::string* EvalCli::dir_ = nullptr;

TEST_F(EvalCli, BothStrategiesRunAndEveryProofIsGraded) {
  const std::string out = *dir_ + "/report.json";
  auto r = RunDsm("eval " + Config() + Problems() + " --generator " + *dir_ + "/generator --verifier " + *dir_ +
                  "/verifier --max-iterations 2 --n 3 --verifications 2 --max-tokens 24 --seed 9 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("dsm eval: 3 problems, graded by the exact checker\n"));
  EXPECT_THAT(r.out, HasSubstr("sequential refinement"));
  EXPECT_THAT(r.out, HasSubstr("best-of-3 (2 verifications each)"));
  const nlohmann::json j = nlohmann::json::parse(ReadWholeFile(out));
  EXPECT_EQ(j["problems"], 3);
  EXPECT_EQ(j["graded"], true);
  ASSERT_EQ(j["refine"]["score_at"].size(), 2u);
  ASSERT_EQ(j["results"].size(), 3u);
  double first_sum = 0, sample_sum = 0;
  for (const auto& p : j["results"]) {
    const auto& attempts = p["refinement"];
    ASSERT_GE(attempts.size(), 1u);
    ASSERT_LE(attempts.size(), 2u);
    first_sum += attempts[0]["true_score"].get<double>();
    const auto& candidates = p["best_of_n"]["candidates"];
    ASSERT_EQ(candidates.size(), 3u);
    const int chosen = p["best_of_n"]["chosen"];
    ASSERT_GE(chosen, 0);
    ASSERT_LT(chosen, 3);
    double sum = 0;
    for (const auto& c : candidates) {
      const double t = c["true_score"];
      EXPECT_TRUE(t == 0 || t == 0.5 || t == 1) << t;
      EXPECT_LE(c["valid_verifications"].get<int>(), 2);
      sum += t;
    }
    sample_sum += sum / 3;
  }
  // The summary is the mean of what the results hold.
  EXPECT_DOUBLE_EQ(j["refine"]["score_at"][0].get<double>(), first_sum / 3);
  EXPECT_DOUBLE_EQ(j["best_of_n"]["sample_score"].get<double>(), sample_sum / 3);
  EXPECT_LE(j["best_of_n"]["selected_score"].get<double>(), j["best_of_n"]["oracle_score"].get<double>());
}

TEST_F(EvalCli, TheRunsNewestCheckpointsAreTheDefaultAdapters) {
  const std::string out = *dir_ + "/default.json";
  auto r = RunDsm("eval " + Config() + Problems() +
                  " --strategy best-of-n --n 2 --verifications 1 --max-tokens 16 --problems 1 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("checkpoints/generator/step-00000007/adapter"));
  EXPECT_THAT(r.err, HasSubstr("checkpoints/verifier/step-00000007/adapter"));
  const nlohmann::json j = nlohmann::json::parse(ReadWholeFile(out));
  EXPECT_EQ(j["problems"], 1);
  EXPECT_FALSE(j.contains("refine"));
}

TEST_F(EvalCli, BadInputIsExitTwoWithOneLine) {
  auto r = RunDsm("eval " + Config() + Problems() + " --strategy beam");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: eval: --strategy: \"beam\" is not one of refine, best-of-n, both\n");
  r = RunDsm("eval " + Config() + " --problems-file " + *dir_ + "/missing.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("dsm: eval: "));
  EXPECT_THAT(r.err, HasSubstr("missing.jsonl"));
  EXPECT_EQ(CountLines(r.err), 1);
  r = RunDsm("eval " + Config() + Problems() + " --generator " + *dir_ + "/nowhere");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nowhere"));
  EXPECT_EQ(CountLines(r.err), 2);  // the adapters line, then the error
  // A config whose run has no checkpoints of a role.
  std::ofstream(*dir_ + "/empty.yaml") << "run: {name: other, runs_dir: " << *dir_ << "/runs}\n"
                                       << "model: {path: " << *dir_ << "/model}\n"
                                       << "coordinator: {prompts_dir: " << Source() << "/configs/prompts/tiny}\n";
  r = RunDsm("eval " + *dir_ + "/empty.yaml" + Problems());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("dsm: eval: no generator checkpoint under "));
  EXPECT_EQ(CountLines(r.err), 1);
  r = RunDsm("eval " + *dir_ + "/empty.yaml");  // and no state.db for the default problems
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("state.db not found"));
}

}  // namespace
}  // namespace dsm
