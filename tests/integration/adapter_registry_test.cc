// Streamed adapter versions installed into a running sampler: sequences keep
// the version they started with; old unused versions are removed.
#include "services/adapters/adapter_registry.h"

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include <torch/torch.h>

#include "model/lora.h"
#include "tests/integration/random_adapter.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using dsm_test::RandomAdapterVersion;

SampleRequest Request(int adapter, int max_tokens) {
  SampleRequest r;
  r.prompt = {3, 14, 15, 92, 65};
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  r.params.max_tokens = max_tokens;
  r.adapter = adapter;
  return r;
}

TEST(AdapterRegistry, SequencesFinishOnTheVersionTheyStartedWith) {
  auto model = LlamaModel::Load(model_test::ReferenceDir() + "/llama_gqa_tied");
  ASSERT_TRUE(model.ok()) << model.status();
  SamplerOptions options;
  options.max_batch = 4;
  options.max_len = 256;
  auto sampler = Sampler::Create(model->get(), nullptr, options);
  ASSERT_TRUE(sampler.ok());
  AdapterRegistry registry(model->get(), sampler->get(), /*keep_versions=*/1);

  EXPECT_EQ(registry.Acquire(v1::ADAPTER_ROLE_GENERATOR).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(registry.Install(RandomAdapterVersion((*model)->config(), 1)).ok());
  (*sampler)->Start();

  // A long sequence starts on version 1 ...
  auto lease1 = registry.Acquire(v1::ADAPTER_ROLE_GENERATOR);
  ASSERT_TRUE(lease1.ok());
  EXPECT_EQ(lease1->version, 1u);
  absl::Notification long_done;
  std::vector<int32_t> long_tokens;
  ASSERT_TRUE((*sampler)->Submit(Request(lease1->index, 200), [&](absl::StatusOr<SampleResult> r) {
    long_tokens = r->tokens;
    long_done.Notify();
  }).ok());
  // ... version 2 arrives while it runs; new sequences get version 2.
  ASSERT_TRUE(registry.Install(RandomAdapterVersion((*model)->config(), 2)).ok());
  EXPECT_FALSE(registry.Install(RandomAdapterVersion((*model)->config(), 2)).ok());  // not newer
  auto lease2 = registry.Acquire(v1::ADAPTER_ROLE_GENERATOR);
  ASSERT_TRUE(lease2.ok());
  EXPECT_EQ(lease2->version, 2u);
  EXPECT_NE(lease2->index, lease1->index);
  EXPECT_EQ(registry.installed(v1::ADAPTER_ROLE_GENERATOR), (std::vector<uint64_t>{1, 2}));  // 1 is in use

  ASSERT_TRUE(long_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  (*sampler)->Stop();
  registry.Release(*lease1);
  EXPECT_EQ(registry.installed(v1::ADAPTER_ROLE_GENERATOR), std::vector<uint64_t>{2});

  // The long sequence equals a run on version 1 alone: it never saw version 2.
  auto fresh = LlamaModel::Load(model_test::ReferenceDir() + "/llama_gqa_tied");
  ASSERT_TRUE(fresh.ok());
  const AdapterVersionData v1 = RandomAdapterVersion((*fresh)->config(), 1);
  auto config = ParseLoraConfig(v1.adapter_config_json);
  ASSERT_TRUE(config.ok());
  auto adapter = LoraAdapter::FromTensors((*fresh)->config(), *config, v1.tensors);
  ASSERT_TRUE(adapter.ok());
  auto index = (*fresh)->AddAdapter("v1", std::shared_ptr<LoraAdapter>(std::move(*adapter)));
  ASSERT_TRUE(index.ok());
  auto alone = Sampler::Create(fresh->get(), nullptr, options);
  ASSERT_TRUE(alone.ok());
  auto results = (*alone)->Generate({Request(*index, 200)});
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(long_tokens, results[0]->tokens);
  registry.Release(*lease2);
}

TEST(AdapterRegistry, RejectsTensorsThatDoNotFitTheModel) {
  auto model = LlamaModel::Load(model_test::ReferenceDir() + "/llama_gqa_tied");
  ASSERT_TRUE(model.ok());
  auto sampler = Sampler::Create(model->get(), nullptr, SamplerOptions{});
  ASSERT_TRUE(sampler.ok());
  AdapterRegistry registry(model->get(), sampler->get());
  AdapterVersionData bad = RandomAdapterVersion((*model)->config(), 1);
  bad.tensors.begin()->second = torch::zeros({3, 3});
  const absl::Status status = registry.Install(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(registry.versions().empty());
}

}  // namespace
}  // namespace dsm
