#include "learner/token_logprobs.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/llama_model.h"
#include "model/lora.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::dsm::model_test::MaxAbsDiff;
using ::testing::HasSubstr;

// float32 log-probs of ~-40 and gradients of ~40 from forwards that differ
// only in batching and chunking (so in BLAS blocking and summation order):
// compare relative to the largest magnitude.
constexpr double kRelTol = 2e-6;
double RelDiff(const torch::Tensor& got, const torch::Tensor& want) {
  return MaxAbsDiff(got, want) / std::max(1.0, want.abs().max().item<double>());
}

class TokenLogprobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string ref = model_test::ReferenceDir();
    ASSERT_FALSE(ref.empty());
    const std::string dir = ref + "/llama_gqa_tied";
    auto model = LlamaModel::Load(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto adapter = LoraAdapter::Load(dir + "/lora", model_->config());
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    adapter_ = std::move(*adapter);
    {
      torch::NoGradGuard no_grad;  // keep the policy near the base: log-probs of a sensible size
      for (auto& [name, t] : adapter_->NamedTensors()) {
        if (name.find(".lora_B.") != std::string::npos) t.mul_(0.1);
      }
    }
    adapter_->SetRequiresGrad(true);
    auto index = model_->AddAdapter("policy", adapter_);
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = *index;
    samples_ = {
        {{5, 17, 99}, {4, 250, 3, 7}},
        {{42}, {8, 9, 10, 11, 12, 13}},
        {{1, 2, 3, 4, 5}, {6}},
        {{77, 78}, {}},
        {{200, 100}, {150, 50, 25}},
    };
  }

  // log_softmax(logits / temperature) of each sample run alone (no padding)
  // through Logits, at its completion tokens: [N, Tc].
  torch::Tensor Expected(int adapter, double temperature) {
    const int64_t tc = 6;
    torch::Tensor out = torch::zeros({static_cast<int64_t>(samples_.size()), tc});
    for (size_t i = 0; i < samples_.size(); ++i) {
      const PromptCompletion& s = samples_[i];
      std::vector<int64_t> ids = s.prompt;
      ids.insert(ids.end(), s.completion.begin(), s.completion.end());
      const int64_t len = static_cast<int64_t>(ids.size());
      absl::StatusOr<torch::Tensor> logits =
          model_->Logits(torch::tensor(ids, torch::kLong).view({1, len}), torch::Tensor(), {adapter});
      EXPECT_TRUE(logits.ok()) << logits.status();
      if (!logits.ok()) return {};
      const torch::Tensor logsm = torch::log_softmax(*logits / temperature, -1)[0];
      const int64_t p = static_cast<int64_t>(s.prompt.size());
      for (size_t k = 0; k < s.completion.size(); ++k) {
        const int64_t pos = p - 1 + static_cast<int64_t>(k);
        out[static_cast<int64_t>(i)][static_cast<int64_t>(k)] = logsm[pos][s.completion[k]];
      }
    }
    return out;
  }

  std::unique_ptr<LlamaModel> model_;
  std::shared_ptr<LoraAdapter> adapter_;
  int index_ = -1;
  std::vector<PromptCompletion> samples_;
};

TEST_F(TokenLogprobsTest, EqualsLogSoftmaxOfFullLogitsAtCompletionPositions) {
  for (double temperature : {1.0, 0.7}) {
    for (int adapter : {-1, index_}) {
      SCOPED_TRACE(testing::Message() << "temperature " << temperature << " adapter " << adapter);
      torch::NoGradGuard no_grad;
      TokenLogprobsOptions options;
      options.adapter = adapter;
      options.temperature = temperature;
      absl::StatusOr<CompletionLogprobs> got = ComputeTokenLogprobs(*model_, samples_, options);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->logprobs.sizes(), (std::vector<int64_t>{5, 6}));
      EXPECT_EQ(got->logprobs.scalar_type(), torch::kFloat);
      EXPECT_LT(RelDiff(got->logprobs, Expected(adapter, temperature)), kRelTol);
      EXPECT_LT(got->logprobs.max().item<double>(), 0.0 + 1e-6);
    }
  }
}

TEST_F(TokenLogprobsTest, MaskCoversCompletionTokensOnly) {
  absl::StatusOr<CompletionLogprobs> got = ComputeTokenLogprobs(*model_, samples_, TokenLogprobsOptions());
  ASSERT_TRUE(got.ok()) << got.status();
  const torch::Tensor expected_mask = torch::tensor({{1, 1, 1, 1, 0, 0},
                                                     {1, 1, 1, 1, 1, 1},
                                                     {1, 0, 0, 0, 0, 0},
                                                     {0, 0, 0, 0, 0, 0},
                                                     {1, 1, 1, 0, 0, 0}})
                                        .to(torch::kFloat);
  EXPECT_TRUE(torch::equal(got->mask, expected_mask));
  EXPECT_TRUE(torch::equal(got->logprobs * (1 - got->mask), torch::zeros({5, 6})));
  EXPECT_TRUE((got->logprobs.masked_select(got->mask.to(torch::kBool)) < 0).all().item<bool>());
}

