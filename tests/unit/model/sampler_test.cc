// The sampler against full recomputation, against itself one sequence at a
// time, and against its stop / limit / validation rules.
#include "model/sampler.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/lora.h"
#include "model/tokenizer.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<LlamaModel> LoadModel(const std::string& name) {
  const std::string dir = model_test::ReferenceDir() + "/" + name;
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<int32_t> Prompt(int n, int offset, int64_t vocab) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((offset + 37 * i) % vocab));
  return ids;
}

SampleRequest Greedy(std::vector<int32_t> prompt, int max_tokens) {
  SampleRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

SampleRequest Sampled(std::vector<int32_t> prompt, int max_tokens, uint64_t seed) {
  SampleRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 1.0;
  r.params.top_p = 0.95;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.seed = seed;
  return r;
}

std::unique_ptr<Sampler> MakeSampler(const LlamaModel* model, int64_t max_batch = 8,
                                     const Tokenizer* tokenizer = nullptr) {
  SamplerOptions options;
  options.max_batch = max_batch;
  options.max_len = 128;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler = Sampler::Create(model, tokenizer, options);
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  return std::move(*sampler);
}

SampleResult Only(std::vector<absl::StatusOr<SampleResult>> results) {
  EXPECT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok()) << results[0].status();
  return *results[0];
}

// Greedy decoding with the cache equals argmax of a full forward over the
// whole sequence, and every log-prob equals log_softmax of those logits.
TEST(Sampler, CachedGreedyDecodingEqualsFullRecomputation) {
  for (const char* name : {"llama_gqa_tied", "qwen3_qknorm", "qwen2_bias"}) {
    SCOPED_TRACE(name);
    auto model = LoadModel(name);
    ASSERT_NE(model, nullptr);
    auto sampler = MakeSampler(model.get());
    const std::vector<int32_t> prompt = Prompt(7, 3, model->config().vocab_size);
    const SampleResult r = Only(sampler->Generate({Greedy(prompt, 12)}));
    ASSERT_EQ(r.tokens.size(), 12u);
    EXPECT_EQ(r.finish_reason, FinishReason::kLength);

    std::vector<int64_t> all(prompt.begin(), prompt.end());
    all.insert(all.end(), r.tokens.begin(), r.tokens.end());
    const torch::Tensor ids = torch::tensor(all, torch::kLong).unsqueeze(0);
    absl::StatusOr<torch::Tensor> logits = model->Logits(ids, torch::Tensor());
    ASSERT_TRUE(logits.ok()) << logits.status();
    const torch::Tensor logprobs = torch::log_softmax(*logits, -1)[0];
    for (std::size_t i = 0; i < r.tokens.size(); ++i) {
      const int64_t position = static_cast<int64_t>(prompt.size() + i) - 1;
      EXPECT_EQ(logprobs[position].argmax().item<int64_t>(), r.tokens[i]) << "token " << i;
      EXPECT_NEAR(logprobs[position][r.tokens[i]].item<float>(), r.logprobs[i], 1e-4) << "token " << i;
    }
  }
}

TEST(Sampler, BatchEqualsOneByOne) {
  auto model = LoadModel("llama3_rope_untied");
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().vocab_size;
  std::vector<SampleRequest> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(Sampled(Prompt(3 + 2 * i, i, vocab), 10 + i, 100 + i));
  requests.push_back(Greedy(Prompt(9, 5, vocab), 8));

  auto batched = MakeSampler(model.get())->Generate(requests);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(i);
    const SampleResult alone = Only(MakeSampler(model.get())->Generate({requests[i]}));
    ASSERT_TRUE(batched[i].ok()) << batched[i].status();
    EXPECT_EQ(batched[i]->tokens, alone.tokens);
    ASSERT_EQ(batched[i]->logprobs.size(), alone.logprobs.size());
    for (std::size_t t = 0; t < alone.logprobs.size(); ++t) {
      EXPECT_NEAR(batched[i]->logprobs[t], alone.logprobs[t], 1e-4);
    }
  }
}

