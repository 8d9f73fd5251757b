#include "model/llama_model.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/safetensors.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::dsm::model_test::Expected;
using ::dsm::model_test::MaxAbsDiff;
using ::testing::HasSubstr;

constexpr double kTol = 1e-4;

std::unique_ptr<LlamaModel> LoadOrDie(const std::string& dir, torch::ScalarType dtype = torch::kFloat) {
  auto model = LlamaModel::Load(dir, {dtype, torch::kCPU});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

// Full-forward logits of one unpadded sequence [1, T].
torch::Tensor FullLogits(const LlamaModel& model, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  auto logits = model.Logits(ids.view({1, -1}), torch::Tensor());
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? (*logits)[0] : torch::Tensor();
}

class ReferenceLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceLogits, MatchPythonWithinTolerance) {
  DSM_REFERENCE_DIR_OR_RETURN(ref);
  const std::string dir = ref + "/" + GetParam();
  auto model = LoadOrDie(dir);
  ASSERT_NE(model, nullptr);
  torch::Tensor ids = Expected(dir, "ids");
  torch::Tensor want = Expected(dir, "logits");
  torch::NoGradGuard no_grad;
  auto got = model->Logits(ids, torch::Tensor());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sizes(), want.sizes());
  EXPECT_EQ(got->scalar_type(), torch::kFloat);
  EXPECT_LT(MaxAbsDiff(*got, want), kTol);
}

// Prefill k tokens, then decode one at a time: every step equals the full forward.
TEST_P(ReferenceLogits, IncrementalDecodeEqualsFullForward) {
  DSM_REFERENCE_DIR_OR_RETURN(ref);
  const std::string dir = ref + "/" + GetParam();
  auto model = LoadOrDie(dir);
  ASSERT_NE(model, nullptr);
  torch::Tensor ids = Expected(dir, "ids")[0];
  const int64_t len = ids.size(0);
  torch::Tensor full = FullLogits(*model, ids);
  auto cache = model->NewKvCache(/*num_slots=*/2, /*max_len=*/32);
  ASSERT_TRUE(cache.ok()) << cache.status();
  const int64_t k = 4;
  auto prefill = model->Forward({ids.narrow(0, 0, k).view({1, k}), {1}, {}, {}}, **cache);
  ASSERT_TRUE(prefill.ok()) << prefill.status();
  EXPECT_LT(MaxAbsDiff((*prefill)[0], full.narrow(0, 0, k)), kTol);
  EXPECT_EQ((*cache)->length(1), k);
  EXPECT_EQ((*cache)->length(0), 0);
  for (int64_t t = k; t < len; ++t) {
    auto step = model->Forward({ids.narrow(0, t, 1).view({1, 1}), {1}, {}, {}}, **cache, LogitsSelect::kLast);
    ASSERT_TRUE(step.ok()) << step.status();
    ASSERT_EQ(step->dim(), 2);
    EXPECT_LT(MaxAbsDiff((*step)[0], full[t]), kTol) << "position " << t;
  }
  EXPECT_EQ((*cache)->length(1), len);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ReferenceLogits,
                         ::testing::Values("llama_gqa_tied", "llama3_rope_untied", "qwen2_bias", "qwen3_qknorm",
                                           "llama_bf16_sharded"));

class LlamaModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = model_test::ReferenceDir();
    ASSERT_FALSE(ref_.empty());
    dir_ = ref_ + "/llama_gqa_tied";
    model_ = LoadOrDie(dir_);
    ASSERT_NE(model_, nullptr);
  }
  std::string ref_;
  std::string dir_;
  std::unique_ptr<LlamaModel> model_;
};

