// `dsm run` end to end on a shortened built-in configuration: phase 0 warms up a fresh tiny
// model, every service runs as a child process, the worker is SIGKILLed once phase 1 has begun and
// restarted by `dsm run` (phases 4 and 5 need it), the run SUCCEEDS and writes summary.json (every
// field of issue 6) and report.html; a second `dsm run` reports the finished run instead of
// repeating it; with coordinator.lockstep two runs of one seed sample, reward and measure the
// same; a bad config, or a configured port that something already listens on, is exit 2 with one
// line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "services/coordinator/run_store.h"
#include "tests/integration/child_process.h"
#include "tests/integration/dsm_process.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

// configs/tiny.yaml, shortened: a few warm-up steps, a few problems, short completions.
std::string ShortConfig(const std::string& dir) {
  const std::string source = std::getenv("DSM_SOURCE_DIR");
  return absl::StrCat(R"(run: {name: short, runs_dir: ")", dir, R"(/runs", seed: 7}
runtime: {threads: 1}
server: {host: 127.0.0.1, drain_seconds: 0.2, shutdown_grace_seconds: 2}
services:
  coordinator: {port: 0}
  learner: {port: 0}
  worker: {port: 0}
  verifier: {port: 0}
  meta_verifier: {port: 0}
limits: {max_prompt_tokens: 460, max_completion_tokens: 48, max_n: 16}
model: {max_batch: 16, max_len: 512}
lora: {r: 4, alpha: 8}
learner: {learning_rate: 1.0e-3, groups_per_step: 4, max_policy_lag: 1, checkpoint_every_steps: 1000}
worker: {roles: [generator], capacity: 4}
coordinator:
  lease_ttl_seconds: 20
  heartbeat_seconds: 1
  prompts_dir: ")", source, R"(/configs/prompts/tiny"
  group_size: 4
  generator_problems: 6
  auto_label_problems: 3
builtin:
  domain: chain
  train_problems: 6
  eval_problems: 4
  proofs_per_problem: 1
  analyses_per_proof: 1
  hidden_size: 32
  num_hidden_layers: 1
  num_attention_heads: 2
  num_key_value_heads: 1
  intermediate_size: 64
  vocab_size: 300
  warmup_steps: 2
  warmup_batch: 4
)");
}

TEST(DsmRun, RunsThePipelineRestartsAKilledWorkerAndWritesTheResults) {
  TestDir dir;
  const std::string config = dir.path() + "/short.yaml";
  std::ofstream(config) << ShortConfig(dir.path());
  dsm_test::ChildProcess run({"run", config}, dir.path() + "/run.log");

  // The worker's pid from the services line.
  std::optional<std::string> services = run.WaitForLine("services:", absl::Seconds(240));
  ASSERT_TRUE(services.has_value()) << run.Log();
  const size_t at = services->find("worker ");
  ASSERT_NE(at, std::string::npos) << *services;
  const size_t pid_at = services->find("(pid ", at);
  int worker_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(services->substr(pid_at + 5, services->find(')', pid_at) - pid_at - 5), &worker_pid));

  // Killed once phase 1 has begun; `dsm run` starts it again, and phases 4 and 5 get their proofs from the new one.
  ASSERT_TRUE(run.WaitForLine("phase 1 verifier RL", absl::Seconds(300)).has_value()) << run.Log();
  ASSERT_EQ(kill(worker_pid, SIGKILL), 0);
  ASSERT_TRUE(run.WaitForLine("worker restarted", absl::Seconds(60)).has_value()) << run.Log();

  ASSERT_TRUE(run.WaitForLine("results:", absl::Seconds(400)).has_value()) << run.Log();
  EXPECT_EQ(run.Stop(0), 0) << run.Log();  // signal 0: only waits
  const std::string log = run.Log();
  EXPECT_THAT(log, HasSubstr("worker was killed by signal 9"));
  EXPECT_THAT(log, HasSubstr("run short RUN_STATE_SUCCEEDED"));
  // Every phase has its lines, however short it was.
  for (const char* phase : {"phase 1 verifier RL (it 1)", "phase 2 meta-verifier RL (it 1)",
                            "phase 3 enhanced verifier RL (it 1)", "phase 4 generator RL (it 1)",
                            "phase 5 auto-labelling (it 1)"}) {
    EXPECT_THAT(log, HasSubstr(phase));
  }

  const std::string run_dir = dir.path() + "/runs/short";
  const nlohmann::json summary = nlohmann::json::parse(dsm_test::ReadWholeFile(run_dir + "/summary.json"));
  EXPECT_EQ(summary["state"], "RUN_STATE_SUCCEEDED");
  // Every field of the issue is there; these are measured on every run (held-out problems exist).
  for (const char* key : {"verifier_agreement_before", "verifier_agreement_after", "hallucinated_issue_rate_phase1",
                          "hallucinated_issue_rate_phase3", "generator_score_before", "generator_score_after",
                          "self_score_agreement_before", "self_score_agreement_after", "wall_seconds"}) {
    ASSERT_TRUE(summary.contains(key)) << key;
    EXPECT_TRUE(summary[key].is_number()) << key << ": " << summary[key];
  }
  for (const char* key : {"autolabel_agreement", "autolabel_kept_fraction"}) {
    ASSERT_TRUE(summary.contains(key)) << key;  // null when phase 5 kept no label
  }
  EXPECT_GT(summary["wall_seconds"].get<double>(), 0);
  EXPECT_EQ(summary["claims"].size(), 5u);
  // Phase 3 trains the verifier adapter on the labelled analyses too (METHOD.md): the
  // meta-verifier service samples them with that adapter, so none is left out for want of it.
  const std::string coordinator_log = dsm_test::ReadWholeFile(run_dir + "/logs/coordinator.log");
  EXPECT_THAT(coordinator_log, HasSubstr("phase PHASE_ENHANCED_VERIFIER_RL (iteration 1) started"));
  EXPECT_THAT(coordinator_log, ::testing::Not(HasSubstr("is not hosted by this server")));
  // Phase 4 samples no further ahead than the learner keeps groups (groups_per_step 4 × lag 1),
  // so its 6 problems go out in two windows, and the run still ends.
  EXPECT_THAT(coordinator_log, HasSubstr("phase 4 pass 1: 6 problems, at most 4 in flight"));
  const std::string report = dsm_test::ReadWholeFile(run_dir + "/report.html");
  EXPECT_THAT(report, HasSubstr("phase 1 verifier RL"));
  EXPECT_THAT(report, HasSubstr("Phase 1 raises the verifier"));

  // A finished run is reported, not repeated.
  const dsm_test::DsmResult again = dsm_test::RunDsm("run " + config);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already ended RUN_STATE_SUCCEEDED"));
}