TEST(Sampler, SeededOutputDoesNotDependOnNeighbours) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().vocab_size;
  // A hot temperature so the tiny random model's tokens really vary.
  SampleRequest probe = Sampled(Prompt(5, 11, vocab), 16, 4242);
  probe.params.temperature = 3.0;
  probe.params.top_p = 1.0;
  const SampleResult alone = Only(MakeSampler(model.get())->Generate({probe}));
  ASSERT_GT(std::set<int32_t>(alone.tokens.begin(), alone.tokens.end()).size(), 4u);

  std::vector<SampleRequest> crowd;
  for (int i = 0; i < 5; ++i) {
    SampleRequest other = Sampled(Prompt(2 + 3 * i, 7 * i, vocab), 4 + 5 * i, 9 + i);
    other.params.top_k = 3 + i;  // neighbours with other filters
    other.params.min_p = 0.05;
    other.params.temperature = 0.7;
    crowd.push_back(other);
  }
  crowd.insert(crowd.begin() + 2, probe);
  auto results = MakeSampler(model.get(), 3)->Generate(crowd);  // 3 slots: continuous batching
  ASSERT_TRUE(results[2].ok());
  EXPECT_EQ(results[2]->tokens, alone.tokens);

  // A different seed gives a different sequence (the seed is used at all).
  SampleRequest reseeded = probe;
  reseeded.params.seed = 4243;
  EXPECT_NE(Only(MakeSampler(model.get())->Generate({reseeded})).tokens, alone.tokens);
}

// On the CPU in float32 the sampler's forward runs on the row kernels (model/row_kernels.h): a
// sequence's log-probabilities are the same bits alone and in any crowd, so a seeded sequence
// repeats itself exactly whatever else the sampler decodes beside it.
TEST(Sampler, LogprobsAreTheSameBitsAloneAndInACrowd) {
  for (const char* name : {"llama_gqa_tied", "qwen3_qknorm", "qwen2_bias"}) {
    SCOPED_TRACE(name);
    auto model = LoadModel(name);
    ASSERT_NE(model, nullptr);
    const int64_t vocab = model->config().vocab_size;
    SampleRequest probe = Sampled(Prompt(6, 5, vocab), 20, 77);
    probe.params.temperature = 2.0;
    const SampleResult alone = Only(MakeSampler(model.get())->Generate({probe}));
    for (int64_t slots : {2, 5}) {
      std::vector<SampleRequest> crowd;
      for (int i = 0; i < 6; ++i) crowd.push_back(Sampled(Prompt(1 + 4 * i, 3 * i, vocab), 3 + 7 * i, 50 + i));
      crowd.insert(crowd.begin() + 3, probe);
      auto results = MakeSampler(model.get(), slots)->Generate(crowd);
      ASSERT_TRUE(results[3].ok()) << results[3].status();
      EXPECT_EQ(results[3]->tokens, alone.tokens) << slots << " slots";
      EXPECT_EQ(results[3]->logprobs, alone.logprobs) << slots << " slots";
    }
  }
}

// A request's n samples share the prefill of their prompt: admitted together, the first is run
// and the others copy its cache entries and logits; admitted while one of them runs, they copy its
// entries but the last and run only the prompt's last token. Either way every sample keeps the
// bits it gets alone. Three slots: A, B (B copies A) and C start together; D starts when C ends
// (copies running A), E when A and B end (copies running D).
TEST(Sampler, SamplesOfOnePromptShareItsPrefillAndKeepTheirBits) {
  for (const char* name : {"llama_gqa_tied", "qwen3_qknorm", "qwen2_bias"}) {
    SCOPED_TRACE(name);
    auto model = LoadModel(name);
    ASSERT_NE(model, nullptr);
    const int64_t vocab = model->config().vocab_size;
    const std::vector<int32_t> p = Prompt(9, 4, vocab), q = Prompt(5, 11, vocab);
    std::vector<SampleRequest> requests = {Sampled(p, 20, 1), Sampled(p, 20, 2), Sampled(q, 3, 3),
                                           Sampled(p, 20, 4), Sampled(p, 20, 5)};
    for (SampleRequest& r : requests) r.params.temperature = 2.0;
    auto sampler = MakeSampler(model.get(), 3);
    auto results = sampler->Generate(requests);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      SCOPED_TRACE(i);
      ASSERT_TRUE(results[i].ok()) << results[i].status();
      const SampleResult alone = Only(MakeSampler(model.get())->Generate({requests[i]}));
      EXPECT_EQ(results[i]->tokens, alone.tokens);
      EXPECT_EQ(results[i]->logprobs, alone.logprobs);
    }
    const Sampler::Counters c = sampler->counters();
    EXPECT_EQ(c.prefill_tokens, 9 + 5 + 1 + 1);  // A, C in full; D and E their last token
    EXPECT_EQ(c.shared_prefill_tokens, 9 + 8 + 8);
  }
}

