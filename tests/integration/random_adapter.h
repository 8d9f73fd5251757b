// Test helper: a generator adapter version for `config` with random, non-zero
// LoRA B matrices (a fresh PEFT-initialised adapter would equal the base).
#ifndef DSM_TESTS_INTEGRATION_RANDOM_ADAPTER_H_
#define DSM_TESTS_INTEGRATION_RANDOM_ADAPTER_H_

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/lora.h"
#include "services/adapters/adapter_codec.h"

namespace dsm_test {

inline dsm::AdapterVersionData RandomAdapterVersion(const dsm::ModelConfig& config, uint64_t version) {
  dsm::LoraConfig lora;
  lora.r = 4;
  auto adapter = dsm::LoraAdapter::Create(config, lora, version);
  EXPECT_TRUE(adapter.ok()) << adapter.status();
  dsm::AdapterVersionData data;
  data.role = dsm::v1::ADAPTER_ROLE_GENERATOR;
  data.version = version;
  data.adapter_config_json = dsm::LoraConfigToJson(lora);
  data.published_at = absl::Now();
  torch::manual_seed(version);
  for (auto& [name, tensor] : (*adapter)->NamedTensors()) {
    if (name.find("lora_B") != std::string::npos) tensor.normal_(0, 0.5);
    data.tensors[name] = tensor.clone();
  }
  return data;
}

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_RANDOM_ADAPTER_H_
