// Every metric the Grafana dashboards (deploy/grafana/dashboards/*.json) and
// the alert rules (deploy/prometheus/alerts.yml) name exists in what our
// services really expose: this test starts `dsm serve coordinator` and `dsm
// serve learner,worker,verifier,meta-verifier` as child processes on a tiny
// model, drives one request of each kind (so that labelled families, which
// common/metrics_registry.cc leaves out of the exposition until they have a
// child, appear), fetches every /metrics endpoint and checks each name
// (histograms by their _bucket / _sum / _count samples).
//
// Driven: two generation work items in the run's state.db (the worker leases
// them: results accepted), a scripted worker that takes a lease and drops its
// stream (a lease reclaimed as released), InitAdapter for the three roles
// (adapter versions published and installed), one Verify and one Assess.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/grpc_client.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/coordinator/run_store.h"
#include "tests/deploy/deploy_stack.h"
#include "tests/integration/child_process.h"
#include "tests/integration/coordinator_client.h"
#include "tests/integration/learner_client.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using dsm_test::ChildProcess;

std::string SourceDir() { return std::getenv("DSM_SOURCE_DIR"); }

// ---------------------------------------------------------------------------
// Names used by the dashboards and the rules.

void AddNames(const std::string& expr, const std::string& where, std::map<std::string, std::string>* names) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName); it != std::sregex_iterator(); ++it) {
    const std::string name = it->str();
    // Only dsm's own metrics; the PromQL of a name is never inside a quoted
    // label value here (label values are roles, reasons, codes).
    if (name.rfind("dsm_", 0) == 0) names->emplace(name, where);
  }
}

void CollectJsonExprs(const nlohmann::json& j, const std::string& file, std::map<std::string, std::string>* names) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "expr" && it.value().is_string()) {
        AddNames(it.value().get<std::string>(), file, names);
      } else {
        CollectJsonExprs(it.value(), file, names);
      }
    }
  } else if (j.is_array()) {
    for (const auto& e : j) CollectJsonExprs(e, file, names);
  }
}

// name -> the file that uses it first.
std::map<std::string, std::string> UsedMetricNames() {
  std::map<std::string, std::string> names;
  int dashboards = 0;
  for (const auto& entry : fs::directory_iterator(SourceDir() + "/deploy/grafana/dashboards")) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    CollectJsonExprs(nlohmann::json::parse(in), entry.path().filename().string(), &names);
    ++dashboards;
  }
  EXPECT_GE(dashboards, 2);
  int rules = 0;
  const YAML::Node alerts = YAML::LoadFile(SourceDir() + "/deploy/prometheus/alerts.yml");
  for (const auto& group : alerts["groups"]) {
    for (const auto& rule : group["rules"]) {
      AddNames(rule["expr"].as<std::string>(), "alerts.yml " + rule["alert"].as<std::string>(), &names);
      ++rules;
    }
  }
  EXPECT_GE(rules, 8);
  return names;
}

// ---------------------------------------------------------------------------
// The services.

