// `dsm prepare` and `dsm start`, what docker-compose.yml's one-shot `init`
// and `start` services run, against the real binary and a real coordinator:
// prepare makes the built-in model (phase 0) and data once; start waits for
// the coordinator, imports the data into the PENDING run and starts it, and
// leaves a running run alone; no data, no coordinator or a misplaced
// --pipeline are clear errors.
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tests/integration/child_process.h"
#include "tests/integration/dsm_process.h"
#include "tests/integration/learner_client.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

// A built-in default small enough to prepare in seconds.
std::string WriteConfig(const std::string& dir, const std::string& run, const std::string& extra_builtin = "") {
  const std::string path = absl::StrCat(dir, "/", run, ".yaml");
  std::ofstream(path) << "run: {name: " << run << ", runs_dir: " << dir << "/runs, seed: 3}\n"
                      << "server: {host: 127.0.0.1, drain_seconds: 0.1, shutdown_grace_seconds: 1}\n"
                      << "services: {coordinator: {port: 0, metrics_port: 0}}\n"
                      << "model: {path: " << dir << "/model, max_len: 512}\n"
                      << "coordinator: {prompts_dir: " << std::getenv("DSM_SOURCE_DIR") << "/configs/prompts/tiny}\n"
                      << "builtin: {domain: chain, train_problems: 5, eval_problems: 3, proofs_per_problem: 1,"
                      << " own_proofs_per_problem: 1,"
                      << " hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1,"
                      << " intermediate_size: 64, vocab_size: 300, warmup_steps: 50, warmup_batch: 2" << extra_builtin << "}\n";
  return path;
}

// builtin.warmup_eval_every: held-out evaluations during phase 0, printed as they come (also
// where a non-terminal's progress shows only every tenth) and kept in warmup.json's curve;
// builtin.warmup_precision: named in the last line and in warmup.json; warmup.json also keeps
// what the own-proof pools gave.
TEST(SetupCommands, PhaseZeroPrintsAndKeepsItsEvaluationCurve) {
  TestDir dir;
  const std::string config = WriteConfig(dir.path(), "curve",
                                         ", warmup_eval_every: 2, warmup_micro_batch: 1, warmup_precision: bfloat16");
  const dsm_test::DsmResult prepared = dsm_test::RunDsm("prepare " + config + " --warmup-steps 5");
  ASSERT_EQ(prepared.exit_code, 0) << prepared.out << prepared.err;
  EXPECT_THAT(prepared.out, HasSubstr("phase 0 at step 2, held out: generator_format_ok "));
  EXPECT_THAT(prepared.out, HasSubstr("phase 0 at step 4, held out: "));
  EXPECT_THAT(prepared.out, HasSubstr("phase 0: 5 steps in "));
  EXPECT_THAT(prepared.out, HasSubstr(" s (bfloat16), loss "));
  std::ifstream file(dir.File("runs/curve/warmup.json"));
  ASSERT_TRUE(file.good());
  const nlohmann::json warmup = nlohmann::json::parse(file);
  ASSERT_EQ(warmup["curve"].size(), 3u);  // steps 2 and 4, then the final evaluation
  EXPECT_EQ(warmup["curve"][0]["step"], 2);
  EXPECT_EQ(warmup["curve"][2]["step"], 5);
  EXPECT_TRUE(warmup["curve"][1]["held_out"].contains("verifier_lookup_recall"));
  EXPECT_EQ(warmup["curve"][2]["held_out"], warmup["held_out"]);
  EXPECT_EQ(warmup["precision"], "bfloat16");
  // And the pools of its own proofs: how many, how many the checker scored 1, their time.
  ASSERT_TRUE(warmup.contains("own_proof_pools"));
  EXPECT_GE(warmup["own_proof_pools"].get<int>(), 0);
  EXPECT_GE(warmup["own_proof_score1_rate"].get<double>(), 0);
  EXPECT_LE(warmup["own_proof_score1_rate"].get<double>(), 1);
  EXPECT_GE(warmup["own_proof_seconds"].get<double>(), 0);
}

