// The coordinator runs the pipeline when its run starts (coordinator.pipeline:
// true): over real gRPC to a fake verifier, meta-verifier and learner, with a
// scripted worker on the Lease stream, one iteration ends SUCCEEDED, the
// generator adapter is initialised from the verifier's, and the training
// groups of every phase reach the learner; with coordinator.warmup_epochs,
// phase 0's SFT groups first.
#include <atomic>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "model/tokenizer_bytes.h"
#include "nlohmann/json.hpp"
#include "services/coordinator/coordinator_process.h"
#include "services/coordinator/coordinator_service.h"
#include "tests/integration/coordinator_client.h"
#include "tests/integration/fake_scoring.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

using dsm_test::FakeScoring;
using dsm_test::kAnalysis;

// Accepts every group; records InitAdapter calls.
class FakeLearner final : public v1::Learner::Service {
 public:
  grpc::Status SubmitGroups(grpc::ServerContext*,
                            grpc::ServerReaderWriter<v1::SubmitGroupsResponse, v1::SubmitGroupsRequest>* stream)
      override {
    v1::SubmitGroupsResponse grant;
    grant.set_credits(16);
    stream->Write(grant);
    v1::SubmitGroupsRequest request;
    while (stream->Read(&request)) {
      v1::SubmitGroupsResponse response;
      response.mutable_ack()->set_group_id(request.group().group_id());
      absl::MutexLock lock(&mu_);
      const bool fresh = groups_.insert(request.group().group_id()).second;
      response.mutable_ack()->set_status(fresh ? v1::GROUP_STATUS_ACCEPTED : v1::GROUP_STATUS_DUPLICATE);
      if (fresh) response.mutable_ack()->set_accept_sequence(groups_.size());
      response.set_credits(1);
      stream->Write(response);
    }
    return grpc::Status::OK;
  }
  grpc::Status GetState(grpc::ServerContext*, const v1::GetStateRequest*, v1::LearnerState*) override {
    return grpc::Status::OK;
  }
  grpc::Status InitAdapter(grpc::ServerContext*, const v1::InitAdapterRequest* request,
                           v1::InitAdapterResponse*) override {
    absl::MutexLock lock(&mu_);
    inits_.push_back(*request);
    return grpc::Status::OK;
  }
  // Every group is acked at once, so there is never anything left to train.
  grpc::Status Flush(grpc::ServerContext*, const v1::FlushRequest* request, v1::FlushResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++flushes_;
    response->mutable_published()->set_role(request->role());
    return grpc::Status::OK;
  }
  std::set<std::string> groups() {
    absl::MutexLock lock(&mu_);
    return groups_;
  }
  int flushes() {
    absl::MutexLock lock(&mu_);
    return flushes_;
  }
  std::vector<v1::InitAdapterRequest> inits() {
    absl::MutexLock lock(&mu_);
    return inits_;
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> groups_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::InitAdapterRequest> inits_ ABSL_GUARDED_BY(mu_);
  int flushes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs one iteration of the pipeline on the coordinator (`configure` adds to its settings) against
// the fakes and a scripted worker, until the run ends SUCCEEDED; `learner` sees what reaches it.
void RunOneIteration(const std::function<void(CoordinatorPipelineSettings*)>& configure, FakeLearner* learner,
                     size_t expected_groups) {
  TestDir dir;
  FakeScoring scoring;
  GrpcServerOptions server_options;
  server_options.drain = absl::ZeroDuration();
  server_options.shutdown_grace = absl::Milliseconds(200);
  GrpcServer peers(server_options);
  scoring.RegisterOn(peers);
  peers.RegisterService(learner, v1::Learner::service_full_name());
  ASSERT_TRUE(peers.Start().ok());

  CoordinatorProcessOptions o;
  o.runs_dir = dir.path();
  o.run_name = "piped";
  o.store.db.synchronous_full = false;
  o.tick = absl::Milliseconds(50);
  CoordinatorPipelineSettings p;
  p.learner = p.verifier = p.meta_verifier = peers.address();
  p.prompts_dir = std::string(std::getenv("DSM_SOURCE_DIR")) + "/configs/prompts";
  p.options.verifier.group_size = 2;
  p.options.meta_verifier.group_size = 2;
  p.options.generator.group_size = 2;
  p.options.generator.verifications = 2;
  p.options.auto_label.proofs_per_problem = 2;
  p.options.auto_label.n = 2;
  p.options.auto_label.m = 1;
  p.options.poll = absl::Milliseconds(20);
  configure(&p);
  o.pipeline = p;
  auto process = CoordinatorProcess::Create(o, nullptr);
  ASSERT_TRUE(process.ok()) << process.status();
  std::vector<v1::ImportRecordsRequest> records(3);
  records[0].mutable_problem()->set_problem_id("p1");
  records[0].mutable_problem()->set_statement("Given: a=b, b=c. Prove: a=c.");
  auto* proof = records[1].mutable_proof();
  proof->set_proof_id("q1");
  proof->set_problem_id("p1");
  proof->set_proof("1. a=b, so a=b\n2. b=c, so a=c\nThus a=c.");
  proof->set_score(1);
  auto* analysis = records[2].mutable_analysis();
  analysis->set_analysis_id("a1");
  analysis->set_proof_id("q1");
  analysis->set_analysis(kAnalysis);
  analysis->set_meta_score(1);
  ASSERT_TRUE((*process)->Import(records).ok());

  CoordinatorService service(process->get(), absl::Milliseconds(50));
  GrpcServer server(server_options);
  server.RegisterService(&service, v1::Coordinator::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  auto stub = v1::Coordinator::NewStub(MakeChannel(server.address(), ChannelOptions{}));

  // A worker answering every grant with two proofs and self-evaluations.
  std::atomic<bool> stop{false};
  std::thread worker([&] {
    dsm_test::ScriptedWorker w(stub.get(), "w", 2);
    while (!stop) {
      auto m = w.Next(absl::Milliseconds(100));
      if (!m.has_value() || !m->has_grant()) continue;
      v1::WorkerMessage out;
      v1::LeaseResult* result = out.mutable_result();
      result->set_lease_id(m->grant().lease_id());
      result->mutable_generated()->add_prompt_token_ids(1);
      for (uint32_t i = 0; i < m->grant().generate().n(); ++i) {
        v1::Completion* c = result->mutable_generated()->add_completions();
        c->set_index(i);
        c->set_text(absl::StrCat("## Solution\n1. a=b, so a=b\n2. b=c, so a=c\nThus a=c.", i,
                                 "\n## Self Evaluation\n", kAnalysis));
        c->add_token_ids(4);
        c->add_logprobs(-1.0f);
      }
      w.Send(out);
    }
  });

  v1::StartRunRequest start;
  start.set_name("piped");
  auto started = (*process)->StartRun(start);
  ASSERT_TRUE(started.ok()) << started.status();
  v1::RunState state = v1::RUN_STATE_RUNNING;
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until && state == v1::RUN_STATE_RUNNING) {
    absl::SleepFor(absl::Milliseconds(50));
    auto run = (*process)->GetRun("piped");
    if (!run.ok()) break;
    state = run->state();
  }
  stop = true;
  worker.join();
  ASSERT_EQ(state, v1::RUN_STATE_SUCCEEDED);
  const absl::Time fed = absl::Now() + absl::Seconds(10);
  while (absl::Now() < fed && learner->groups().size() < expected_groups) absl::SleepFor(absl::Milliseconds(50));
}

TEST(CoordinatorPipeline, ARunStartedOnTheCoordinatorRunsEveryPhase) {
  FakeLearner learner;
  RunOneIteration([](CoordinatorPipelineSettings*) {}, &learner, 5);
  // Every phase's groups reach the learner.
  const std::set<std::string> groups = learner.groups();
  for (const char* id : {"p2-i1-q1", "p3-i1-a1", "p4-i1-q1", "p4-i1-a1"}) EXPECT_EQ(groups.count(id), 1u) << id;
  int generator = 0;
  for (const std::string& g : groups) generator += g.rfind("p5-", 0) == 0;
  EXPECT_EQ(generator, 1);
  EXPECT_EQ(groups.size(), 5u);  // no phase 0 unless asked for
  ASSERT_EQ(learner.inits().size(), 1u);
  EXPECT_EQ(learner.inits()[0].copy_from(), v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ(learner.flushes(), 5);  // phases 1, 2, 3, and 4 twice (after the initialisation and after training)
}

// coordinator.warmup_epochs: phase 0's SFT passes come first, tokenized with the model's
// tokenizer.json, and train every role before phase 1.
TEST(CoordinatorPipeline, PhaseZeroWarmsEveryRoleUpFirst) {
  TestDir dir;
  // Byte-level: ids 0..255 are the bytes; "</s>" (256) is the EOS token, "<s>" (257) the BOS.
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[tokenizer_internal::ByteToUnicode(static_cast<unsigned char>(b))] = b;
  const nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 256}, {"content", "</s>"}, {"special", true}}, {{"id", 257}, {"content", "<s>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}, {"unk_token", nullptr}}}};
  std::ofstream(dir.File("tokenizer.json")) << tokenizer.dump();
  std::ofstream(dir.File("tokenizer_config.json")) << R"({"bos_token": "<s>", "eos_token": "</s>"})";

  FakeLearner learner;
  RunOneIteration(
      [&](CoordinatorPipelineSettings* p) {
        p->options.warmup_epochs = 2;
        p->tokenizer_path = dir.File("tokenizer.json");
      },
      &learner, 11);
  const std::set<std::string> groups = learner.groups();
  // The faithful analysis teaches the verifier and the meta-verifier, the proof scored 1 the
  // generator: once per pass.
  for (const char* id : {"p1-i0-v-a1", "p1-i0-m-a1", "p1-i0-g-q1", "p1-i0-v-a1-e2", "p1-i0-m-a1-e2", "p1-i0-g-q1-e2"}) {
    EXPECT_EQ(groups.count(id), 1u) << id;
  }
  EXPECT_EQ(groups.size(), 11u);     // and phases 1-4's five
  EXPECT_EQ(learner.flushes(), 8);   // phase 0's three roles, then phases 1-4
}

// A tokenizer that cannot be read stops the coordinator at start, naming the key.
TEST(CoordinatorPipeline, PhaseZeroNeedsTheModelsTokenizer) {
  TestDir dir;
  CoordinatorProcessOptions o;
  o.runs_dir = dir.path();
  o.run_name = "piped";
  o.store.db.synchronous_full = false;
  CoordinatorPipelineSettings p;
  p.learner = p.verifier = p.meta_verifier = "127.0.0.1:1";
  p.prompts_dir = std::string(std::getenv("DSM_SOURCE_DIR")) + "/configs/prompts";
  p.options.warmup_epochs = 1;
  p.tokenizer_path = dir.File("missing/tokenizer.json");
  o.pipeline = p;
  auto process = CoordinatorProcess::Create(o, nullptr);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(process.status().message(), "coordinator.warmup_epochs")) << process.status();
  EXPECT_TRUE(absl::StrContains(process.status().message(), "missing/tokenizer.json")) << process.status();
}

}  // namespace
}  // namespace dsm