// Sample name -> the label sets of its samples ("role=generator,..."), from
// a text exposition.
using Samples = std::map<std::string, std::vector<std::map<std::string, std::string>>>;
void ParseExposition(const std::string& text, Samples* samples) {
  static const std::regex kLabel("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t end = line.find_first_of("{ ");
    const std::string name(line.substr(0, end));
    std::map<std::string, std::string> labels;
    if (end != absl::string_view::npos && line[end] == '{') {
      const std::string body(line.substr(end + 1, line.find('}') - end - 1));
      for (auto it = std::sregex_iterator(body.begin(), body.end(), kLabel); it != std::sregex_iterator(); ++it) {
        labels[(*it)[1]] = (*it)[2];
      }
    }
    (*samples)[name].push_back(labels);
  }
}

class DeployMetricNames : public ::testing::Test {
 protected:
  // Starts the stack, drives it, and keeps every endpoint's samples.
  static void SetUpTestSuite() {
    used_ = new std::map<std::string, std::string>(UsedMetricNames());
    samples_ = new Samples();
    log_ = new std::string();
    const std::string dir = ::testing::TempDir() + "/deploy-metric-names";
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    const std::string model = dsm_test::ModelWithTokenizer(dir + "/model");
    const std::string prompts = dsm_test::PromptsDir(dir + "/prompts");
    const std::string config = dir + "/config.yaml";
    std::ofstream(config) << "run: {name: metrics, runs_dir: " << dir << "/runs, seed: 3}\n"
                          << "runtime: {threads: 1}\n"
                          << "server: {drain_seconds: 0, shutdown_grace_seconds: 1}\n"
                          << "model: {path: " << model << ", max_batch: 8, max_len: 128}\n"
                          << "services: {coordinator: {port: 0, metrics_port: 0},"
                          << " learner: {port: " << dsm_test::FreePort() << ", metrics_port: 0},"
                          << " worker: {port: 0, metrics_port: 0}, verifier: {port: 0, metrics_port: 0},"
                          << " meta_verifier: {port: 0, metrics_port: 0}}\n"
                          << "lora: {r: 4, alpha: 8}\n"
                          << "learner: {roles: [generator, verifier, meta_verifier]}\n"
                          << "worker: {roles: [generator], capacity: 2}\n"
                          << "coordinator: {lease_ttl_seconds: 60, heartbeat_seconds: 1}\n"
                          << "limits: {max_n: 8, max_completion_tokens: 16, max_prompt_tokens: 64}\n";
    {
      auto store = RunStore::Open(RunStore::StatePath(dir + "/runs", "metrics"), RunStoreOptions{});
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE((*store)->CreateRun("metrics", "", v1::RUN_STATE_RUNNING, absl::Now()).ok());
      std::vector<WorkItemSpec> items;
      for (int i = 0; i < 2; ++i) {
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
      ASSERT_TRUE((*store)->queue().Enqueue(items, absl::Now()).ok());
    }

    coordinator_ = new ChildProcess({"serve", "coordinator", "--config", config}, dir + "/coordinator.log");
    auto line = coordinator_->WaitForLine("dsm serve coordinator: grpc ", absl::Seconds(30));
    ASSERT_TRUE(line.has_value()) << coordinator_->Log();
    const std::string coordinator_address = dsm_test::ServeAddress(*line);
    std::vector<std::string> metrics = {dsm_test::MetricsAddress(*line)};
    {
      // A worker that takes a lease and vanishes: the lease is reclaimed.
      auto stub = v1::Coordinator::NewStub(MakeChannel(coordinator_address, ChannelOptions{}));
      dsm_test::ScriptedWorker scripted(stub.get(), "scripted", 1);
      ASSERT_EQ(scripted.Grants(1).size(), 1u) << coordinator_->Log();
      scripted.Abort();
    }

    services_ = new ChildProcess({"serve", "learner,worker,verifier,meta-verifier", "--config", config,
                                  "--coordinator", coordinator_address, "--prompts", prompts},
                                 dir + "/services.log");
    std::map<std::string, std::string> grpc;
    for (const char* role : {"learner", "worker", "verifier", "meta-verifier"}) {
      line = services_->WaitForLine(absl::StrCat("dsm serve ", role, ": grpc "), absl::Seconds(60));
      ASSERT_TRUE(line.has_value()) << services_->Log();
      grpc[role] = dsm_test::ServeAddress(*line);
      metrics.push_back(dsm_test::MetricsAddress(*line));
    }
    auto learner = v1::Learner::NewStub(MakeChannel(grpc["learner"], ChannelOptions{}));
    for (v1::AdapterRole role :
         {v1::ADAPTER_ROLE_GENERATOR, v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_META_VERIFIER}) {
      grpc::ClientContext context;
      SetDeadline(&context, absl::Seconds(30));
      v1::InitAdapterRequest init;
      init.set_role(role);
      init.mutable_fresh();
      v1::InitAdapterResponse response;
      const grpc::Status status = learner->InitAdapter(&context, init, &response);
      ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << services_->Log();
    }
    {
      auto verifier = v1::Verifier::NewStub(MakeChannel(grpc["verifier"], ChannelOptions{}));
      v1::VerifyRequest request;
      request.set_problem("2+2=4?");
      request.set_proof("yes");
      request.set_n(2);
      request.set_min_adapter_version(1);
      request.mutable_params()->set_max_tokens(4);
      request.mutable_params()->set_ignore_eos(true);
      v1::VerifyResponse response;
      grpc::ClientContext context;
      SetDeadline(&context, absl::Seconds(60));
      const grpc::Status status = verifier->Verify(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << services_->Log();
    }
    {
      auto meta = v1::MetaVerifier::NewStub(MakeChannel(grpc["meta-verifier"], ChannelOptions{}));
      v1::AssessRequest request;
      request.set_problem("2+2=4?");
      request.set_proof("yes");
      request.set_analysis("fine \\boxed{1}");
      request.set_n(2);
      request.set_min_adapter_version(1);
      request.mutable_params()->set_max_tokens(4);
      request.mutable_params()->set_ignore_eos(true);
      v1::AssessResponse response;
      grpc::ClientContext context;
      SetDeadline(&context, absl::Seconds(60));
      const grpc::Status status = meta->Assess(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << services_->Log();
    }

    // Until every used name is exposed (the worker finishes its leases
    // asynchronously), at most 60 s; then the tests judge what was seen.
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (true) {
      Samples seen;
      bool all_fetched = true;
      for (const std::string& address : metrics) {
        const dsm_test::HttpResult r = dsm_test::HttpGet(address, "/metrics");
        all_fetched = all_fetched && r.ok;
        ParseExposition(r.body, &seen);
      }
      *samples_ = seen;
      bool complete = all_fetched;
      for (const auto& [name, where] : *used_) complete = complete && seen.count(name) > 0;
      if (complete || absl::Now() > until) break;
      absl::SleepFor(absl::Milliseconds(250));
    }
    *log_ = absl::StrCat("--- coordinator\n", coordinator_->Log(), "--- services\n", services_->Log());
  }

  static void TearDownTestSuite() {
    if (services_ != nullptr) {
      EXPECT_EQ(services_->Stop(SIGTERM), 0) << services_->Log();
    }
    if (coordinator_ != nullptr) {
      EXPECT_EQ(coordinator_->Stop(SIGTERM), 0) << coordinator_->Log();
    }
    delete services_;
    delete coordinator_;
    delete used_;
    delete samples_;
    delete log_;
    services_ = coordinator_ = nullptr;
  }

  static std::set<std::string> RoleValues(const std::string& name) {
    std::set<std::string> roles;
    auto it = samples_->find(name);
    if (it == samples_->end()) return roles;
    for (const auto& labels : it->second) {
      auto role = labels.find("role");
      if (role != labels.end()) roles.insert(role->second);
    }
    return roles;
  }

  static inline std::map<std::string, std::string>* used_ = nullptr;
  static inline Samples* samples_ = nullptr;
  static inline std::string* log_ = nullptr;
  static inline ChildProcess* coordinator_ = nullptr;
  static inline ChildProcess* services_ = nullptr;
};

TEST_F(DeployMetricNames, EveryNameInTheDashboardsAndAlertsIsExposed) {
  ASSERT_GE(used_->size(), 25u) << "too few metric names found in the dashboards and rules";
  std::vector<std::string> missing;
  for (const auto& [name, where] : *used_) {
    if (samples_->count(name) == 0) missing.push_back(absl::StrCat(name, " (", where, ")"));
  }
  std::vector<std::string> exposed;
  for (const auto& [name, unused] : *samples_) exposed.push_back(name);
  EXPECT_TRUE(missing.empty()) << "not in any /metrics exposition:\n  " << absl::StrJoin(missing, "\n  ")
                               << "\nexposed: " << absl::StrJoin(exposed, " ") << "\n"
                               << *log_;
}

// The adapter-sync alert and panels subtract the workers' installed version
// from the learner's published one `on(role)`: both must name roles alike.
TEST_F(DeployMetricNames, AdapterVersionsOfLearnerAndWorkerUseTheSameRoleNames) {
  const std::set<std::string> published = RoleValues("dsm_adapter_version");
  const std::set<std::string> installed = RoleValues("dsm_worker_adapter_version");
  ASSERT_FALSE(installed.empty()) << "no adapter installed on the worker\n" << *log_;
  for (const std::string& role : installed) {
    EXPECT_TRUE(published.count(role) == 1)
        << "dsm_worker_adapter_version{role=\"" << role << "\"} has no dsm_adapter_version{role=\"" << role
        << "\"}; the learner's roles are: " << absl::StrJoin(published, ", ");
  }
}

}  // namespace
}  // namespace dsm