TEST_F(TokenLogprobsTest, ReferenceHasNoGradEvenWhenTheAdapterIsTrainable) {
  TokenLogprobsOptions options;
  options.adapter = -1;
  absl::StatusOr<CompletionLogprobs> reference = ComputeTokenLogprobs(*model_, samples_, options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_FALSE(reference->logprobs.requires_grad());
  EXPECT_TRUE(torch::GradMode::is_enabled());  // the guard did not leak

  options.adapter = index_;
  absl::StatusOr<CompletionLogprobs> policy = ComputeTokenLogprobs(*model_, samples_, options);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->logprobs.requires_grad());
  EXPECT_GT(MaxAbsDiff(policy->logprobs.detach(), reference->logprobs), 1e-3);  // the adapter matters
}

// The per-chunk recomputing backward gives the gradients of plain autograd
// through the full logits.
TEST_F(TokenLogprobsTest, ChunkedGradientsEqualFullLogitsGradients) {
  torch::manual_seed(3);
  const torch::Tensor weights = torch::rand({5, 6});
  auto grads = [&](int64_t chunk) {
    TokenLogprobsOptions options;
    options.adapter = index_;
    options.temperature = 0.7;
    options.chunk_tokens = chunk;
    for (torch::Tensor& p : adapter_->Parameters()) {
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
    }
    absl::StatusOr<CompletionLogprobs> got = ComputeTokenLogprobs(*model_, samples_, options);
    EXPECT_TRUE(got.ok()) << got.status();
    (got->logprobs * weights).sum().backward();
    std::vector<torch::Tensor> out;
    for (const torch::Tensor& p : adapter_->Parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const std::vector<torch::Tensor> one_chunk = grads(1024);
  for (int64_t chunk : {1, 4}) {
    SCOPED_TRACE(chunk);
    const std::vector<torch::Tensor> chunked = grads(chunk);
    ASSERT_EQ(chunked.size(), one_chunk.size());
    for (size_t i = 0; i < chunked.size(); ++i) {
      EXPECT_LT(RelDiff(chunked[i], one_chunk[i]), kRelTol);
    }
  }

  // And the same as differentiating Expected() (separate unpadded forwards).
  for (torch::Tensor& p : adapter_->Parameters()) p.mutable_grad() = torch::Tensor();
  (Expected(index_, 0.7) * weights).sum().backward();
  double largest = 0;
  const std::vector<torch::Tensor> params = adapter_->Parameters();
  for (size_t i = 0; i < one_chunk.size(); ++i) {
    EXPECT_LT(RelDiff(params[i].grad(), one_chunk[i]), kRelTol);
    largest = std::max(largest, one_chunk[i].abs().max().item<double>());
  }
  EXPECT_GT(largest, 1e-3);
}

TEST_F(TokenLogprobsTest, ErrorsAreClear) {
  TokenLogprobsOptions options;
  EXPECT_THAT(ComputeTokenLogprobs(*model_, {}, options).status().message(), HasSubstr("no samples"));
  EXPECT_THAT(ComputeTokenLogprobs(*model_, {{{}, {1, 2}}}, options).status().message(),
              HasSubstr("sample 0 has an empty prompt"));
  options.temperature = 0;
  EXPECT_THAT(ComputeTokenLogprobs(*model_, samples_, options).status().message(), HasSubstr("temperature"));
  options = TokenLogprobsOptions();
  options.chunk_tokens = 0;
  EXPECT_THAT(ComputeTokenLogprobs(*model_, samples_, options).status().message(), HasSubstr("chunk_tokens"));
  options = TokenLogprobsOptions();
  options.adapter = 99;
  EXPECT_FALSE(ComputeTokenLogprobs(*model_, samples_, options).ok());
  absl::StatusOr<CompletionLogprobs> bad_id = ComputeTokenLogprobs(*model_, {{{1}, {100000}}}, TokenLogprobsOptions());
  ASSERT_FALSE(bad_id.ok());
  EXPECT_THAT(bad_id.status().message(), HasSubstr("token logprobs"));
}

TEST_F(TokenLogprobsTest, NoCompletionTokensGivesAnEmptyMask) {
  absl::StatusOr<CompletionLogprobs> got = ComputeTokenLogprobs(*model_, {{{1, 2}, {}}}, TokenLogprobsOptions());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->logprobs.sizes(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(got->mask.sizes(), (std::vector<int64_t>{1, 0}));
}

}  // namespace
}  // namespace dsm
