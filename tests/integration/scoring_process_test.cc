// ScoringProcess over the real tiny model (llama_gqa_tied + a byte-level
// tokenizer.json): a Verify round trip through gRPC with the verifier adapter
// streamed from a learner, and a MetaVerifier created over the same engine.
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/config.h"
#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "model/model_config.h"
#include "model/tokenizer_bytes.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/watch_adapters_reactor.h"
#include "services/verifier/lease_scoring.h"
#include "services/verifier/scoring_process.h"
#include "tests/integration/publishing_learner.h"
#include "tests/integration/random_adapter.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;

using dsm_test::PublishingLearner;

// The reference model's files plus a byte-level tokenizer.json (ids 0..255 =
// bytes, no merges, no special tokens) in a folder of their own.
std::string ModelWithTokenizer() {
  const fs::path source = model_test::ReferenceDir() + "/llama_gqa_tied";
  const fs::path dir = fs::path(::testing::TempDir()) / "scoring_model";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(source)) {
    if (entry.is_regular_file()) fs::create_symlink(entry.path(), dir / entry.path().filename());
  }
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[tokenizer_internal::ByteToUnicode(static_cast<unsigned char>(b))] = b;
  nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}, {"unk_token", nullptr}}}};
  std::ofstream(dir / "tokenizer.json") << tokenizer.dump();
  return dir.string();
}

// Short templates: the tiny model's context is 256 tokens.
std::string PromptsDir() {
  const fs::path dir = fs::path(::testing::TempDir()) / "scoring_prompts";
  fs::create_directories(dir);
  std::ofstream(dir / "verifier.txt") << "role: verifier\n"
                                      << "evaluation_marker: Here is my evaluation of the solution:\n"
                                      << "score_marker: Based on my evaluation, the final overall score should be:\n"
                                      << "---\nP:{problem} Y:{proof} V:\n";
  std::ofstream(dir / "meta_verifier.txt")
      << "role: meta_verifier\n"
      << "evaluation_marker: Here is my analysis of the \"solution evaluation\":\n"
      << "score_marker: Based on my analysis, I will rate the \"solution evaluation\" as:\n"
      << "---\nP:{problem} Y:{proof} A:{analysis} M:\n";
  return dir.string();
}