// What a finished run trained on: each group's status and, per sample, everything but the
// log-probabilities (a sampler's floating point differs in the last bits between batch sizes).
std::map<std::string, std::string> TrainedOn(const std::string& state_db) {
  std::map<std::string, std::string> out;
  auto store = RunStore::Open(state_db, RunStoreOptions{});
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return out;
  for (int status = kGroupPending; status <= v1::GroupStatus_MAX; ++status) {
    auto groups = (*store)->GroupsWithStatus(status, 1000000);
    EXPECT_TRUE(groups.ok()) << groups.status();
    if (!groups.ok()) continue;
    for (const GroupRecord& g : *groups) {
      std::string& signature = out[g.group_id];
      absl::StrAppend(&signature, "status ", g.status, " prompt ", absl::StrJoin(g.prompt_token_ids, ","));
      for (const SampleRecord& s : g.samples) {
        v1::ScoredSample sample = s.sample;
        sample.clear_behaviour_logprobs();
        absl::StrAppend(&signature, "\n", sample.ShortDebugString());
      }
    }
  }
  return out;
}

// Lockstep (coordinator.lockstep) without the samplers' log-probabilities in the learner's ratio
// (learner.grpo.importance_correction: false): two runs with the same seed sample the same
// completions, with the same adapter versions, give them the same rewards, and measure the same
// evaluations.
TEST(DsmRun, LockstepRunsWithTheSameSeedRepeatThemselves) {
  std::vector<std::map<std::string, std::string>> trained;
  std::vector<nlohmann::json> summaries;
  for (int i = 0; i < 2; ++i) {
    TestDir dir;
    const std::string config = dir.path() + "/lockstep.yaml";
    std::string text = ShortConfig(dir.path());
    text.replace(text.find("  group_size: 4\n"), 16, "  group_size: 4\n  lockstep: true\n");
    // The learner's ratio from its own log-probabilities, not the samplers' (whose last bits
    // depend on what shared their batch).
    text = absl::StrReplaceAll(text, {{"{port: 0}", "{port: 0, metrics_port: 0}"}});  // beside anything
    const std::string learner = "checkpoint_every_steps: 1000}";
    text.replace(text.find(learner), learner.size(), "checkpoint_every_steps: 1000, grpo: {importance_correction: false}}");
    std::ofstream(config) << text;
    dsm_test::ChildProcess run({"run", config}, dir.path() + "/run.log");
    ASSERT_TRUE(run.WaitForLine("results:", absl::Seconds(600)).has_value()) << run.Log();
    EXPECT_EQ(run.Stop(0), 0) << run.Log();
    trained.push_back(TrainedOn(dir.path() + "/runs/short/state.db"));
    summaries.push_back(nlohmann::json::parse(dsm_test::ReadWholeFile(dir.path() + "/runs/short/summary.json")));
  }
  ASSERT_GT(trained[0].size(), 10u);
  EXPECT_EQ(trained[0].size(), trained[1].size());
  for (const auto& [id, signature] : trained[0]) {
    auto other = trained[1].find(id);
    ASSERT_NE(other, trained[1].end()) << id << " only in the first run";
    EXPECT_EQ(signature, other->second) << id;
  }
  for (const auto& [key, value] : summaries[0].items()) {
    if (!value.is_number() || absl::StrContains(key, "seconds")) continue;
    EXPECT_EQ(value, summaries[1][key]) << key;
  }
}