TEST(Sampler, ContinuousBatchingRefillsFreedSlots) {
  auto model = LoadModel("qwen2_bias");
  ASSERT_NE(model, nullptr);
  const int64_t vocab = model->config().vocab_size;
  std::vector<SampleRequest> requests;
  for (int i = 0; i < 7; ++i) requests.push_back(Greedy(Prompt(4 + i, 3 * i, vocab), 3 + 2 * i));
  auto sampler = MakeSampler(model.get(), 2);
  auto results = sampler->Generate(requests);
  auto wide = MakeSampler(model.get(), 8)->Generate(requests);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->tokens.size(), static_cast<std::size_t>(3 + 2 * i));
    EXPECT_EQ(results[i]->tokens, wide[i]->tokens);
  }
  const Sampler::Counters c = sampler->counters();
  EXPECT_EQ(c.decode_tokens + static_cast<int64_t>(requests.size()), [&] {
    int64_t n = 0;
    for (auto& r : results) n += static_cast<int64_t>(r->tokens.size());
    return n;
  }());
  EXPECT_EQ(sampler->running(), 0);
  EXPECT_EQ(sampler->queued(), 0);
}

TEST(Sampler, StopsAtStopTokenAndAtMaxTokens) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  const std::vector<int32_t> prompt = Prompt(6, 1, model->config().vocab_size);
  const SampleResult free_run = Only(MakeSampler(model.get())->Generate({Greedy(prompt, 10)}));
  ASSERT_EQ(free_run.tokens.size(), 10u);
  SampleRequest stopping = Greedy(prompt, 10);
  stopping.params.stop_token_ids = {free_run.tokens[3]};
  const SampleResult stopped = Only(MakeSampler(model.get())->Generate({stopping}));
  EXPECT_EQ(stopped.finish_reason, FinishReason::kStopToken);
  const auto first = std::find(free_run.tokens.begin(), free_run.tokens.end(), free_run.tokens[3]);
  const std::size_t expected_len = static_cast<std::size_t>(first - free_run.tokens.begin()) + 1;
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(free_run.tokens.begin(), free_run.tokens.begin() + expected_len));
}

TEST(Sampler, PerRowAdaptersMatchRunningEachAlone) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  LoraConfig config;
  config.r = 4;
  auto adapter = LoraAdapter::Create(model->config(), config, 7);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  torch::manual_seed(3);
  for (auto& [name, tensor] : (*adapter)->NamedTensors()) {
    if (name.find("lora_B") != std::string::npos) tensor.normal_(0, 0.5);
  }
  absl::StatusOr<int> index = model->AddAdapter("verifier", std::shared_ptr<LoraAdapter>(std::move(*adapter)));
  ASSERT_TRUE(index.ok()) << index.status();

  const std::vector<int32_t> prompt = Prompt(8, 2, model->config().vocab_size);
  SampleRequest base = Greedy(prompt, 12);
  SampleRequest tuned = Greedy(prompt, 12);
  tuned.adapter = *index;
  auto both = MakeSampler(model.get())->Generate({base, tuned});
  const SampleResult base_alone = Only(MakeSampler(model.get())->Generate({base}));
  const SampleResult tuned_alone = Only(MakeSampler(model.get())->Generate({tuned}));
  EXPECT_EQ(both[0]->tokens, base_alone.tokens);
  EXPECT_EQ(both[1]->tokens, tuned_alone.tokens);
  EXPECT_EQ(both[1]->adapter, *index);
  EXPECT_NE(base_alone.tokens, tuned_alone.tokens);  // the adapter matters
}

