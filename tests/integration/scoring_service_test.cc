// dsm.v1.Verifier and dsm.v1.MetaVerifier over a real gRPC server on port 0,
// with a scripted ScoringEngine (no model): aggregates, format failures,
// INVALID_ARGUMENT naming the field, engine errors, concurrent requests all
// reaching the engine before any finishes, GetServerInfo, metrics.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "common/grpc_client.h"
#include "common/grpc_server.h"
#include "common/metrics_registry.h"
#include "dsm/v1/scoring.grpc.pb.h"
#include "services/scoring/score_parser.h"
#include "services/verifier/scoring_core.h"
#include "services/verifier/scoring_engine.h"
#include "services/verifier/scoring_service.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

// Tokens are bytes; completion i of a request gets replies[i % size].
class ScriptedEngine final : public ScoringEngine {
 public:
  struct Reply {
    std::string text;
    v1::FinishReason finish = v1::FINISH_REASON_STOP_TOKEN;
  };

  void Script(std::vector<Reply> replies) {
    absl::MutexLock lock(&mu_);
    replies_ = std::move(replies);
  }
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(status);
  }
  // While held, groups are kept until Release().
  void Hold() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  // Waits (up to 10 s) for `count` held groups; returns how many there are.
  int WaitForHeld(int count) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]() { return static_cast<int>(held_.size()) >= count; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return static_cast<int>(held_.size());
  }
  void Release() {
    std::vector<std::pair<SampledGroup, SampleDone>> held;
    {
      absl::MutexLock lock(&mu_);
      hold_ = false;
      held.swap(held_);
    }
    for (auto& [group, done] : held) done(std::move(group));
  }
  std::vector<v1::GenerateRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  absl::StatusOr<std::vector<int32_t>> Tokenize(absl::string_view text) const override {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }

  void Sample(const v1::GenerateRequest& request, absl::Time, SampleDone done) override {
    SampledGroup group;
    absl::Status fail;
    bool hold = false;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      fail = fail_;
      hold = hold_;
      for (uint32_t i = 0; fail.ok() && i < request.n(); ++i) {
        const Reply& reply = replies_[i % replies_.size()];
        v1::Completion c;
        c.set_index(i);
        c.set_text(reply.text);
        c.set_finish_reason(reply.finish);
        for (int t = 0; t < 5; ++t) c.add_token_ids(100 + t);
        c.set_adapter_role(request.adapter_role());
        c.set_adapter_version(3);
        group.completions.push_back(c);
      }
      group.summary.mutable_stats()->set_completions(request.n());
      group.summary.mutable_stats()->set_completion_tokens(5 * request.n());
      group.summary.mutable_stats()->set_prompt_tokens(request.prompt().token_ids().ids_size());
      if (hold && fail.ok()) {
        held_.emplace_back(std::move(group), std::move(done));
        return;
      }
    }
    if (!fail.ok()) {
      done(fail);
      return;
    }
    // Complete from another thread, as the real sampler does.
    std::thread([group = std::move(group), done = std::move(done)]() mutable { done(std::move(group)); }).detach();
  }

  v1::ModelInfo model_info() const override {
    v1::ModelInfo info;
    info.set_name("scripted");
    info.set_vocab_size(256);
    return info;
  }
  std::map<v1::AdapterRole, uint64_t> adapter_versions() const override {
    return {{v1::ADAPTER_ROLE_VERIFIER, 3}, {v1::ADAPTER_ROLE_META_VERIFIER, 2}};
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Reply> replies_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<SampledGroup, SampleDone>> held_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::GenerateRequest> requests_ ABSL_GUARDED_BY(mu_);
};

std::string PromptsDir() {
  const char* source = std::getenv("DSM_SOURCE_DIR");
  return std::string(source != nullptr ? source : ".") + "/configs/prompts";
}

std::string VerifierAnswer(const std::string& boxed) {
  return "Here is my evaluation of the solution:\nStep 1 holds.\n\n"
         "Based on my evaluation, the final overall score should be:\n" +
         boxed;
}

std::string MetaAnswer(const std::string& boxed) {
  return "Here is my analysis of the \"solution evaluation\":\nThe issue it names is real.\n\n"
         "Based on my analysis, I will rate the \"solution evaluation\" as:\n" +
         boxed;
}

class ScoringServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ScoringLimits limits;
    limits.max_n = 8;
    limits.max_text_bytes = 4096;
    limits.max_prompt_tokens = 6000;
    limits.max_completion_tokens = 512;
    limits.max_id_bytes = 16;
    auto metrics = ScoringMetrics::Create(registry_);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = std::move(*metrics);
    auto verifier_prompt = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kVerifier);
    ASSERT_TRUE(verifier_prompt.ok()) << verifier_prompt.status();
    verifier_prompt_ = std::make_unique<PromptTemplate>(*verifier_prompt);
    auto meta_prompt = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kMetaVerifier);
    ASSERT_TRUE(meta_prompt.ok()) << meta_prompt.status();
    meta_prompt_ = std::make_unique<PromptTemplate>(*meta_prompt);
    auto verifier = ScoringCore::Create(&engine_, *verifier_prompt,
                                        {limits, {v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_GENERATOR}},
                                        metrics_.get());
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    verifier_core_ = std::move(*verifier);
    auto meta = ScoringCore::Create(&engine_, *meta_prompt, {limits, {v1::ADAPTER_ROLE_META_VERIFIER}}, metrics_.get());
    ASSERT_TRUE(meta.ok()) << meta.status();
    meta_core_ = std::move(*meta);
    verifier_service_ = std::make_unique<VerifierService>(verifier_core_.get());
    meta_service_ = std::make_unique<MetaVerifierService>(meta_core_.get());
    GrpcServerOptions options;
    options.drain = absl::ZeroDuration();
    options.shutdown_grace = absl::Milliseconds(500);
    server_ = std::make_unique<GrpcServer>(options);
    server_->RegisterService(verifier_service_.get(), v1::Verifier::service_full_name());
    server_->RegisterService(meta_service_.get(), v1::MetaVerifier::service_full_name());
    ASSERT_TRUE(server_->Start().ok());
    ChannelOptions channel;
    channel.max_attempts = 1;
    auto ch = MakeChannel(server_->address(), channel);
    verifier_ = v1::Verifier::NewStub(ch);
    meta_verifier_ = v1::MetaVerifier::NewStub(ch);
  }

  void TearDown() override {
    if (server_) server_->Drain();
  }

  grpc::Status Verify(const v1::VerifyRequest& request, v1::VerifyResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    return verifier_->Verify(&context, request, response);
  }
  grpc::Status Assess(const v1::AssessRequest& request, v1::AssessResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    return meta_verifier_->Assess(&context, request, response);
  }

  static v1::VerifyRequest GoodVerify(uint32_t n) {
    v1::VerifyRequest r;
    r.set_problem("Show that $\\{x\\} = 0$ for integers {x}.");
    r.set_proof("An integer has no fractional part, so $\\{x\\} = x - \\lfloor x \\rfloor = 0$.");
    r.set_n(n);
    r.set_request_id("req-1");
    r.mutable_params()->set_max_tokens(256);
    return r;
  }

  MetricsRegistry registry_;
  std::unique_ptr<ScoringMetrics> metrics_;
  ScriptedEngine engine_;
  std::unique_ptr<PromptTemplate> verifier_prompt_;
  std::unique_ptr<PromptTemplate> meta_prompt_;
  std::unique_ptr<ScoringCore> verifier_core_;
  std::unique_ptr<ScoringCore> meta_core_;
  std::unique_ptr<VerifierService> verifier_service_;
  std::unique_ptr<MetaVerifierService> meta_service_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::Verifier::Stub> verifier_;
  std::unique_ptr<v1::MetaVerifier::Stub> meta_verifier_;
};