// Three sequences of different lengths share one batch: a ragged prefill, then
// decoding together, one finishing early and its slot refilled with a new one.
TEST_F(LlamaModelTest, RaggedBatchDecodesLikeSeparateSequences) {
  torch::manual_seed(7);
  torch::Tensor gen = torch::randint(0, 300, {3, 12}, torch::TensorOptions().dtype(torch::kLong));
  const std::vector<int64_t> prompt = {3, 6, 1};
  const std::vector<int64_t> total = {9, 8, 12};
  std::vector<torch::Tensor> full;
  for (int s = 0; s < 3; ++s) full.push_back(FullLogits(*model_, gen[s].narrow(0, 0, total[s])));
  auto cache = model_->NewKvCache(/*num_slots=*/4, /*max_len=*/16);
  ASSERT_TRUE(cache.ok());
  // Slots 3, 0, 2: not a contiguous range (exercises the gathering path).
  const std::vector<int64_t> slots = {3, 0, 2};
  torch::Tensor padded = torch::full({3, 6}, -1, torch::kLong);  // padding need not be a valid id
  for (int s = 0; s < 3; ++s) padded[s].narrow(0, 0, prompt[s]).copy_(gen[s].narrow(0, 0, prompt[s]));
  auto logits = model_->Forward({padded, slots, prompt, {}}, **cache);
  ASSERT_TRUE(logits.ok()) << logits.status();
  for (int s = 0; s < 3; ++s) {
    EXPECT_LT(MaxAbsDiff((*logits)[s].narrow(0, 0, prompt[s]), full[s].narrow(0, 0, prompt[s])), kTol) << s;
  }
  std::vector<int64_t> pos = prompt;
  for (int step = 0; step < 12; ++step) {
    std::vector<int64_t> rows, row_slots;
    for (int s = 0; s < 3; ++s) {
      if (pos[s] < total[s]) {
        rows.push_back(s);
        row_slots.push_back(slots[s]);
      }
    }
    if (rows.empty()) break;
    torch::Tensor next = torch::empty({static_cast<int64_t>(rows.size()), 1}, torch::kLong);
    for (size_t i = 0; i < rows.size(); ++i) next[static_cast<int64_t>(i)][0].copy_(gen[rows[i]][pos[rows[i]]]);
    auto out = model_->Forward({next, row_slots, {}, {}}, **cache, LogitsSelect::kLast);
    ASSERT_TRUE(out.ok()) << out.status();
    for (size_t i = 0; i < rows.size(); ++i) {
      const int s = static_cast<int>(rows[i]);
      EXPECT_LT(MaxAbsDiff((*out)[i], full[s][pos[s]]), kTol) << "seq " << s << " pos " << pos[s];
      ++pos[s];
    }
  }
  EXPECT_EQ((*cache)->length(3), 9);
  EXPECT_EQ((*cache)->length(0), 8);
  EXPECT_EQ((*cache)->length(2), 12);
  // Continuous batching: slot 0 finished; refill it with a new sequence while
  // slot 2 keeps going.
  (*cache)->Reset(0);
  torch::Tensor fresh = torch::randint(0, 300, {5}, torch::kLong);
  torch::Tensor fresh_full = FullLogits(*model_, fresh);
  auto refill = model_->Forward({fresh.view({1, 5}), {0}, {}, {}}, **cache, LogitsSelect::kLast);
  ASSERT_TRUE(refill.ok());
  EXPECT_LT(MaxAbsDiff((*refill)[0], fresh_full[4]), kTol);
  torch::Tensor more = torch::randint(0, 300, {1}, torch::kLong);
  torch::Tensor extended_full = FullLogits(*model_, torch::cat({gen[2].narrow(0, 0, 12), more}));
  auto mixed = model_->Forward({torch::stack({more, torch::zeros({1}, torch::kLong)}).view({2, 1}), {2, 0}, {}, {}},
                               **cache, LogitsSelect::kLast);
  ASSERT_TRUE(mixed.ok());
  EXPECT_LT(MaxAbsDiff((*mixed)[0], extended_full[12]), kTol);
}

