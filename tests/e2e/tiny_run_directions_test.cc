// The built-in default end to end, as README command 1 runs it: `dsm run` on configs/tiny.yaml
// (only its paths and ports moved to a temporary folder and free ports), and the learning claims
// of the method, measured with the exact checker on held-out problems, read from summary.json:
//   - phase 1 raises the verifier's agreement with the checker;
//   - phase 3 (the meta-verifier in the reward) does not raise the hallucinated-issue rate;
//   - phase 4 raises the generator's proof score and the agreement of its self-evaluation with
//     the checker;
//   - phase 5's kept labels agree with the checker (>= 0.9);
// and the whole run takes at most 15 minutes on a 2-core machine. Labelled slow (about that long).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/child_process.h"
#include "tests/integration/dsm_process.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

// configs/tiny.yaml with its relative paths made absolute (runs in `dir`, templates in the
// source tree) and every port 0 (free ones), nothing else changed.
std::string TinyConfigIn(const std::string& dir) {
  const std::string source = std::getenv("DSM_SOURCE_DIR");
  std::string yaml = dsm_test::ReadWholeFile(source + "/configs/tiny.yaml");
  const std::string before = yaml;
  yaml = absl::StrReplaceAll(yaml, {{"runs_dir: runs", absl::StrCat("runs_dir: ", dir, "/runs")},
                                    {"path: runs/tiny/model", absl::StrCat("path: ", dir, "/runs/tiny/model")},
                                    {"prompts_dir: configs/prompts/tiny",
                                     absl::StrCat("prompts_dir: ", source, "/configs/prompts/tiny")}});
  for (int i = 1; i <= 5; ++i) {
    yaml = absl::StrReplaceAll(yaml, {{absl::StrCat("port: 5005", i), "port: 0"},
                                      {absl::StrCat("metrics_port: 910", i), "metrics_port: 0"}});
  }
  EXPECT_NE(yaml, before);
  return yaml;
}

TEST(TinyRun, EachPhaseHelpsMeasuredAgainstTheChecker) {
  TestDir dir;
  const std::string config = dir.path() + "/tiny.yaml";
  std::ofstream(config) << TinyConfigIn(dir.path());
  dsm_test::ChildProcess run({"run", config}, dir.path() + "/run.log");
  ASSERT_TRUE(run.WaitForLine("results:", absl::Minutes(25)).has_value()) << run.Log();
  EXPECT_EQ(run.Stop(0), 0) << run.Log();
  std::cout << run.Log() << std::flush;

  const nlohmann::json s =
      nlohmann::json::parse(dsm_test::ReadWholeFile(dir.path() + "/runs/tiny/summary.json"));
  std::cout << s.dump(2) << "\n";
  ASSERT_EQ(s["state"], "RUN_STATE_SUCCEEDED");
  EXPECT_LE(s["wall_seconds"].get<double>(), 15 * 60);
  EXPECT_GT(s["verifier_agreement_after"].get<double>(), s["verifier_agreement_before"].get<double>());
  EXPECT_LE(s["hallucinated_issue_rate_phase3"].get<double>(), s["hallucinated_issue_rate_phase1"].get<double>());
  EXPECT_GT(s["generator_score_after"].get<double>(), s["generator_score_before"].get<double>());
  EXPECT_GT(s["self_score_agreement_after"].get<double>(), s["self_score_agreement_before"].get<double>());
  ASSERT_TRUE(s["autolabel_agreement"].is_number()) << "phase 5 kept no label";
  EXPECT_GE(s["autolabel_agreement"].get<double>(), 0.9);
}

}  // namespace
}  // namespace dsm