TEST_F(ScoringServiceTest, WellFormedAnalysesGiveTheAggregate) {
  engine_.Script({{VerifierAnswer("\\boxed{1}")},
                  {VerifierAnswer("\\boxed{0.5}")},
                  {VerifierAnswer("\\boxed{1}")},
                  {"<think>maybe \\boxed{1}</think>" + VerifierAnswer("\\boxed{0}")}});
  struct Case {
    v1::Aggregation aggregation;
    v1::Aggregation applied;
    double expected;
  };
  for (const Case& c : {Case{v1::AGGREGATION_UNSPECIFIED, v1::AGGREGATION_MEAN, 0.625},
                        Case{v1::AGGREGATION_MIN, v1::AGGREGATION_MIN, 0.0},
                        Case{v1::AGGREGATION_MAJORITY, v1::AGGREGATION_MAJORITY, 1.0}}) {
    v1::VerifyRequest request = GoodVerify(4);
    request.set_aggregation(c.aggregation);
    v1::VerifyResponse response;
    grpc::Status status = Verify(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.analyses_size(), 4);
    const std::vector<double> values = {1, 0.5, 1, 0};
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(response.analyses(i).completion().index(), static_cast<uint32_t>(i));
      EXPECT_EQ(response.analyses(i).score().format(), v1::FORMAT_STATUS_OK);
      EXPECT_EQ(response.analyses(i).score().value(), values[i]);
      EXPECT_EQ(response.analyses(i).completion().token_ids_size(), 5);
    }
    ASSERT_TRUE(response.has_aggregate_score());
    EXPECT_EQ(response.aggregate_score(), c.expected);
    EXPECT_EQ(response.aggregation(), c.applied);
    EXPECT_EQ(response.format_failures(), 0u);
    EXPECT_EQ(response.request_id(), "req-1");
    EXPECT_EQ(response.stats().completions(), 4u);
  }
  // The prompt is the shipped template rendered with the request, and the
  // engine got one group of n with the default role.
  const std::string prompt = verifier_prompt_->Render({GoodVerify(1).problem(), GoodVerify(1).proof(), ""});
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(GoodVerify(2), &response).ok());
  ASSERT_EQ(response.prompt_token_ids_size(), static_cast<int>(prompt.size()));
  std::string decoded;
  for (int32_t id : response.prompt_token_ids()) decoded += static_cast<char>(id);
  EXPECT_EQ(decoded, prompt);
  const v1::GenerateRequest sent = engine_.requests().back();
  EXPECT_EQ(sent.n(), 2u);
  EXPECT_EQ(sent.adapter_role(), v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ(sent.params().max_tokens(), 256u);
  EXPECT_EQ(sent.request_id(), "req-1");
  EXPECT_EQ(response.analyses(0).completion().adapter_role(), v1::ADAPTER_ROLE_VERIFIER);
}