// A byte-level tokenizer whose ids are the 256 bytes (GPT-2 byte mapping).
std::string ByteTokenizerJson() {
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  std::map<int, int> byte_to_char;
  for (int b : printable) byte_to_char[b] = b;
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    if (!byte_to_char.count(b)) byte_to_char[b] = 256 + next++;
  }
  auto utf8 = [](int cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string key = utf8(byte_to_char[b]);
    if (key == "\"" || key == "\\") key = "\\" + key;
    vocab += (b ? "," : "") + std::string("\"") + key + "\":" + std::to_string(b);
  }
  return R"({"version":"1.0","added_tokens":[],"normalizer":null,)"
         R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},)"
         R"("post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},)"
         R"("model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,)"
         R"("end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"vocab":{)" +
         vocab + R"(},"merges":[]}})";
}

TEST(Sampler, StopStringCutsTheText) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromJson(ByteTokenizerJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto sampler = MakeSampler(model.get(), 4, tokenizer->get());
  // Prompt ids below 256 so they are bytes of this tokenizer.
  std::vector<int32_t> prompt = {72, 101, 108, 108, 111};
  SampleRequest request = Greedy(prompt, 24);
  const SampleResult free_run = Only(sampler->Generate({request}));
  ASSERT_EQ(free_run.text, (*tokenizer)->Decode(free_run.tokens));
  ASSERT_GE(free_run.text.size(), 6u);
  // Stop at a two-byte string from the middle of the free-running text.
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 2);
  const std::size_t at = free_run.text.find(stop);
  request.params.stop = {stop};
  const SampleResult stopped = Only(sampler->Generate({request}));
  EXPECT_EQ(stopped.finish_reason, FinishReason::kStopString);
  EXPECT_EQ(stopped.stop, stop);
  EXPECT_EQ(stopped.text, free_run.text.substr(0, at));
  request.params.include_stop_str_in_output = true;
  EXPECT_EQ(Only(sampler->Generate({request})).text, free_run.text.substr(0, at + stop.size()));
}

// The EOS or stop token that ends a sequence is in `tokens` but not in `text` (vLLM's rule), so a
// completion can go into another prompt without an end-of-sequence marker; unless
// include_stop_str_in_output.
TEST(Sampler, TheStopTokenIsNotText) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromJson(ByteTokenizerJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto sampler = MakeSampler(model.get(), 4, tokenizer->get());
  SampleRequest request = Greedy({72, 101, 108, 108, 111}, 12);
  const SampleResult free_run = Only(sampler->Generate({request}));
  ASSERT_EQ(free_run.tokens.size(), 12u);
  const auto first = std::find(free_run.tokens.begin(), free_run.tokens.end(), free_run.tokens[5]);
  const std::vector<int32_t> before(free_run.tokens.begin(), first);
  request.params.stop_token_ids = {free_run.tokens[5]};
  const SampleResult stopped = Only(sampler->Generate({request}));
  EXPECT_EQ(stopped.finish_reason, FinishReason::kStopToken);
  ASSERT_EQ(stopped.tokens.size(), before.size() + 1);
  EXPECT_EQ(stopped.text, (*tokenizer)->Decode(before));
  request.params.include_stop_str_in_output = true;
  EXPECT_EQ(Only(sampler->Generate({request})).text, (*tokenizer)->Decode(stopped.tokens));
}

TEST(Sampler, RejectsBadRequestsNamingTheField) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  auto sampler = MakeSampler(model.get());
  const int64_t vocab = model->config().vocab_size;
  auto error = [&](SampleRequest r) {
    const absl::Status s = sampler->Submit(std::move(r), nullptr);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  EXPECT_THAT(error(Greedy({}, 4)), HasSubstr("prompt"));
  EXPECT_THAT(error(Greedy({1, static_cast<int32_t>(vocab)}, 4)), HasSubstr("prompt[1]"));
  EXPECT_THAT(error(Greedy({1, 2}, 127)), HasSubstr("max_len 128"));
  SampleRequest bad_p = Greedy({1, 2}, 4);
  bad_p.params.top_p = 1.5;
  EXPECT_THAT(error(bad_p), HasSubstr("top_p"));
  SampleRequest bad_adapter = Greedy({1, 2}, 4);
  bad_adapter.adapter = 3;
  EXPECT_THAT(error(bad_adapter), HasSubstr("adapter"));
  SampleRequest stops = Greedy({1, 2}, 4);
  stops.params.stop = {"x"};
  EXPECT_THAT(error(stops), HasSubstr("tokenizer"));
  EXPECT_EQ(sampler->queued(), 0);
}