TEST_F(LlamaModelTest, PaddedRowsMatchUnpaddedLogits) {
  torch::manual_seed(8);
  torch::Tensor a = torch::randint(0, 300, {7}, torch::kLong);
  torch::Tensor b = torch::randint(0, 300, {4}, torch::kLong);
  torch::Tensor want_a = FullLogits(*model_, a);
  torch::Tensor want_b = FullLogits(*model_, b);
  // Row 0 full, row 1 left-padded, row 2 right-padded.
  torch::Tensor ids = torch::zeros({3, 7}, torch::kLong);
  torch::Tensor mask = torch::zeros({3, 7}, torch::kLong);
  ids[0].copy_(a);
  mask[0].fill_(1);
  ids[1].narrow(0, 3, 4).copy_(b);
  mask[1].narrow(0, 3, 4).fill_(1);
  ids[2].narrow(0, 0, 4).copy_(b);
  mask[2].narrow(0, 0, 4).fill_(1);
  torch::NoGradGuard no_grad;
  auto got = model_->Logits(ids, mask);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->isnan().any().item<bool>());
  EXPECT_LT(MaxAbsDiff((*got)[0], want_a), kTol);
  EXPECT_LT(MaxAbsDiff((*got)[1].narrow(0, 3, 4), want_b), kTol);
  EXPECT_LT(MaxAbsDiff((*got)[2].narrow(0, 0, 4), want_b), kTol);
  auto hidden = model_->HiddenStates(ids, mask);
  ASSERT_TRUE(hidden.ok());
  EXPECT_LT(MaxAbsDiff(model_->LmHead(*hidden), *got), 1e-6);
}

// HiddenStatesAt: what HiddenStates gives at the chosen positions (any order, repeats, a padded
// row), and the same gradients, though the last layer's queries and MLP run there only.
TEST_F(LlamaModelTest, HiddenStatesAtArePickedHiddenStatesWithTheirGradients) {
  torch::manual_seed(9);
  const torch::Tensor ids = torch::randint(0, 300, {2, 6}, torch::kLong);
  torch::Tensor mask = torch::ones({2, 6}, torch::kLong);
  mask[1].narrow(0, 4, 2).fill_(0);
  const torch::Tensor at = torch::tensor({{5, 0, 2}, {3, 1, 1}}, torch::kLong);
  std::vector<torch::Tensor> weights;
  for (auto& [name, w] : model_->NamedWeights()) weights.push_back(w.requires_grad_(true));
  auto grads = [&](const torch::Tensor& loss) {
    for (torch::Tensor& w : weights) w.mutable_grad() = torch::Tensor();
    loss.backward();
    std::vector<torch::Tensor> g;
    for (torch::Tensor& w : weights) g.push_back(w.grad().clone());
    return g;
  };
  auto full = model_->HiddenStates(ids, mask);
  auto part = model_->HiddenStatesAt(ids, mask, at);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_TRUE(part.ok()) << part.status();
  const torch::Tensor picked = full->gather(1, at.unsqueeze(-1).expand({2, 3, full->size(-1)}));
  ASSERT_EQ(part->sizes(), picked.sizes());
  EXPECT_LT(MaxAbsDiff(*part, picked), 1e-6);
  const torch::Tensor r = torch::randn(picked.sizes());
  const std::vector<torch::Tensor> want = grads((picked * r).sum());
  const std::vector<torch::Tensor> got = grads((*part * r).sum());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(torch::allclose(got[i], want[i], 1e-4, 1e-5)) << i << ": " << MaxAbsDiff(got[i], want[i]);
  }
  for (torch::Tensor& w : weights) w.requires_grad_(false);
  torch::NoGradGuard no_grad;
  auto other_batch = model_->HiddenStatesAt(ids, mask, torch::zeros({1, 2}, torch::kLong));
  EXPECT_EQ(other_batch.status().code(), absl::StatusCode::kInvalidArgument);
  auto outside = model_->HiddenStatesAt(ids, mask, torch::tensor({{0, 6}, {1, 1}}, torch::kLong));
  EXPECT_THAT(std::string(outside.status().message()), HasSubstr("a position outside [0, 6)"));
}