TEST(ScoringProcess, VerifyRoundTripOnTheTinyModel) {
  const std::string model_dir = ModelWithTokenizer();
  auto model_config = LoadModelConfig(model_dir);
  ASSERT_TRUE(model_config.ok()) << model_config.status();

  PublishingLearner learner;
  GrpcServerOptions server_options;
  server_options.drain = absl::ZeroDuration();
  server_options.shutdown_grace = absl::Milliseconds(200);
  GrpcServer learner_server(server_options);
  learner_server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(learner_server.Start().ok());
  AdapterVersionData adapter = dsm_test::RandomAdapterVersion(*model_config, 1);
  adapter.role = v1::ADAPTER_ROLE_VERIFIER;
  ASSERT_TRUE(learner.publisher.Publish(adapter).ok());

  auto config = ParseConfig("run: {name: scoring-test}\nruntime: {threads: 1}\n"
                            "model: {path: " + model_dir + ", max_batch: 8, max_len: 128}\n"
                            "limits: {max_n: 8, max_completion_tokens: 64}\n",
                            "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ScoringProcessOptions options;
  options.prompts_dir = PromptsDir();
  options.verifier = true;
  options.limits = ScoringLimitsFromConfig(config->limits);
  MetricsRegistry metrics;
  auto process = ScoringProcess::Create(*config, learner_server.address(), options, &metrics);
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_NE((*process)->verifier_service(), nullptr);
  EXPECT_EQ((*process)->meta_verifier_service(), nullptr);

  // A meta-verifier over the same engine (what `dsm serve
  // worker,verifier,meta-verifier` does with the worker's engine); it grades
  // with the verifier adapter here, the only one published: by default a
  // meta-verifier also hosts the verifier adapter, as phase 3 asks of it.
  ScoringProcessOptions meta_options = options;
  meta_options.verifier = false;
  meta_options.meta_verifier = true;
  auto shared = ScoringProcess::CreateShared((*process)->engine(), meta_options, &metrics);
  ASSERT_TRUE(shared.ok()) << shared.status();

  GrpcServer server(server_options);
  server.RegisterService((*process)->verifier_service(), v1::Verifier::service_full_name());
  server.RegisterService((*shared)->meta_verifier_service(), v1::MetaVerifier::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  auto channel = MakeChannel(server.address(), ChannelOptions{});
  auto verifier = v1::Verifier::NewStub(channel);
  auto meta_verifier = v1::MetaVerifier::NewStub(channel);

  v1::VerifyRequest request;
  request.set_problem("2+2=4?");
  request.set_proof("yes");
  request.set_n(3);
  request.set_min_adapter_version(1);
  request.mutable_params()->set_max_tokens(8);
  request.mutable_params()->set_seed(7);
  request.mutable_params()->set_return_logprobs(true);
  request.mutable_params()->set_ignore_eos(true);
  v1::VerifyResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(60));
  grpc::Status status = verifier->Verify(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.analyses_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const v1::Completion& c = response.analyses(i).completion();
    EXPECT_EQ(c.index(), static_cast<uint32_t>(i));
    EXPECT_EQ(c.token_ids_size(), 8);
    EXPECT_EQ(c.logprobs_size(), 8);
    EXPECT_EQ(c.adapter_role(), v1::ADAPTER_ROLE_VERIFIER);
    EXPECT_EQ(c.adapter_version(), 1u);
    EXPECT_EQ(c.finish_reason(), v1::FINISH_REASON_LENGTH);
    // 8 random tokens are cut by max_tokens: truncated, never a score.
    EXPECT_EQ(response.analyses(i).score().format(), v1::FORMAT_STATUS_TRUNCATED);
  }
  EXPECT_EQ(response.format_failures(), 3u);
  EXPECT_FALSE(response.has_aggregate_score());
  std::string prompt;
  for (int32_t id : response.prompt_token_ids()) prompt += static_cast<char>(id);
  EXPECT_EQ(prompt, "P:2+2=4? Y:yes V:");
  EXPECT_EQ(response.stats().completions(), 3u);
  EXPECT_EQ(response.stats().completion_tokens(), 24u);

  // The limit from the config, before anything is sampled.
  request.set_n(9);
  grpc::ClientContext over_context;
  SetDeadline(&over_context, absl::Seconds(10));
  status = verifier->Verify(&over_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "n: 9 exceeds max_n 8");

  v1::AssessRequest assess;
  assess.set_problem("2+2=4?");
  assess.set_proof("yes");
  assess.set_analysis("fine \\boxed{1}");
  assess.set_n(2);
  assess.set_adapter_role(v1::ADAPTER_ROLE_VERIFIER);
  assess.mutable_params()->set_max_tokens(4);
  assess.mutable_params()->set_ignore_eos(true);
  v1::AssessResponse assessed;
  grpc::ClientContext assess_context;
  SetDeadline(&assess_context, absl::Seconds(60));
  status = meta_verifier->Assess(&assess_context, assess, &assessed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(assessed.assessments_size(), 2);
  EXPECT_EQ(assessed.assessments(0).completion().token_ids_size(), 4);

  grpc::ClientContext info_context;
  SetDeadline(&info_context, absl::Seconds(10));
  v1::ServerInfo info;
  ASSERT_TRUE(verifier->GetServerInfo(&info_context, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.model().name(), "scoring_model");
  EXPECT_EQ(info.model().architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info.model().vocab_size(), 300u);
  ASSERT_EQ(info.adapter_versions_size(), 1);
  EXPECT_EQ(info.adapter_versions(0).version(), 1u);
  EXPECT_THAT(metrics.Exposition(),
              ::testing::HasSubstr("dsm_scoring_analyses_total{service=\"verifier\",format=\"truncated\"} 3"));

  server.Drain();
  learner_server.Drain();
  // The same cores answer a worker's ScoreWork leases.
  ScoringLeaseScorer scorer((*process)->verifier_core(), (*shared)->meta_verifier_core());
  auto score = [&scorer](const v1::ScoreWork& work) {
    std::promise<absl::StatusOr<v1::ScoreResult>> promise;
    auto future = promise.get_future();
    scorer.Score(work, absl::Now() + absl::Seconds(60),
                 [&promise](absl::StatusOr<v1::ScoreResult> r) { promise.set_value(std::move(r)); });
    return future.get();
  };
  v1::ScoreWork verify_work;
  *verify_work.mutable_verify() = request;
  verify_work.mutable_verify()->set_n(2);
  absl::StatusOr<v1::ScoreResult> scored = score(verify_work);
  ASSERT_TRUE(scored.ok()) << scored.status();
  ASSERT_TRUE(scored->has_verify());
  EXPECT_EQ(scored->verify().analyses_size(), 2);
  v1::ScoreWork assess_work;
  *assess_work.mutable_assess() = assess;
  scored = score(assess_work);
  ASSERT_TRUE(scored.ok()) << scored.status();
  EXPECT_EQ(scored->assess().assessments_size(), 2);
  verify_work.mutable_verify()->set_n(9);
  EXPECT_EQ(score(verify_work).status().message(), "n: 9 exceeds max_n 8");
  ScoringLeaseScorer verifier_only((*process)->verifier_core(), nullptr);
  std::promise<absl::Status> missing;
  verifier_only.Score(assess_work, absl::Now() + absl::Seconds(5),
                      [&missing](absl::StatusOr<v1::ScoreResult> r) { missing.set_value(r.status()); });
  const absl::Status no_meta = missing.get_future().get();
  EXPECT_EQ(no_meta.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(no_meta.message(), "score.assess: this worker hosts no meta-verifier");
}

}  // namespace
}  // namespace dsm
