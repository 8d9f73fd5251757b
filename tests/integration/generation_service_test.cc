// GenerationService: a request that waits for an adapter version it does not
// hold yet is answered when the version arrives, or when its deadline
// passes, or — if the service goes away first — at once with UNAVAILABLE
// (never after the service is gone).
#include <atomic>
#include <memory>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/synchronization/notification.h"
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

  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<AdapterRegistry> registry_;
  std::unique_ptr<GenerationService> service_;
};

TEST_F(GenerationServiceTest, AWaitingRequestStartsWhenItsVersionArrives) {
  absl::Notification done;
  absl::Status result;
  GenerationService::Callbacks callbacks;
  callbacks.on_completion = [](v1::Completion) { return true; };
  callbacks.on_done = [&](absl::Status s, v1::GenerateSummary) {
    result = s;
    done.Notify();
  };
  ASSERT_TRUE(service_->Start(Request(1), absl::Now() + absl::Seconds(20), callbacks).ok());
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  AdapterVersionData v = dsm_test::RandomAdapterVersion(model_->config(), 1);
  v.role = v1::ADAPTER_ROLE_GENERATOR;
  ASSERT_TRUE(registry_->Install(v).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(result.ok()) << result;
}

TEST_F(GenerationServiceTest, AWaitingRequestTimesOut) {
  absl::Notification done;
  absl::Status result;
  GenerationService::Callbacks callbacks;
  callbacks.on_completion = [](v1::Completion) { return true; };
  callbacks.on_done = [&](absl::Status s, v1::GenerateSummary) {
    result = s;
    done.Notify();
  };
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
