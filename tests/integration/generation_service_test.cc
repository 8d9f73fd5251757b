// GenerationService: a request that waits for an adapter version it does not
// hold yet is answered when the version arrives, or when its deadline
// passes, or — if the service goes away first — at once with UNAVAILABLE
// (never after the service is gone). Its metrics count prompt tokens run and shared.
#include <atomic>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/metrics_registry.h"
#include "model/llama_model.h"
#include "model/sampler.h"
#include "services/adapters/adapter_registry.h"
#include "services/worker/generation_service.h"
#include "tests/integration/random_adapter.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

class GenerationServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    auto model = LlamaModel::Load(model_test::ReferenceDir() + "/llama_gqa_tied");
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    SamplerOptions options;
    options.max_batch = 4;
    options.max_len = 64;
    auto sampler = Sampler::Create(model_.get(), nullptr, options);
    ASSERT_TRUE(sampler.ok()) << sampler.status();
    sampler_ = *std::move(sampler);
    sampler_->Start();
    registry_ = std::make_unique<AdapterRegistry>(model_.get(), sampler_.get());
    service_ = std::make_unique<GenerationService>(model_.get(), nullptr, sampler_.get(), registry_.get(),
                                                   GenerationLimits{});
  }

  v1::GenerateRequest Request(uint64_t min_version) {
    v1::GenerateRequest r;
    for (int id : {1, 2, 3}) r.mutable_prompt()->mutable_token_ids()->add_ids(id);
    r.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
    r.set_min_adapter_version(min_version);
    r.mutable_params()->set_max_tokens(2);
    return r;
  }

  // Callbacks that keep the request's final status in *result and then notify *done.
  static GenerationService::Callbacks KeepResult(absl::Status* result, absl::Notification* done) {
    GenerationService::Callbacks callbacks;
    callbacks.on_completion = [](v1::Completion) { return true; };
    callbacks.on_done = [result, done](absl::Status s, v1::GenerateSummary) {
      *result = s;
      done->Notify();
    };
    return callbacks;
  }

  absl::Status InstallGeneratorVersion1() {
    AdapterVersionData v = dsm_test::RandomAdapterVersion(model_->config(), 1);
    v.role = v1::ADAPTER_ROLE_GENERATOR;
    return registry_->Install(v);
  }

  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<AdapterRegistry> registry_;
  std::unique_ptr<GenerationService> service_;
};

TEST_F(GenerationServiceTest, AWaitingRequestStartsWhenItsVersionArrives) {
  absl::Notification done;
  absl::Status result;
  const GenerationService::Callbacks callbacks = KeepResult(&result, &done);
  ASSERT_TRUE(service_->Start(Request(1), absl::Now() + absl::Seconds(20), callbacks).ok());
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  ASSERT_TRUE(InstallGeneratorVersion1().ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(result.ok()) << result;
}

// The metric counts each sample's 3 prompt tokens as the sampler prefilled them: run through the
// model, or shared (copied from a sample of the same request).
TEST_F(GenerationServiceTest, CountsPromptTokensRunAndShared) {
  MetricsRegistry metrics;
  ASSERT_TRUE(service_->CountTokensIn(metrics).ok());
  ASSERT_TRUE(InstallGeneratorVersion1().ok());
  absl::Notification done;
  absl::Status result;
  const GenerationService::Callbacks callbacks = KeepResult(&result, &done);
  v1::GenerateRequest request = Request(1);
  request.set_n(3);
  request.mutable_params()->set_max_tokens(8);  // the first still runs when the others are admitted
  ASSERT_TRUE(service_->Start(request, absl::Now() + absl::Seconds(20), callbacks).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(result.ok()) << result;
  const std::string text = metrics.Exposition();
  auto value = [&](const std::string& prefill) {
    const std::string series = "dsm_sampler_prompt_tokens_total{prefill=\"" + prefill + "\"} ";
    const size_t at = text.find(series);
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size()));
  };
  // What the sampler counted (how much of the prompt each sample copies depends on when it was
  // admitted; sampler_test pins that): 3 prompt tokens a sample, the first's all run.
  const Sampler::Counters counted = sampler_->counters();
  EXPECT_EQ(value("run"), static_cast<double>(counted.prefill_tokens)) << text;
  EXPECT_EQ(value("shared"), static_cast<double>(counted.shared_prefill_tokens)) << text;
  EXPECT_EQ(value("run") + value("shared"), 9) << text;
  EXPECT_GE(value("run"), 3) << text;
  EXPECT_NE(text.find(absl::StrCat("dsm_sampler_tokens_generated_total{role=\"generator\"} ",
                                   service_->generated_tokens(), "\n")),
            std::string::npos)
      << text;
}

TEST_F(GenerationServiceTest, AWaitingRequestTimesOut) {
  absl::Notification done;
  absl::Status result;
  const GenerationService::Callbacks callbacks = KeepResult(&result, &done);
  ASSERT_TRUE(service_->Start(Request(3), absl::Now() + absl::Milliseconds(200), callbacks).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(result.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(GenerationServiceTest, DestroyingTheServiceAnswersWaitingRequestsAtOnce) {
  auto done = std::make_shared<absl::Notification>();
  auto code = std::make_shared<std::atomic<int>>(-1);
  GenerationService::Callbacks callbacks;
  callbacks.on_completion = [](v1::Completion) { return true; };
  callbacks.on_done = [done, code](absl::Status s, v1::GenerateSummary) {
    code->store(static_cast<int>(s.code()));
    done->Notify();
  };
  ASSERT_TRUE(service_->Start(Request(7), absl::Now() + absl::Seconds(30), callbacks).ok());
  service_.reset();
  ASSERT_TRUE(done->WaitForNotificationWithTimeout(absl::Seconds(2))) << "still waiting after the service is gone";
  EXPECT_EQ(code->load(), static_cast<int>(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace dsm
