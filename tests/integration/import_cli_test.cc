// `dsm import` against `dsm serve coordinator`: a bad JSONL line is exit 2
// with one line naming the file, line and field (nothing sent); good files
// are imported, and importing them again counts duplicates.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/integration/child_process.h"
#include "tests/integration/dsm_process.h"
#include "tests/integration/learner_client.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

TEST(ImportCli, ChecksEveryLineThenImports) {
  const std::string dir = ::testing::TempDir() + "/import-cli";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const std::string config = dir + "/config.yaml";
  std::ofstream(config) << "run: {name: imports, runs_dir: " << dir << "}\n"
                        << "server: {drain_seconds: 0}\n"
                        << "services: {coordinator: {port: 0, metrics_port: 0}}\n";
  dsm_test::ChildProcess coordinator({"serve", "coordinator", "--config", config}, dir + "/coordinator.log");
  auto line = coordinator.WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(30));
  ASSERT_TRUE(line.has_value()) << coordinator.Log();
  const std::string address = dsm_test::ServeAddress(*line);

  const std::string good = dir + "/good.jsonl";
  std::ofstream(good) << R"({"problem_id": "p1", "statement": "Given: a=b, b=c. Prove: a=c."})" << "\n"
                      << "\n"
                      << R"({"proof_id": "q1", "problem_id": "p1", "proof": "1. a=b, so a=b\n2. b=c, so a=c\nThus a=c.", "score": 1})"
                      << "\n";
  const std::string bad = dir + "/bad.jsonl";
  std::ofstream(bad) << R"({"problem_id": "p2", "statement": "Given: x=y. Prove: x=y."})" << "\n"
                     << R"({"proof_id": "q2", "problem_id": "p2", "proof": "Thus x=y.", "score": 0.7})" << "\n"
                     << R"({"problem_id": "p3"})" << "\n";

  dsm_test::DsmResult r = dsm_test::RunDsm(absl::StrCat("import ", bad, " --coordinator ", address));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(dsm_test::CountLines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(bad + ":2: proof.score: 0.7 is not one of 0, 0.5, 1"));
  EXPECT_THAT(r.err, HasSubstr("(and 1 more bad lines)"));

  r = dsm_test::RunDsm(absl::StrCat("import ", good, " --coordinator ", address));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "imported 2 of 2 records (0 duplicates, 0 errors)\n");
  r = dsm_test::RunDsm(absl::StrCat("import ", good, " --coordinator ", address));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "imported 0 of 2 records (2 duplicates, 0 errors)\n");

  r = dsm_test::RunDsm(absl::StrCat("import ", good, " --coordinator ", address, " --run other"));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("run_name: no run \"other\""));
  EXPECT_EQ(coordinator.Stop(SIGTERM), 0) << coordinator.Log();
}

}  // namespace
}  // namespace dsm