TEST_F(ScoringServiceTest, FormatFailuresAreCountedAndNeverBecomeZero) {
  engine_.Script({{"The proof is wrong.\n\\boxed{0}"},                           // no evaluation marker
                  {VerifierAnswer("\\boxed{0}"), v1::FINISH_REASON_LENGTH},       // truncated
                  {VerifierAnswer("\\boxed{1}")},                                 // the only valid one
                  {VerifierAnswer("\\boxed{2}")},                                 // out of range
                  {VerifierAnswer("\\boxed{\\frac{1}{2}}")},                      // fraction: out of range
                  {VerifierAnswer("\\boxed{}")}});                                // empty box
  v1::VerifyRequest request = GoodVerify(6);
  request.set_aggregation(v1::AGGREGATION_MIN);
  v1::VerifyResponse response;
  grpc::Status status = Verify(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.analyses_size(), 6);
  EXPECT_EQ(response.analyses(0).score().format(), v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
  EXPECT_EQ(response.analyses(1).score().format(), v1::FORMAT_STATUS_TRUNCATED);
  EXPECT_EQ(response.analyses(2).score().format(), v1::FORMAT_STATUS_OK);
  EXPECT_EQ(response.analyses(3).score().format(), v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE);
  EXPECT_EQ(response.analyses(4).score().format(), v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE);
  EXPECT_EQ(response.analyses(5).score().format(), v1::FORMAT_STATUS_NO_BOXED_SCORE);
  EXPECT_EQ(response.format_failures(), 5u);
  ASSERT_TRUE(response.has_aggregate_score());
  EXPECT_EQ(response.aggregate_score(), 1.0);  // MIN over valid scores only: the failures' 0s do not count

  // Nothing valid: the aggregate is absent, not 0.
  engine_.Script({{"no markers at all"}, {VerifierAnswer("\\boxed{0.7}")}});
  v1::VerifyResponse none;
  ASSERT_TRUE(Verify(GoodVerify(2), &none).ok());
  EXPECT_FALSE(none.has_aggregate_score());
  EXPECT_EQ(none.format_failures(), 2u);

  const std::string exposition = registry_.Exposition();
  EXPECT_THAT(exposition,
              HasSubstr("dsm_scoring_analyses_total{service=\"verifier\",format=\"missing_evaluation_marker\"} 2"));
  EXPECT_THAT(exposition, HasSubstr("dsm_scoring_analyses_total{service=\"verifier\",format=\"ok\"} 1"));
  EXPECT_THAT(exposition, HasSubstr("dsm_scoring_requests_total{service=\"verifier\",code=\"OK\"} 2"));
}

TEST_F(ScoringServiceTest, BadRequestsAreInvalidArgumentNamingTheField) {
  engine_.Script({{VerifierAnswer("\\boxed{1}")}});
  struct Case {
    const char* name;
    std::function<void(v1::VerifyRequest*)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"empty proof", [](v1::VerifyRequest* r) { r->clear_proof(); }, "proof: empty (required)"},
      {"empty problem", [](v1::VerifyRequest* r) { r->clear_problem(); }, "problem: empty (required)"},
      {"oversize proof", [](v1::VerifyRequest* r) { r->set_proof(std::string(5000, 'x')); },
       "proof: 5000 bytes exceeds max_text_bytes 4096"},
      {"n over the limit", [](v1::VerifyRequest* r) { r->set_n(9); }, "n: 9 exceeds max_n 8"},
      {"max_tokens over the limit", [](v1::VerifyRequest* r) { r->mutable_params()->set_max_tokens(513); },
       "params.max_tokens: 513 exceeds max_completion_tokens 512"},
      {"role not hosted", [](v1::VerifyRequest* r) { r->set_adapter_role(v1::ADAPTER_ROLE_META_VERIFIER); },
       "adapter_role: ADAPTER_ROLE_META_VERIFIER is not hosted by this server (hosted: ADAPTER_ROLE_VERIFIER, "
       "ADAPTER_ROLE_GENERATOR)"},
      {"unknown role", [](v1::VerifyRequest* r) { r->set_adapter_role(static_cast<v1::AdapterRole>(42)); },
       "adapter_role: unknown value 42"},
      {"unknown aggregation", [](v1::VerifyRequest* r) { r->set_aggregation(static_cast<v1::Aggregation>(7)); },
       "aggregation: unknown value 7"},
      {"long request_id", [](v1::VerifyRequest* r) { r->set_request_id(std::string(17, 'r')); },
       "request_id: 17 bytes exceeds max_id_bytes 16"},
      {"prompt over max_prompt_tokens after templating",
       [](v1::VerifyRequest* r) {
         r->set_problem(std::string(4000, 'p'));
         r->set_proof(std::string(4000, 'y'));
       },
       "prompt: "},
  };
  const std::size_t before = engine_.requests().size();
  for (const Case& c : cases) {
    v1::VerifyRequest request = GoodVerify(2);
    c.change(&request);
    v1::VerifyResponse response;
    grpc::Status status = Verify(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(status.error_message(), ::testing::StartsWith(c.message)) << c.name;
    if (c.message != "prompt: ") {
      EXPECT_EQ(status.error_message(), c.message) << c.name;
    }
  }
  // The exact prompt message: template bytes + 8000 bytes of text.
  v1::VerifyRequest big = GoodVerify(1);
  big.set_problem(std::string(4000, 'p'));
  big.set_proof(std::string(4000, 'y'));
  const std::size_t tokens = verifier_prompt_->Render({big.problem(), big.proof(), ""}).size();
  v1::VerifyResponse response;
  EXPECT_EQ(Verify(big, &response).error_message(),
            "prompt: " + std::to_string(tokens) + " tokens after templating exceeds max_prompt_tokens 6000");
  EXPECT_EQ(engine_.requests().size(), before);  // nothing was sampled

  v1::AssessRequest assess;
  assess.set_problem("p");
  assess.set_proof("y");
  v1::AssessResponse assessed;
  grpc::Status status = Assess(assess, &assessed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "analysis: empty (required)");

  // The server keeps serving.
  EXPECT_TRUE(Verify(GoodVerify(1), &response).ok());
}

TEST_F(ScoringServiceTest, OtherHostedRoleIsPassedToTheEngine) {
  engine_.Script({{VerifierAnswer("\\boxed{0.5}")}});
  v1::VerifyRequest request = GoodVerify(1);
  request.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
  request.set_min_adapter_version(3);
  v1::VerifyResponse response;
  ASSERT_TRUE(Verify(request, &response).ok());
  EXPECT_EQ(engine_.requests().back().adapter_role(), v1::ADAPTER_ROLE_GENERATOR);
  EXPECT_EQ(engine_.requests().back().min_adapter_version(), 3u);
  EXPECT_EQ(response.analyses(0).completion().adapter_role(), v1::ADAPTER_ROLE_GENERATOR);
}

TEST_F(ScoringServiceTest, AssessUsesTheMetaVerifierTemplateAndMarkers) {
  engine_.Script({{MetaAnswer("\\boxed{1}")},
                  {MetaAnswer("\\boxed{0.5}")},
                  {VerifierAnswer("\\boxed{1}")}});  // verifier markers: a format failure here
  v1::AssessRequest request;
  request.set_problem("P");
  request.set_proof("Y");
  request.set_analysis(VerifierAnswer("\\boxed{0}"));
  request.set_n(3);
  request.set_aggregation(v1::AGGREGATION_MAJORITY);
  request.set_request_id("a-1");
  v1::AssessResponse response;
  grpc::Status status = Assess(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.assessments_size(), 3);
  EXPECT_EQ(response.assessments(2).score().format(), v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
  EXPECT_EQ(response.format_failures(), 1u);
  ASSERT_TRUE(response.has_aggregate_meta_score());
  EXPECT_EQ(response.aggregate_meta_score(), 0.5);  // tie 1 vs 0.5 goes to the lower
  EXPECT_EQ(response.aggregation(), v1::AGGREGATION_MAJORITY);
  EXPECT_EQ(response.request_id(), "a-1");
  EXPECT_EQ(engine_.requests().back().adapter_role(), v1::ADAPTER_ROLE_META_VERIFIER);
  std::string decoded;
  for (int32_t id : response.prompt_token_ids()) decoded += static_cast<char>(id);
  EXPECT_EQ(decoded, meta_prompt_->Render({"P", "Y", request.analysis()}));
}

TEST_F(ScoringServiceTest, EngineErrorsFailTheRequest) {
  engine_.FailWith(absl::DeadlineExceededError("adapter ADAPTER_ROLE_VERIFIER version 9 did not arrive"));
  v1::VerifyResponse response;
  grpc::Status status = Verify(GoodVerify(2), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(status.error_message(), "adapter ADAPTER_ROLE_VERIFIER version 9 did not arrive");

  // An aborted analysis fails the whole request (retryable), never a score.
  engine_.FailWith(absl::OkStatus());
  engine_.Script({{VerifierAnswer("\\boxed{1}")}, {"Here is my", v1::FINISH_REASON_ABORTED}});
  status = Verify(GoodVerify(2), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "analysis 1: aborted (server stopping or cancelled)");
}

TEST_F(ScoringServiceTest, ConcurrentRequestsAllReachTheEngineBeforeAnyFinishes) {
  engine_.Script({{VerifierAnswer("\\boxed{1}")}, {VerifierAnswer("\\boxed{0}")}});
  engine_.Hold();
  constexpr int kRequests = 12;
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<v1::VerifyResponse> responses(kRequests);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([this, i, &statuses, &responses]() {
      v1::VerifyRequest request = GoodVerify(4);
      request.set_request_id("c-" + std::to_string(i));
      statuses[i] = Verify(request, &responses[i]);
    });
  }
  // Every request's group of 4 is with the engine while none has finished.
  EXPECT_EQ(engine_.WaitForHeld(kRequests), kRequests);
  EXPECT_EQ(verifier_core_->in_flight(), kRequests);
  engine_.Release();
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(responses[i].request_id(), "c-" + std::to_string(i));
    EXPECT_EQ(responses[i].analyses_size(), 4);
    EXPECT_EQ(responses[i].aggregate_score(), 0.5);
  }
  for (const v1::GenerateRequest& r : engine_.requests()) EXPECT_EQ(r.n(), 4u);
  EXPECT_EQ(verifier_core_->in_flight(), 0);
}

// Load: 256 Verify calls at once, all held by the engine together, then all
// answered without an error.
TEST_F(ScoringServiceTest, TwoHundredFiftySixConcurrentVerifyCalls) {
  engine_.Script({{VerifierAnswer("\\boxed{1}")}, {VerifierAnswer("\\boxed{0.5}")}});
  engine_.Hold();
  constexpr int kRequests = 256;
  std::vector<grpc::Status> statuses(kRequests);
  std::vector<v1::VerifyResponse> responses(kRequests);
  std::vector<std::thread> clients;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([this, i, &statuses, &responses]() {
      v1::VerifyRequest request = GoodVerify(2);
      request.set_request_id("load-" + std::to_string(i));
      statuses[i] = Verify(request, &responses[i]);
    });
  }
  EXPECT_EQ(engine_.WaitForHeld(kRequests), kRequests);
  const absl::Time held = absl::Now();
  engine_.Release();
  for (std::thread& t : clients) t.join();
  std::cout << kRequests << " concurrent Verify calls: all in the engine after "
            << absl::ToDoubleMilliseconds(held - start) << " ms, all answered after "
            << absl::ToDoubleMilliseconds(absl::Now() - start) << " ms\n";
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    EXPECT_EQ(responses[i].analyses_size(), 2);
    EXPECT_EQ(responses[i].aggregate_score(), 0.75);
  }
  EXPECT_EQ(verifier_core_->in_flight(), 0);
}