// Phase 0 runs for minutes: the first Ctrl-C / SIGTERM ends it at once (no services are up yet),
// not when the warm-up is over.
TEST(DsmRun, SigtermInPhaseZeroEndsTheRunAtOnce) {
  TestDir dir;
  const std::string config = dir.path() + "/long.yaml";
  std::ofstream(config) << ShortConfig(dir.path()) << "  warmup_max_seconds: 600\n";
  // A warm-up of 100000 steps would take far longer than this test may wait.
  std::string text = dsm_test::ReadWholeFile(config);
  text.replace(text.find("warmup_steps: 2"), 15, "warmup_steps: 100000");
  std::ofstream(config, std::ios::trunc) << text;
  dsm_test::ChildProcess run({"run", config}, dir.path() + "/run.log");
  ASSERT_TRUE(run.WaitForLine("phase 0 warm-up SFT", absl::Seconds(60)).has_value()) << run.Log();
  const absl::Time sent = absl::Now();
  ASSERT_EQ(kill(run.pid(), SIGTERM), 0);
  while (run.Running() && absl::Now() - sent < absl::Seconds(20)) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_FALSE(run.Running()) << "dsm run still in phase 0 20 s after SIGTERM\n" << run.Log();
  EXPECT_EQ(run.Stop(0), 130) << run.Log();
  EXPECT_THAT(run.Log(), HasSubstr("interrupted in phase 0"));
  EXPECT_THAT(run.Log(), ::testing::Not(HasSubstr("services:")));
}

TEST(DsmRun, ABadConfigIsExitTwoWithOneLine) {
  TestDir dir;
  const std::string config = dir.path() + "/bad.yaml";
  std::ofstream(config) << "run: {name: bad}\nbuiltin: {domain: chain, warmup_batch: 0}\n";
  const dsm_test::DsmResult r = dsm_test::RunDsm("run " + config);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(dsm_test::CountLines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("builtin.warmup_batch: 0 is out of range"));
  std::ofstream(config) << "run: {name: mine}\n";
  const dsm_test::DsmResult own = dsm_test::RunDsm("run " + config);
  EXPECT_EQ(own.exit_code, 2);
  EXPECT_THAT(own.err, HasSubstr("builtin.domain is empty"));
}

// A socket listening on a free loopback port (as another `dsm run` would), closed with the object.
class ListeningSocket {
 public:
  ListeningSocket() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 1) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~ListeningSocket() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }  // 0 when it could not listen

 private:
  int fd_ = -1;
  int port_ = 0;
};

// ShortConfig with `from` (one service's line) replaced by `to`, written to dir/busy.yaml.
std::string BusyConfig(const std::string& dir, const std::string& from, const std::string& to) {
  std::string text = ShortConfig(dir);
  text.replace(text.find(from), from.size(), to);
  const std::string config = dir + "/busy.yaml";
  std::ofstream(config) << text;
  return config;
}

TEST(DsmRun, APortInUseIsExitTwoBeforePhaseZero) {
  TestDir dir;
  // Something (say, another `dsm run`) listens where the coordinator's port is configured.
  ListeningSocket busy;
  ASSERT_GT(busy.port(), 0);
  const std::string config =
      BusyConfig(dir.path(), "coordinator: {port: 0}", absl::StrCat("coordinator: {port: ", busy.port(), "}"));
  const dsm_test::DsmResult r = dsm_test::RunDsm("run " + config);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(dsm_test::CountLines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat("services.coordinator.port: 127.0.0.1:", busy.port(), " is in use")));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("phase 0"))) << "the port is checked before the warm-up";
}

TEST(DsmRun, APortInUseStopsFreshBeforeItDeletesTheRun) {
  TestDir dir;
  ListeningSocket busy;
  ASSERT_GT(busy.port(), 0);
  const std::string config = BusyConfig(dir.path(), "meta_verifier: {port: 0}",
                                        absl::StrCat("meta_verifier: {port: 0, metrics_port: ", busy.port(), "}"));
  const std::string kept = dir.path() + "/runs/short/keep.txt";
  std::filesystem::create_directories(dir.path() + "/runs/short");
  std::ofstream(kept) << "a run's file\n";
  const dsm_test::DsmResult r = dsm_test::RunDsm("run --fresh " + config);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(dsm_test::CountLines(r.err), 1) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr(absl::StrCat("services.meta_verifier.metrics_port: 127.0.0.1:", busy.port(), " is in use")));
  EXPECT_TRUE(std::filesystem::exists(kept)) << "--fresh deleted the run before it found the port in use";
}

}  // namespace
}  // namespace dsm