TEST_F(LlamaModelTest, HalfPrecisionLoadsCloseToFloat) {
  torch::Tensor ids = Expected(dir_, "ids");
  torch::Tensor want = Expected(dir_, "logits");
  for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
    auto loaded = LlamaModel::Load(dir_, {dtype, torch::kCPU});
    if (dtype == torch::kHalf && !loaded.ok()) {
      // LibTorch 1.13 has no float16 matmul on CPU: a clear load error is the contract.
      EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("model dtype Half on cpu is not supported"));
      continue;
    }
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    std::unique_ptr<LlamaModel> model = std::move(*loaded);
    EXPECT_EQ(model->NamedWeights().at("model.embed_tokens.weight").scalar_type(), dtype);
    torch::NoGradGuard no_grad;
    auto got = model->Logits(ids, torch::Tensor());
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->scalar_type(), torch::kFloat);
    // Low precision: close in relative terms, and the same argmax nearly everywhere.
    EXPECT_LT(MaxAbsDiff(*got, want), 0.05 * want.abs().max().item<double>()) << c10::toString(dtype);
    const double agree = (got->argmax(-1) == want.argmax(-1)).to(torch::kFloat).mean().item<double>();
    EXPECT_GE(agree, 0.8) << c10::toString(dtype);
    auto cache = model->NewKvCache(1, 16);
    ASSERT_TRUE(cache.ok());
    EXPECT_TRUE(model->Forward({ids.narrow(0, 0, 1), {0}, {}, {}}, **cache).ok());
  }
}

TEST_F(LlamaModelTest, ForwardRejectsBadBatchesWithoutTouchingTheCache) {
  auto cache = model_->NewKvCache(2, 8);
  ASSERT_TRUE(cache.ok());
  torch::Tensor ids = torch::ones({2, 3}, torch::kLong);
  auto error = [&](const CachedBatch& batch) {
    auto r = model_->Forward(batch, **cache);
    EXPECT_FALSE(r.ok());
    return r.ok() ? std::string() : std::string(r.status().message());
  };
  EXPECT_THAT(error({ids, {0, 2}, {}, {}}), HasSubstr("slot 2 outside [0, 2)"));
  EXPECT_THAT(error({ids, {1, 1}, {}, {}}), HasSubstr("slot 1 appears in two rows"));
  EXPECT_THAT(error({ids, {0}, {}, {}}), HasSubstr("1 slots for 2 rows"));
  EXPECT_THAT(error({ids, {0, 1}, {3, 4}, {}}), HasSubstr("num_tokens 4 outside [1, 3]"));
  EXPECT_THAT(error({ids, {0, 1}, {}, {0, -1}}), HasSubstr("adapter index 0 is not registered"));
  EXPECT_THAT(error({torch::full({2, 3}, 300, torch::kLong), {0, 1}, {}, {}}),
              HasSubstr("token id 300 is outside the vocabulary [0, 300)"));
  EXPECT_THAT(error({torch::ones({3}, torch::kLong), {0}, {}, {}}), HasSubstr("[B, T]"));
  EXPECT_EQ((*cache)->length(0), 0);
  EXPECT_EQ((*cache)->length(1), 0);
  ASSERT_TRUE(model_->Forward({torch::ones({1, 6}, torch::kLong), {0}, {}, {}}, **cache).ok());
  auto overflow = model_->Forward({ids.narrow(0, 0, 1), {0}, {}, {}}, **cache);
  EXPECT_EQ(overflow.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(overflow.status().message()), HasSubstr("exceed the cache's max_len 8"));
  EXPECT_EQ((*cache)->length(0), 6);
  // A cache for another model is refused.
  auto other = LoadOrDie(ref_ + "/qwen3_qknorm");
  auto other_cache = other->NewKvCache(1, 8);
  ASSERT_TRUE(other_cache.ok());
  EXPECT_FALSE(model_->Forward({ids.narrow(0, 0, 1), {0}, {}, {}}, **other_cache).ok());
}

TEST_F(LlamaModelTest, LogitsRejectsBadInput) {
  torch::NoGradGuard no_grad;
  auto bad_id = model_->Logits(torch::tensor({{1, -3}}, torch::kLong), torch::Tensor());
  EXPECT_THAT(std::string(bad_id.status().message()), HasSubstr("token id -3"));
  auto bad_mask = model_->Logits(torch::ones({1, 3}, torch::kLong), torch::ones({1, 2}));
  EXPECT_THAT(std::string(bad_mask.status().message()), HasSubstr("attention_mask shape"));
  // Padding positions may hold any id.
  auto padded = model_->Logits(torch::tensor({{5, 999}}, torch::kLong), torch::tensor({{1, 0}}, torch::kLong));
  EXPECT_TRUE(padded.ok()) << padded.status();
}

