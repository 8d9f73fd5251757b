// A real Prometheus server (Debian's /usr/bin/prometheus) scrapes the
// built-in stack (acceptance 2 of issue 7): this test starts `dsm serve
// coordinator` and `dsm serve learner,worker,verifier,meta-verifier` on the
// tiny model as child processes on loopback, makes the learner take one
// optimizer step (adapter version 1 published, and installed by the worker),
// makes the worker generate (one Generate call, and the two generation work
// items of the run that it leases once version 1 is there), starts
// Prometheus with a 1 s scrape interval and the job names of
// deploy/prometheus/prometheus.yml, and asks Prometheus's HTTP API until
// every target is up and the key series have the values the work implies.
// It skips where /usr/bin/prometheus is not installed.
//
// Tokens generated: the sampler's dsm_sampler_tokens_generated_total (the
// Generate call's 4 tokens + 2 leases x 2 completions x 4 tokens), besides
// the finished leases and the completion tokens the learner trained on.
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_client.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/sampler.grpc.pb.h"
#include "services/coordinator/run_store.h"
#include "tests/deploy/deploy_stack.h"
#include "tests/integration/child_process.h"
#include "tests/integration/learner_client.h"

namespace dsm {
namespace {

using dsm_test::ChildProcess;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr int kWorkItems = 2;
constexpr int kSamples = 4;
constexpr int kCompletionTokens = 6;

// One scored group for the generator (4 samples of 6 tokens, rewards that
// differ): with groups_per_step 1, one optimizer step.
v1::ScoredGroup OneGroup() {
  v1::ScoredGroup group;
  group.set_group_id("g0");
  group.set_role(v1::ADAPTER_ROLE_GENERATOR);
  for (int id : {1, 5, 9}) group.add_prompt_token_ids(id);
  for (int s = 0; s < kSamples; ++s) {
    v1::ScoredSample* sample = group.add_samples();
    for (int t = 0; t < kCompletionTokens; ++t) {
      sample->add_completion_token_ids(10 + 7 * s + t);
      sample->add_behaviour_logprobs(-1.0f - 0.25f * t);
    }
    sample->set_adapter_version(0);
    sample->set_reward(s % 2);
  }
  return group;
}

// Percent-encodes a PromQL expression for a query string.
std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// The prometheus.yml for `targets` (job name -> metrics address): 1 s
// scrapes, one static target per job, and Prometheus scraping itself as in
// deploy/prometheus/prometheus.yml.
std::string PrometheusConfig(const std::map<std::string, std::string>& targets, const std::string& self) {
  std::string yaml = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\n";
  yaml += "scrape_configs:\n";
  for (const auto& [job, address] : targets) {
    absl::StrAppend(&yaml, "  - job_name: ", job, "\n    static_configs:\n      - targets: [\"", address, "\"]\n");
  }
  absl::StrAppend(&yaml, "  - job_name: prometheus\n    static_configs:\n      - targets: [\"", self, "\"]\n");
  return yaml;
}

class PrometheusScrape : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPrometheus, X_OK) != 0) {
      GTEST_SKIP() << kPrometheus << " is not installed (Debian package `prometheus`); nothing to scrape with";
    }
    // Per process: other build trees may run this test at the same time.
    dir_ = absl::StrCat(::testing::TempDir(), "/deploy-prometheus-scrape-", getpid());
    std::system(("rm -rf " + dir_ + " && mkdir -p " + dir_).c_str());
  }

  void TearDown() override {
    // Prometheus first (it keeps scraping), then the services.
    if (prometheus_ != nullptr) {
      EXPECT_EQ(prometheus_->Stop(SIGTERM), 0) << prometheus_->Log();
    }
    if (services_ != nullptr) {
      EXPECT_EQ(services_->Stop(SIGTERM), 0) << services_->Log();
    }
    if (coordinator_ != nullptr) {
      EXPECT_EQ(coordinator_->Stop(SIGTERM), 0) << coordinator_->Log();
    }
    if (!dir_.empty() && !HasFailure()) std::system(("rm -rf " + dir_).c_str());  // kept to debug a failure
  }

  std::string Logs() const {
    std::string logs;
    if (coordinator_ != nullptr) absl::StrAppend(&logs, "--- coordinator\n", coordinator_->Log());
    if (services_ != nullptr) absl::StrAppend(&logs, "--- services\n", services_->Log());
    if (prometheus_ != nullptr) absl::StrAppend(&logs, "--- prometheus\n", prometheus_->Log());
    return logs;
  }

  // The config of the stack, and the run's state.db with kWorkItems
  // generation items that need adapter version 1.
  std::string WriteConfig() {
    const std::string model = dsm_test::ModelWithTokenizer(dir_ + "/model");
    const std::string config = dir_ + "/config.yaml";
    std::ofstream(config) << "run: {name: scrape, runs_dir: " << dir_ << "/runs, seed: 3}\n"
                          << "runtime: {threads: 1}\n"
                          << "server: {drain_seconds: 0, shutdown_grace_seconds: 1}\n"
                          << "model: {path: " << model << ", max_batch: 8, max_len: 128}\n"
                          << "services: {coordinator: {port: 0, metrics_port: 0},"
                          << " learner: {port: " << dsm_test::FreePort() << ", metrics_port: 0},"
                          << " worker: {port: 0, metrics_port: 0}, verifier: {port: 0, metrics_port: 0},"
                          << " meta_verifier: {port: 0, metrics_port: 0}}\n"
                          << "lora: {r: 4, alpha: 8}\n"
                          << "learner: {roles: [generator, verifier, meta_verifier], groups_per_step: 1,"
                          << " learning_rate: 0.01, max_policy_lag: 1000}\n"
                          << "worker: {roles: [generator], capacity: 2}\n"
                          << "coordinator: {lease_ttl_seconds: 60, heartbeat_seconds: 1}\n"
                          << "limits: {max_n: 8, max_completion_tokens: 16, max_prompt_tokens: 64}\n";
    auto store = RunStore::Open(RunStore::StatePath(dir_ + "/runs", "scrape"), RunStoreOptions{});
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return config;
    EXPECT_TRUE((*store)->CreateRun("scrape", "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
    std::vector<WorkItemSpec> items;
    for (int i = 0; i < kWorkItems; ++i) {
      v1::GenerateWork work;
      for (int id : {1, 5, 9, i}) work.mutable_prompt()->mutable_token_ids()->add_ids(id);
      work.set_n(2);
      work.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
      work.set_min_adapter_version(1);
      work.mutable_params()->set_max_tokens(4);
      work.mutable_params()->set_ignore_eos(true);
      work.mutable_params()->set_return_logprobs(true);
      work.mutable_params()->set_seed(i);
      WorkItemSpec spec;
      spec.payload = work.SerializeAsString();
      spec.role = v1::ADAPTER_ROLE_GENERATOR;
      items.push_back(spec);
    }
    EXPECT_TRUE((*store)->queue().Enqueue(items, absl::Now()).ok());
    return config;
  }

  // Starts Prometheus scraping `targets` on a free loopback port and waits
  // until /-/ready answers 200; returns its address ("" on failure). A port
  // taken between FreePort and Prometheus's bind is retried.
  std::string StartPrometheus(const std::map<std::string, std::string>& targets) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::string address = absl::StrCat("127.0.0.1:", dsm_test::FreePort());
      const std::string config = dir_ + "/prometheus.yml";
      std::ofstream(config) << PrometheusConfig(targets, address);
      std::system(("rm -rf " + dir_ + "/tsdb").c_str());
      prometheus_ = std::make_unique<ChildProcess>(
          dsm_test::Program{kPrometheus},
          std::vector<std::string>{"--config.file=" + config, "--storage.tsdb.path=" + dir_ + "/tsdb",
                                   "--web.listen-address=" + address, "--log.level=info"},
          dir_ + "/prometheus.log");
      const absl::Time until = absl::Now() + absl::Seconds(30);
      while (absl::Now() < until && prometheus_->Running()) {
        if (dsm_test::HttpGet(address, "/-/ready").ok) return address;
        absl::SleepFor(absl::Milliseconds(100));
      }
      if (prometheus_->Running()) break;  // up but never ready: no retry
      ADD_FAILURE() << "prometheus exited (attempt " << attempt + 1 << "):\n" << prometheus_->Log();
    }
    return "";
  }

  std::string dir_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::unique_ptr<ChildProcess> services_;
  std::unique_ptr<ChildProcess> prometheus_;
};