TEST(SetupCommands, PrepareOnceThenStartImportsAndStartsTheRunOnce) {
  TestDir dir;
  const std::string config = WriteConfig(dir.path(), "short");

  // --warmup-steps (DSM_WARMUP_STEPS in compose) shortens phase 0.
  const dsm_test::DsmResult prepared = dsm_test::RunDsm("prepare " + config + " --warmup-steps 2");
  ASSERT_EQ(prepared.exit_code, 0) << prepared.out << prepared.err;
  EXPECT_THAT(prepared.out, HasSubstr("phase 0: 2 steps"));
  EXPECT_THAT(prepared.out, HasSubstr("data: 8 problems, "));
  EXPECT_THAT(prepared.out, HasSubstr("proofs written by the model itself, graded by the checker"));
  EXPECT_TRUE(std::ifstream(dir.File("model/config.json")).good());
  // proofs.jsonl: the made-up proofs, then the model's own (one per problem, unless it wrote
  // nothing or the same text), all labelled by the checker.
  std::ifstream proofs_file(dir.File("runs/short/data/proofs.jsonl"));
  ASSERT_TRUE(proofs_file.good());
  std::vector<nlohmann::json> proofs;
  for (std::string line; std::getline(proofs_file, line);) proofs.push_back(nlohmann::json::parse(line));
  int own = 0;
  for (size_t i = 0; i < proofs.size(); ++i) {
    const std::string id = proofs[i]["proof_id"];
    EXPECT_EQ(proofs[i]["labeller"], "checker");
    if (id.find("-own0") == std::string::npos) continue;
    ++own;
    EXPECT_EQ(id, proofs[i]["problem_id"].get<std::string>() + "-own0");
    EXPECT_GE(i, 8u) << "an own proof before a made-up one";
    EXPECT_FALSE(proofs[i]["proof"].get<std::string>().empty());
  }
  EXPECT_EQ(proofs.size(), 8u + own);
  EXPECT_THAT(prepared.out, HasSubstr(absl::StrCat("data: ", own, " proofs written by the model itself")));
  const dsm_test::DsmResult again = dsm_test::RunDsm("prepare " + config);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already there; phase 0 skipped"));

  // No coordinator yet: a clear failure once --wait is over.
  const std::string nobody = absl::StrCat("127.0.0.1:", dsm_test::FreePort());
  const dsm_test::DsmResult unreachable =
      dsm_test::RunDsm("start " + config + " --coordinator " + nobody + " --wait 1");
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_THAT(unreachable.err, HasSubstr("did not answer within 1 s"));

  dsm_test::ChildProcess coordinator({"serve", "coordinator", "--config", config}, dir.File("coordinator.log"));
  const std::optional<std::string> line = coordinator.WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(60));
  ASSERT_TRUE(line.has_value()) << coordinator.Log();
  const std::string address = dsm_test::ServeAddress(*line);
  const dsm_test::DsmResult started = dsm_test::RunDsm("start " + config + " --coordinator " + address);
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;
  // 8 problems, 8 made-up proofs and the model's own, 8 analyses (one per made-up proof).
  EXPECT_THAT(started.out, HasSubstr(absl::StrCat("data: imported ", 24 + own, " records (0 already there)")));
  EXPECT_THAT(started.out, HasSubstr("run short RUN_STATE_RUNNING"));
  const dsm_test::DsmResult twice = dsm_test::RunDsm("start " + config + " --coordinator " + address);
  EXPECT_EQ(twice.exit_code, 0) << twice.err;
  EXPECT_THAT(twice.out, HasSubstr("run short is already RUNNING"));
  EXPECT_THAT(twice.out, ::testing::Not(HasSubstr("imported")));
}

TEST(SetupCommands, StartWithoutDataAndMisplacedFlagsAreClearErrors) {
  TestDir dir;
  const std::string config = WriteConfig(dir.path(), "empty");
  dsm_test::ChildProcess coordinator({"serve", "coordinator", "--config", config}, dir.File("coordinator.log"));
  const std::optional<std::string> line = coordinator.WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(60));
  ASSERT_TRUE(line.has_value()) << coordinator.Log();
  const dsm_test::DsmResult r = dsm_test::RunDsm("start " + config + " --coordinator " +
                                                 dsm_test::ServeAddress(*line) + " --data " + dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no data in " + dir.path()));

  // A config for your own model and data has nothing to prepare.
  const std::string own = dir.File("own.yaml");
  std::ofstream(own) << "run: {name: own, runs_dir: " << dir.path() << "/runs}\n";
  const dsm_test::DsmResult nothing = dsm_test::RunDsm("prepare " + own);
  EXPECT_EQ(nothing.exit_code, 0) << nothing.err;
  EXPECT_THAT(nothing.out, HasSubstr("builtin.domain is empty: nothing to prepare"));

  const dsm_test::DsmResult learner = dsm_test::RunDsm("serve learner --config " + own + " --pipeline");
  EXPECT_EQ(learner.exit_code, 2);
  EXPECT_THAT(learner.err, HasSubstr("--pipeline is the coordinator's"));
  const dsm_test::DsmResult lone = dsm_test::RunDsm("serve coordinator --config " + own + " --verifier 127.0.0.1:1");
  EXPECT_EQ(lone.exit_code, 2);
  EXPECT_THAT(lone.err, HasSubstr("--verifier and --meta-verifier need --pipeline"));
  const dsm_test::DsmResult half =
      dsm_test::RunDsm("serve coordinator --config " + own +
                       " --pipeline --learner 127.0.0.1:1 --verifier 127.0.0.1:2");
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.err, HasSubstr("coordinator.meta_verifier: required"));
  const dsm_test::DsmResult steps = dsm_test::RunDsm("prepare " + config + " --warmup-steps 0");
  EXPECT_EQ(steps.exit_code, 2);
}

}  // namespace
}  // namespace dsm