// ForwardOptions::row_kernels in a full forward: the same logits within float noise without
// autograd, refused under autograd (the kernels keep no gradients).
TEST_F(LlamaModelTest, LogitsOnRowKernelsAgreeAndRefuseAutograd) {
  ForwardOptions rows;
  rows.row_kernels = true;
  const torch::Tensor ids = torch::tensor({{3, 17, 5, 9, 2}, {8, 1, 4, 0, 0}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kLong);
  {
    torch::NoGradGuard no_grad;
    auto plain = model_->Logits(ids, mask);
    auto row = model_->Logits(ids, mask, {}, rows);
    ASSERT_TRUE(plain.ok() && row.ok()) << row.status();
    EXPECT_TRUE(torch::allclose(*row, *plain, 1e-4, 1e-4));
  }
  auto refused = model_->Logits(ids, mask, {}, rows);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("row_kernels"));
}

class LoadErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = model_test::ReferenceDir();
    ASSERT_FALSE(ref_.empty());
    tmp_ = std::filesystem::temp_directory_path() / ("dsm_llama_load." + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp_);
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }
  std::string ref_;
  std::filesystem::path tmp_;
};

TEST_F(LoadErrors, MissingFolderAndWeights) {
  auto missing = LlamaModel::Load((tmp_ / "nothing").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  std::filesystem::copy_file(ref_ + "/llama_gqa_tied/config.json", tmp_ / "config.json");
  auto no_weights = LlamaModel::Load(tmp_.string());
  EXPECT_THAT(std::string(no_weights.status().message()), HasSubstr("model.safetensors"));
  auto bad_dtype = LlamaModel::Load(ref_ + "/llama_gqa_tied", {torch::kLong, torch::kCPU});
  EXPECT_THAT(std::string(bad_dtype.status().message()), HasSubstr("not supported"));
}

TEST_F(LoadErrors, ShapeMismatchNamesTheTensor) {
  // The weights of llama_gqa_tied (2 kv heads) with a config claiming 4.
  std::ifstream in(ref_ + "/llama_gqa_tied/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string key = "\"num_key_value_heads\": 2";
  ASSERT_NE(config.find(key), std::string::npos);
  config.replace(config.find(key), key.size(), "\"num_key_value_heads\": 4");
  std::ofstream(tmp_ / "config.json") << config;
  std::filesystem::copy_file(ref_ + "/llama_gqa_tied/model.safetensors", tmp_ / "model.safetensors");
  auto model = LlamaModel::Load(tmp_.string());
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("loading model.layers.0.self_attn.k_proj.weight: shape [32, 64], config.json implies [64, 64]"));
}

TEST_F(LoadErrors, MissingTensorIsNamed) {
  auto file = SafetensorsFile::Open(ref_ + "/llama_gqa_tied/model.safetensors");
  ASSERT_TRUE(file.ok());
  std::map<std::string, torch::Tensor> tensors;
  for (const std::string& name : (*file)->Names()) {
    if (name != "model.layers.1.mlp.up_proj.weight") tensors[name] = *(*file)->Load(name);
  }
  ASSERT_TRUE(WriteSafetensors((tmp_ / "model.safetensors").string(), tensors).ok());
  std::filesystem::copy_file(ref_ + "/llama_gqa_tied/config.json", tmp_ / "config.json");
  auto model = LlamaModel::Load(tmp_.string());
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("missing tensor model.layers.1.mlp.up_proj.weight"));
}

TEST(TorchThreads, SetsIntraOpThreads) {
  ASSERT_TRUE(SetTorchThreads(2).ok());
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_FALSE(SetTorchThreads(0).ok());
  ASSERT_TRUE(SetTorchThreads(1).ok());
}

TEST(ModelDtype, ParsesNames) {
  EXPECT_EQ(*ParseModelDtype("bf16"), torch::kBFloat16);
  EXPECT_EQ(*ParseModelDtype("float32"), torch::kFloat);
  EXPECT_EQ(*ParseModelDtype("fp16"), torch::kHalf);
  EXPECT_FALSE(ParseModelDtype("int8").ok());
}

}  // namespace
}  // namespace dsm
