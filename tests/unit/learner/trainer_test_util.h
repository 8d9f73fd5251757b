// Test helpers for the trainer tests: a tiny reference model with a fresh
// LoRA adapter, synthetic GRPO / SFT batches, exact adapter comparison.
#ifndef DSM_TESTS_UNIT_LEARNER_TRAINER_TEST_UTIL_H_
#define DSM_TESTS_UNIT_LEARNER_TRAINER_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "learner/token_logprobs.h"
#include "learner/trainer.h"
#include "model/llama_model.h"
#include "model/lora.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm::learner_test {

struct TinyModel {
  std::unique_ptr<LlamaModel> model;
  int adapter = -1;
};

// llama_gqa_tied (vocab 300, 2 layers) with a fresh adapter made from `seed`.
// Pins LibTorch to one intra-op thread (bit-identical runs need a fixed count).
inline TinyModel LoadTinyModel(uint64_t adapter_seed = 11, double dropout = 0.0) {
  torch::set_num_threads(1);
  TinyModel out;
  const std::string ref = model_test::ReferenceDir();
  if (ref.empty()) return out;
  auto model = LlamaModel::Load(ref + "/llama_gqa_tied");
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return out;
  out.model = *std::move(model);
  LoraConfig config;
  config.r = 4;
  config.lora_alpha = 8;
  config.lora_dropout = dropout;
  auto adapter = LoraAdapter::Create(out.model->config(), config, adapter_seed);
  EXPECT_TRUE(adapter.ok()) << adapter.status();
  if (!adapter.ok()) return out;
  auto index = out.model->AddAdapter("policy", std::shared_ptr<LoraAdapter>(*std::move(adapter)));
  EXPECT_TRUE(index.ok()) << index.status();
  out.adapter = index.ok() ? *index : -1;
  return out;
}

// Batch `index` of a deterministic synthetic stream: prompts of 2-7 tokens,
// completions of 1-6, advantages in [-1, 1].
inline std::vector<TrainingSample> SyntheticSamples(int64_t index, int64_t count, int64_t vocab = 300) {
  std::mt19937_64 rng(1000 + static_cast<uint64_t>(index));
  std::uniform_int_distribution<int64_t> token(3, vocab - 1);
  std::uniform_int_distribution<int> prompt_len(2, 7);
  std::uniform_int_distribution<int> completion_len(1, 6);
  std::uniform_real_distribution<double> advantage(-1.0, 1.0);
  std::vector<TrainingSample> out(static_cast<size_t>(count));
  for (TrainingSample& s : out) {
    s.prompt_ids.resize(static_cast<size_t>(prompt_len(rng)));
    for (int64_t& t : s.prompt_ids) t = token(rng);
    s.completion_ids.resize(static_cast<size_t>(completion_len(rng)));
    for (int64_t& t : s.completion_ids) t = token(rng);
    s.advantage = advantage(rng);
  }
  return out;
}

// Fills behaviour_logprobs as a sampler would have: the adapter's current
// log-probs (then perturbed a little so that ratios are not all 1).
inline void FillBehaviourLogprobs(const LlamaModel& model, int adapter, std::vector<TrainingSample>& samples) {
  std::vector<PromptCompletion> inputs;
  for (const TrainingSample& s : samples) inputs.push_back({s.prompt_ids, s.completion_ids});
  TokenLogprobsOptions options;
  options.adapter = adapter;
  torch::NoGradGuard no_grad;
  auto lp = ComputeTokenLogprobs(model, inputs, options);
  ASSERT_TRUE(lp.ok()) << lp.status();
  for (size_t i = 0; i < samples.size(); ++i) {
    samples[i].behaviour_logprobs.clear();
    for (size_t t = 0; t < samples[i].completion_ids.size(); ++t) {
      const float v = lp->logprobs[static_cast<int64_t>(i)][static_cast<int64_t>(t)].item<float>();
      samples[i].behaviour_logprobs.push_back(v - 0.05f * static_cast<float>((i + t) % 3));
    }
  }
}

// GRPO batch `index` for the model as it is now.
inline TrainingBatch GrpoBatch(const TinyModel& m, int64_t index, int64_t count) {
  TrainingBatch batch;
  batch.objective = Objective::kGrpo;
  batch.samples = SyntheticSamples(index, count);
  FillBehaviourLogprobs(*m.model, m.adapter, batch.samples);
  batch.data_cursor = "batch=" + std::to_string(index + 1);
  return batch;
}

// Exact equality of every adapter tensor (bitwise for float32).
inline bool SameAdapterBits(const LoraAdapter& a, const LoraAdapter& b) {
  auto ta = a.NamedTensors();
  auto tb = b.NamedTensors();
  if (ta.size() != tb.size()) return false;
  for (const auto& [name, t] : ta) {
    auto it = tb.find(name);
    if (it == tb.end() || !torch::equal(t, it->second)) return false;
  }
  return true;
}

inline double MaxAdapterDiff(const LoraAdapter& a, const LoraAdapter& b) {
  double diff = 0;
  auto tb = b.NamedTensors();
  for (const auto& [name, t] : a.NamedTensors()) {
    diff = std::max(diff, (t - tb.at(name)).abs().max().item<double>());
  }
  return diff;
}

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A TCP port that was free a moment ago on 127.0.0.1.
inline uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace dsm::learner_test

#endif  // DSM_TESTS_UNIT_LEARNER_TRAINER_TEST_UTIL_H_