TEST_F(ScoringServiceTest, ServerInfoDescribesRolesLimitsAndVersions) {
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  v1::ServerInfo info;
  ASSERT_TRUE(verifier_->GetServerInfo(&context, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.service(), "dsm.v1.Verifier");
  EXPECT_EQ(info.model().name(), "scripted");
  ASSERT_EQ(info.roles_size(), 2);
  EXPECT_EQ(info.roles(0), v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ(info.roles(1), v1::ADAPTER_ROLE_GENERATOR);
  EXPECT_EQ(info.limits().max_n(), 8u);
  EXPECT_EQ(info.limits().max_text_bytes(), 4096u);
  EXPECT_EQ(info.limits().max_prompt_tokens(), 6000u);
  ASSERT_EQ(info.adapter_versions_size(), 1);  // no generator adapter held yet
  EXPECT_EQ(info.adapter_versions(0).role(), v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ(info.adapter_versions(0).version(), 3u);
  EXPECT_FALSE(info.instance_id().empty());

  grpc::ClientContext meta_context;
  SetDeadline(&meta_context, absl::Seconds(10));
  ASSERT_TRUE(meta_verifier_->GetServerInfo(&meta_context, v1::GetServerInfoRequest(), &info).ok());
  EXPECT_EQ(info.service(), "dsm.v1.MetaVerifier");
}

TEST(ScoringCore, CreateChecksTheTemplateRoleAndRoles) {
  ScriptedEngine engine;
  auto generator = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kGenerator);
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto core = ScoringCore::Create(&engine, *generator, {ScoringLimits(), {v1::ADAPTER_ROLE_GENERATOR}});
  ASSERT_FALSE(core.ok());
  EXPECT_THAT(std::string(core.status().message()),
              HasSubstr("generator.txt: a scoring service needs a verifier or meta_verifier template, not generator"));
  auto verifier = PromptTemplate::LoadRole(PromptsDir(), PromptRole::kVerifier);
  ASSERT_TRUE(verifier.ok());
  core = ScoringCore::Create(&engine, *verifier, {ScoringLimits(), {v1::ADAPTER_ROLE_GENERATOR}});
  ASSERT_FALSE(core.ok());
  EXPECT_EQ(std::string(core.status().message()),
            "roles: [ADAPTER_ROLE_GENERATOR] must include ADAPTER_ROLE_VERIFIER");
}

}  // namespace
}  // namespace dsm