TEST(Sampler, BackgroundThreadServesConcurrentSubmitters) {
  auto model = LoadModel("llama_gqa_tied");
  ASSERT_NE(model, nullptr);
  auto sampler = MakeSampler(model.get(), 4);
  sampler->Start();
  const int64_t vocab = model->config().vocab_size;
  constexpr int kRequests = 6;
  absl::Mutex mu;
  std::vector<std::vector<int32_t>> tokens(kRequests);
  int finished = 0;
  std::vector<std::thread> submitters;
  for (int i = 0; i < kRequests; ++i) {
    submitters.emplace_back([&, i] {
      ASSERT_TRUE(sampler->Submit(Sampled(Prompt(4, i, vocab), 6, i), [&, i](absl::StatusOr<SampleResult> r) {
        absl::MutexLock lock(&mu);
        tokens[i] = r->tokens;
        ++finished;
      }).ok());
    });
  }
  for (auto& t : submitters) t.join();
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&finished] { return finished == kRequests; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60)));
  }
  sampler->Stop();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(tokens[i], Only(MakeSampler(model.get())->Generate({Sampled(Prompt(4, i, vocab), 6, i)})).tokens);
  }
}

TEST(Sampling, TopKOneAndTinyTopPAreGreedy) {
  const torch::Tensor logits = torch::tensor({{0.1f, 2.0f, 1.9f, -1.0f}});
  SamplingParams p;
  p.top_k = 1;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    p.seed = seed;
    EXPECT_EQ(ChooseTokens(logits, {&p}, {0}).tokens[0], 1);
  }
  p.top_k = 0;
  p.top_p = 0.01;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    p.seed = seed;
    EXPECT_EQ(ChooseTokens(logits, {&p}, {0}).tokens[0], 1);
  }
}

TEST(Sampling, FrequenciesFollowTheDistribution) {
  const std::vector<float> probs = {0.5f, 0.3f, 0.15f, 0.05f};
  std::vector<float> logit_values;
  for (float q : probs) logit_values.push_back(std::log(q));
  const torch::Tensor logits = torch::tensor(logit_values).unsqueeze(0);
  SamplingParams plain, filtered;
  filtered.min_p = 0.2;  // drops tokens below 0.2 × 0.5 = 0.1: the last one
  std::vector<int> counts(4, 0), filtered_counts(4, 0);
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    plain.seed = filtered.seed = static_cast<uint64_t>(i);
    ++counts[ChooseTokens(logits, {&plain}, {0}).tokens[0]];
    ++filtered_counts[ChooseTokens(logits, {&filtered}, {0}).tokens[0]];
  }
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(counts[t] / double(kDraws), probs[t], 0.015) << t;
  EXPECT_EQ(filtered_counts[3], 0);
  EXPECT_NEAR(filtered_counts[0] / double(kDraws), 0.5 / 0.95, 0.015);
  // Log-probs are of the tempered, unfiltered distribution.
  filtered.seed = 1;
  const TokenChoice c = ChooseTokens(logits, {&filtered}, {0});
  EXPECT_NEAR(c.logprobs[0], std::log(probs[c.tokens[0]]), 1e-5);
}

TEST(Sampling, ParamsValidationNamesTheField) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_THAT(std::string(p.Validate().message()), HasSubstr("temperature"));
  p = SamplingParams();
  p.min_p = 1;
  EXPECT_THAT(std::string(p.Validate().message()), HasSubstr("min_p"));
  p = SamplingParams();
  p.max_tokens = 0;
  EXPECT_THAT(std::string(p.Validate().message()), HasSubstr("max_tokens"));
}

}  // namespace
}  // namespace dsm