// The value of a PromQL query that yields one sample; nullopt when the
// answer holds no sample (or is not a success), with the answer in `raw`.
std::optional<double> QueryOne(const std::string& prometheus, const std::string& promql, std::string* raw) {
  const dsm_test::HttpResult r = dsm_test::HttpGet(prometheus, "/api/v1/query?query=" + UrlEncode(promql));
  *raw = absl::StrCat(r.code, " ", r.body);
  if (!r.ok) return std::nullopt;
  const nlohmann::json answer = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded() || answer.value("status", "") != "success") return std::nullopt;
  const nlohmann::json& result = answer["data"]["result"];
  if (!result.is_array() || result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

TEST_F(PrometheusScrape, EveryTargetIsUpAndTheKeySeriesAreNonZero) {
  const std::string config = WriteConfig();
  const std::string prompts = dsm_test::PromptsDir(dir_ + "/prompts");

  coordinator_ = std::make_unique<ChildProcess>(std::vector<std::string>{"serve", "coordinator", "--config", config},
                                                dir_ + "/coordinator.log");
  auto line = coordinator_->WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(30));
  ASSERT_TRUE(line.has_value()) << Logs();
  const std::string coordinator_address = dsm_test::ServeAddress(*line);
  std::map<std::string, std::string> targets = {{"dsm-coordinator", dsm_test::MetricsAddress(*line)}};

  services_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{"serve", "learner,worker,verifier,meta-verifier", "--config", config, "--coordinator",
                               coordinator_address, "--prompts", prompts},
      dir_ + "/services.log");
  std::map<std::string, std::string> grpc_addresses;
  for (const char* role : {"learner", "worker", "verifier", "meta-verifier"}) {
    line = services_->WaitForLine(absl::StrCat("dsm serve ", role, ": grpc "), absl::Seconds(60));
    ASSERT_TRUE(line.has_value()) << Logs();
    grpc_addresses[role] = dsm_test::ServeAddress(*line);
    targets[absl::StrCat("dsm-", role)] = dsm_test::MetricsAddress(*line);
  }

  // Prometheus starts while the learner trains.
  const std::string prometheus = StartPrometheus(targets);
  ASSERT_FALSE(prometheus.empty()) << Logs();

  // One optimizer step: the generator's adapter version 1 is published.
  dsm_test::LearnerClient learner(grpc_addresses["learner"]);
  const std::vector<v1::GroupAck> acks = learner.Submit({OneGroup()});
  ASSERT_EQ(acks.size(), 1u) << Logs();
  ASSERT_EQ(acks[0].status(), v1::GROUP_STATUS_ACCEPTED) << acks[0].message();
  ASSERT_TRUE(learner.WaitForStep(1, absl::Seconds(30))) << Logs();

  // The worker samples with it (so it installed it).
  {
    auto sampler = v1::Sampler::NewStub(MakeChannel(grpc_addresses["worker"], ChannelOptions{}));
    v1::GenerateRequest request;
    for (int id : {1, 5, 9}) request.mutable_prompt()->mutable_token_ids()->add_ids(id);
    request.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
    request.set_min_adapter_version(1);
    request.mutable_params()->set_max_tokens(4);
    request.mutable_params()->set_ignore_eos(true);
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    auto reader = sampler->Generate(&context, request);
    v1::GenerateResponse response;
    uint64_t version = 0;
    int tokens = 0;
    while (reader->Read(&response)) {
      if (response.has_completion()) {
        version = response.completion().adapter_version();
        tokens = response.completion().token_ids_size();
      }
    }
    const grpc::Status status = reader->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Logs();
    EXPECT_EQ(version, 1u);
    EXPECT_EQ(tokens, 4);
  }

  // What Prometheus must see (exact values where the work fixes them). The
  // services' process serves one registry on four ports: each query names
  // the job it is about.
  struct Expected {
    std::string promql;
    double value;
  };
  const std::vector<Expected> expected = {
      {R"(dsm_learner_steps_total{job="dsm-learner",role="generator"})", 1},
      {R"(dsm_adapter_version{job="dsm-learner",role="generator"})", 1},
      {R"(dsm_worker_adapter_version{job="dsm-worker",role="generator"})", 1},
      {R"(dsm_learner_tokens_total{job="dsm-learner",role="generator"})", kSamples * kCompletionTokens},
      {R"(dsm_worker_leases_total{job="dsm-worker",outcome="generated"})", kWorkItems},
      {R"(dsm_sampler_tokens_generated_total{job="dsm-worker",role="generator"})", 4 + kWorkItems * 2 * 4},
      {R"(sum(dsm_coordinator_results_total{job="dsm-coordinator"}))", kWorkItems},
      {R"(count(up{job=~"dsm-.*"} == 1))", 5},
  };

  // Until every target is up and every series has its value, at most 40 s.
  std::vector<std::string> problems;
  const absl::Time until = absl::Now() + absl::Seconds(40);
  while (true) {
    problems.clear();
    const dsm_test::HttpResult r = dsm_test::HttpGet(prometheus, "/api/v1/targets");
    const nlohmann::json answer = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (!r.ok || answer.is_discarded()) {
      problems.push_back(absl::StrCat("/api/v1/targets: ", r.code, " ", r.body));
    } else {
      const nlohmann::json& active = answer["data"]["activeTargets"];
      std::map<std::string, std::string> health;  // job -> health
      for (const auto& target : active) {
        health[target["labels"]["job"].get<std::string>()] = target["health"].get<std::string>();
        if (target["health"] != "up") {
          problems.push_back(absl::StrCat("target ", target["scrapeUrl"].get<std::string>(), " is ",
                                          target["health"].get<std::string>(), ": ",
                                          target.value("lastError", std::string())));
        }
      }
      if (active.size() != targets.size() + 1) {
        problems.push_back(absl::StrCat(active.size(), " active targets, expected ", targets.size() + 1));
      }
      for (const auto& [job, address] : targets) {
        if (health.count(job) == 0) problems.push_back(absl::StrCat("no target for job ", job));
      }
    }
    for (const Expected& e : expected) {
      std::string raw;
      const std::optional<double> value = QueryOne(prometheus, e.promql, &raw);
      if (!value.has_value()) {
        problems.push_back(absl::StrCat(e.promql, ": no sample; answer: ", raw));
      } else if (*value != e.value) {
        problems.push_back(absl::StrCat(e.promql, " = ", *value, ", expected ", e.value));
      }
    }
    if (problems.empty() || absl::Now() > until) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_TRUE(problems.empty()) << "Prometheus at " << prometheus << " reports:\n  "
                                << absl::StrJoin(problems, "\n  ") << "\n"
                                << Logs();
}

}  // namespace
}  // namespace dsm
