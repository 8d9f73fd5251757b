#include "model/lora.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/llama_model.h"
#include "model/safetensors.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::dsm::model_test::Expected;
using ::dsm::model_test::MaxAbsDiff;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kTol = 1e-4;

class LoraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = model_test::ReferenceDir();
    ASSERT_FALSE(ref_.empty());
    dir_ = ref_ + "/llama_gqa_tied";
    auto model = LlamaModel::Load(dir_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    tmp_ = std::filesystem::temp_directory_path() / ("dsm_lora_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp_);
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  int AddLoaded(const std::string& name) {
    auto adapter = LoraAdapter::Load(dir_ + "/" + name, model_->config());
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    if (!adapter.ok()) return -2;
    auto index = model_->AddAdapter(name, std::move(*adapter));
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? *index : -2;
  }

  torch::Tensor Logits(const torch::Tensor& ids, const std::vector<int>& adapters) {
    torch::NoGradGuard no_grad;
    auto logits = model_->Logits(ids, torch::Tensor(), adapters);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits.ok() ? *logits : torch::Tensor();
  }

  std::string ref_;
  std::string dir_;
  std::unique_ptr<LlamaModel> model_;
  std::filesystem::path tmp_;
};

TEST_F(LoraTest, PeftAdapterMatchesPython) {
  const int lora = AddLoaded("lora");
  const int lora2 = AddLoaded("lora2");
  torch::Tensor ids = Expected(dir_, "ids");
  EXPECT_LT(MaxAbsDiff(Logits(ids, {lora, lora}), Expected(dir_, "logits_lora")), kTol);
  EXPECT_LT(MaxAbsDiff(Logits(ids, {lora2, lora2}), Expected(dir_, "logits_lora2")), kTol);
  EXPECT_LT(MaxAbsDiff(Logits(ids, {-1, -1}), Expected(dir_, "logits")), kTol);  // adapter off = base
  EXPECT_LT(MaxAbsDiff(Logits(ids, {}), Expected(dir_, "logits")), kTol);
  EXPECT_EQ(model_->AdapterIndex("lora2"), lora2);
  EXPECT_EQ(model_->AdapterIndex("nope"), -1);
  EXPECT_EQ(model_->adapter(lora)->config().r, 4);
  EXPECT_DOUBLE_EQ(model_->adapter(lora2)->scaling(), 8.0);  // alpha 16 / r 2
}

TEST_F(LoraTest, Qwen2AdapterMatchesPython) {
  const std::string dir = ref_ + "/qwen2_bias";
  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok());
  auto adapter = LoraAdapter::Load(dir + "/lora", (*model)->config());
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  auto index = (*model)->AddAdapter("lora", std::move(*adapter));
  ASSERT_TRUE(index.ok());
  torch::NoGradGuard no_grad;
  auto logits = (*model)->Logits(Expected(dir, "ids"), torch::Tensor(), {*index, *index});
  ASSERT_TRUE(logits.ok());
  EXPECT_LT(MaxAbsDiff(*logits, Expected(dir, "logits_lora")), kTol);
}

// One batch, an adapter per row: equal to running each adapter alone, in the
// full forward and in the cached forward.
TEST_F(LoraTest, PerRowAdapterSelection) {
  const int lora = AddLoaded("lora");
  const int lora2 = AddLoaded("lora2");
  torch::Tensor seq = Expected(dir_, "ids")[0];
  torch::Tensor ids = torch::stack({seq, seq, seq, seq});
  torch::Tensor mixed = Logits(ids, {lora2, -1, lora, lora2});
  EXPECT_LT(MaxAbsDiff(mixed[0], Expected(dir_, "logits_lora2")[0]), kTol);
  EXPECT_LT(MaxAbsDiff(mixed[1], Expected(dir_, "logits")[0]), kTol);
  EXPECT_LT(MaxAbsDiff(mixed[2], Expected(dir_, "logits_lora")[0]), kTol);
  EXPECT_LT(MaxAbsDiff(mixed[3], Expected(dir_, "logits_lora2")[0]), kTol);

  auto cache = model_->NewKvCache(3, 16);
  ASSERT_TRUE(cache.ok());
  const int64_t len = seq.size(0);
  auto prefill = model_->Forward({ids.narrow(0, 0, 3).narrow(1, 0, 5), {0, 1, 2}, {}, {lora, -1, lora2}}, **cache);
  ASSERT_TRUE(prefill.ok()) << prefill.status();
  for (int64_t t = 5; t < len; ++t) {
    auto step = model_->Forward({ids.narrow(0, 0, 3).narrow(1, t, 1), {0, 1, 2}, {}, {lora, -1, lora2}}, **cache,
                                LogitsSelect::kLast);
    ASSERT_TRUE(step.ok());
    EXPECT_LT(MaxAbsDiff((*step)[0], Expected(dir_, "logits_lora")[0][t]), kTol);
    EXPECT_LT(MaxAbsDiff((*step)[1], Expected(dir_, "logits")[0][t]), kTol);
    EXPECT_LT(MaxAbsDiff((*step)[2], Expected(dir_, "logits_lora2")[0][t]), kTol);
  }
}

TEST_F(LoraTest, MergeMatchesUnmergedAndUnmergeRestoresTheBase) {
  const int lora = AddLoaded("lora");
  const int lora2 = AddLoaded("lora2");
  std::map<std::string, torch::Tensor> before;
  for (const auto& [name, t] : model_->NamedWeights()) before[name] = t.clone();
  torch::Tensor seq = Expected(dir_, "ids")[0];
  torch::Tensor ids = torch::stack({seq, seq, seq});
  ASSERT_TRUE(model_->Merge(lora).ok());
  EXPECT_EQ(model_->merged_adapter(), lora);
  EXPECT_GT(MaxAbsDiff(model_->NamedWeights().at("model.layers.0.self_attn.q_proj.weight"),
                       before.at("model.layers.0.self_attn.q_proj.weight")),
            1e-3);
  torch::Tensor merged = Logits(ids, {lora, -1, lora2});
  EXPECT_LT(MaxAbsDiff(merged[0], Expected(dir_, "logits_lora")[0]), kTol);
  EXPECT_LT(MaxAbsDiff(merged[1], Expected(dir_, "logits")[0]), kTol);  // base rows still exact
  EXPECT_LT(MaxAbsDiff(merged[2], Expected(dir_, "logits_lora2")[0]), kTol);
  EXPECT_FALSE(model_->Merge(lora2).ok());        // one at a time
  EXPECT_FALSE(model_->RemoveAdapter(lora).ok());  // merged adapters stay
  ASSERT_TRUE(model_->Unmerge().ok());
  EXPECT_EQ(model_->merged_adapter(), -1);
  for (const auto& [name, t] : model_->NamedWeights()) EXPECT_LT(MaxAbsDiff(t, before.at(name)), 1e-6) << name;
  EXPECT_LT(MaxAbsDiff(Logits(ids, {}), Expected(dir_, "logits")[0].expand({3, -1, -1})), kTol);
  EXPECT_FALSE(model_->Unmerge().ok());
}

TEST_F(LoraTest, NewAdapterIsInitialisedLikePeftAndIsDeterministic) {
  LoraConfig config;
  config.r = 4;
  config.lora_alpha = 8;
  auto a = LoraAdapter::Create(model_->config(), config, /*seed=*/42);
  auto b = LoraAdapter::Create(model_->config(), config, /*seed=*/42);
  auto c = LoraAdapter::Create(model_->config(), config, /*seed=*/43);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto ta = (*a)->NamedTensors();
  auto tb = (*b)->NamedTensors();
  auto tc = (*c)->NamedTensors();
  EXPECT_EQ(ta.size(), 2u * 7u * 2u);
  for (const auto& [name, t] : ta) {
    EXPECT_TRUE(torch::equal(t, tb.at(name))) << name;
    EXPECT_FALSE(t.requires_grad());
    if (name.find("lora_B") != std::string::npos) {
      EXPECT_EQ(t.abs().max().item<float>(), 0.0f) << name;
    } else {
      EXPECT_FALSE(torch::equal(t, tc.at(name))) << name;
      const double bound = 1.0 / std::sqrt(static_cast<double>(t.size(1)));
      EXPECT_LE(t.abs().max().item<double>(), bound) << name;
      EXPECT_GT(t.abs().max().item<double>(), 0.5 * bound) << name;
    }
  }
  // B = 0: the fresh adapter changes nothing.
  auto index = model_->AddAdapter("fresh", std::move(*a));
  ASSERT_TRUE(index.ok());
  torch::Tensor ids = Expected(dir_, "ids");
  EXPECT_LT(MaxAbsDiff(Logits(ids, {*index, *index}), Expected(dir_, "logits")), kTol);
}

TEST_F(LoraTest, SaveLoadRoundTripKeepsPeftLayout) {
  LoraConfig config;
  config.r = 3;
  config.lora_alpha = 6;
  config.lora_dropout = 0.1;
  config.target_modules = {"q_proj", "v_proj", "down_proj"};
  config.base_model_name_or_path = "tiny-llama";
  auto adapter = LoraAdapter::Create(model_->config(), config, 7);
  ASSERT_TRUE(adapter.ok());
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& t : (*adapter)->Parameters()) t.normal_();  // non-zero B too
  }
  const std::string out = (tmp_ / "nested" / "adapter").string();
  ASSERT_TRUE((*adapter)->Save(out).ok());
  auto file = SafetensorsFile::Open(out + "/adapter_model.safetensors");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Names().size(), 2u * 3u * 2u);
  EXPECT_TRUE((*file)->Contains("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"));
  EXPECT_TRUE((*file)->Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"));
  EXPECT_THAT((*file)->Find("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight")->shape,
              ElementsAre(3, 64));
  EXPECT_THAT((*file)->Find("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")->shape,
              ElementsAre(32, 3));
  std::ifstream in(out + "/adapter_config.json");
  nlohmann::json json = nlohmann::json::parse(in);
  EXPECT_EQ(json["peft_type"], "LORA");
  EXPECT_EQ(json["task_type"], "CAUSAL_LM");
  EXPECT_EQ(json["r"], 3);
  EXPECT_EQ(json["lora_alpha"], 6);
  EXPECT_DOUBLE_EQ(json["lora_dropout"].get<double>(), 0.1);
  EXPECT_EQ(json["bias"], "none");
  EXPECT_EQ(json["use_rslora"], false);
  EXPECT_EQ(json["base_model_name_or_path"], "tiny-llama");
  EXPECT_THAT(json["target_modules"].get<std::vector<std::string>>(), ElementsAre("q_proj", "v_proj", "down_proj"));

  auto loaded = LoraAdapter::Load(out, model_->config());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config().target_modules, config.target_modules);
  EXPECT_DOUBLE_EQ((*loaded)->scaling(), 2.0);
  auto want = (*adapter)->NamedTensors();
  auto got = (*loaded)->NamedTensors();
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) EXPECT_TRUE(torch::equal(got.at(name), t)) << name;
  // Saving again gives byte-identical files.
  const std::string again = (tmp_ / "again").string();
  ASSERT_TRUE((*loaded)->Save(again).ok());
  auto bytes = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(bytes(out + "/adapter_model.safetensors"), bytes(again + "/adapter_model.safetensors"));
  EXPECT_EQ(bytes(out + "/adapter_config.json"), bytes(again + "/adapter_config.json"));
}

TEST_F(LoraTest, GradientsReachOnlyLoraParameters) {
  auto adapter = LoraAdapter::Load(dir_ + "/lora", model_->config());
  ASSERT_TRUE(adapter.ok());
  std::shared_ptr<LoraAdapter> shared = std::move(*adapter);
  shared->SetRequiresGrad(true);
  auto index = model_->AddAdapter("train", shared);
  ASSERT_TRUE(index.ok());
  torch::Tensor ids = Expected(dir_, "ids");
  auto logits = model_->Logits(ids, torch::Tensor(), {*index, -1}, ForwardOptions{/*training=*/true});
  ASSERT_TRUE(logits.ok()) << logits.status();
  ASSERT_TRUE(logits->requires_grad());
  torch::Tensor loss = torch::log_softmax(*logits, -1).select(-1, 5).mean();
  loss.backward();
  for (const auto& [name, t] : model_->NamedWeights()) {
    EXPECT_FALSE(t.requires_grad()) << name;
    EXPECT_FALSE(t.grad().defined()) << name;
  }
  std::vector<torch::Tensor> params = model_->Parameters(*index);
  EXPECT_EQ(params.size(), 2u * 7u * 2u);
  for (const torch::Tensor& p : params) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
  }
  // A merged trainable adapter would silently get no gradients: refused.
  ASSERT_TRUE(model_->Merge(*index).ok());
  auto refused = model_->Logits(ids, torch::Tensor(), {*index, *index});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(model_->Unmerge().ok());
}

TEST_F(LoraTest, DropoutOnlyWhenTraining) {
  LoraConfig config;
  config.lora_dropout = 0.5;
  auto adapter = LoraAdapter::Create(model_->config(), config, 1);
  ASSERT_TRUE(adapter.ok());
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor& t : (*adapter)->Parameters()) t.normal_();
  }
  auto index = model_->AddAdapter("dropout", std::move(*adapter));
  ASSERT_TRUE(index.ok());
  torch::Tensor ids = Expected(dir_, "ids");
  torch::NoGradGuard no_grad;
  auto eval1 = model_->Logits(ids, torch::Tensor(), {*index, *index});
  auto eval2 = model_->Logits(ids, torch::Tensor(), {*index, *index});
  auto train = model_->Logits(ids, torch::Tensor(), {*index, *index}, ForwardOptions{true});
  ASSERT_TRUE(eval1.ok() && eval2.ok() && train.ok());
  EXPECT_TRUE(torch::equal(*eval1, *eval2));
  EXPECT_GT(MaxAbsDiff(*eval1, *train), 1e-3);
}

TEST_F(LoraTest, AdapterRegistry) {
  const int a = AddLoaded("lora");
  auto duplicate = LoraAdapter::Load(dir_ + "/lora", model_->config());
  ASSERT_TRUE(duplicate.ok());
  EXPECT_EQ(model_->AddAdapter("lora", std::move(*duplicate)).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(model_->AddAdapter("null", nullptr).ok());
  ASSERT_TRUE(model_->RemoveAdapter(a).ok());
  EXPECT_EQ(model_->adapter(a), nullptr);
  EXPECT_TRUE(model_->Parameters(a).empty());
  EXPECT_FALSE(model_->RemoveAdapter(a).ok());
  torch::NoGradGuard no_grad;
  auto stale = model_->Logits(Expected(dir_, "ids"), torch::Tensor(), {a, a});
  EXPECT_THAT(std::string(stale.status().message()), HasSubstr("not registered"));
  const int b = AddLoaded("lora");  // the name is free again; the index is new
  EXPECT_NE(b, a);
}

TEST_F(LoraTest, AdapterForAnotherShapeIsRejected) {
  // llama3_rope_untied has 4 kv heads: k_proj/v_proj are [64, 64], not [32, 64].
  auto other = LoadModelConfig(ref_ + "/llama3_rope_untied");
  ASSERT_TRUE(other.ok());
  auto adapter = LoraAdapter::Load(dir_ + "/lora", *other);
  ASSERT_FALSE(adapter.ok());
  EXPECT_THAT(std::string(adapter.status().message()),
              HasSubstr("self_attn.k_proj.lora_B.weight\" has shape [32, 4], expected [64, 4]"));
}

TEST(LoraConfigJson, RejectsWhatItCannotHonour) {
  auto error = [](const std::string& json) {
    auto c = ParseLoraConfig(json);
    EXPECT_FALSE(c.ok()) << json;
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  const std::string base = R"("r": 8, "lora_alpha": 16, "target_modules": ["q_proj"])";
  EXPECT_THAT(error("{" + base + R"(, "use_dora": true})"), HasSubstr("use_dora"));
  EXPECT_THAT(error("{" + base + R"(, "bias": "all"})"), HasSubstr("bias: \"all\" is not supported"));
  EXPECT_THAT(error("{" + base + R"(, "rank_pattern": {"q_proj": 4}})"), HasSubstr("rank_pattern"));
  EXPECT_THAT(error("{" + base + R"(, "modules_to_save": ["lm_head"]})"), HasSubstr("modules_to_save"));
  EXPECT_THAT(error(R"({"r": 0, "target_modules": ["q_proj"]})"), HasSubstr("r: 0 must be positive"));
  EXPECT_THAT(error(R"({"r": 4, "target_modules": ["embed_tokens"]})"), HasSubstr("unknown LoRA target module"));
  EXPECT_THAT(error(R"({"r": 4, "target_modules": ".*proj"})"), HasSubstr("regular expressions are not supported"));
  EXPECT_THAT(error(R"({"r": 4})"), HasSubstr("target_modules: is required"));
  auto all = ParseLoraConfig(R"({"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "use_rslora": true,
                                 "peft_type": "LORA", "rank_pattern": {}, "modules_to_save": null})");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->target_modules.size(), 7u);
  EXPECT_DOUBLE_EQ(all->scaling(), 4.0);  // rsLoRA: alpha / sqrt(r)
  auto round = ParseLoraConfig(LoraConfigToJson(*all));
  ASSERT_TRUE(round.ok()) << round.status();
  EXPECT_EQ(round->target_modules, all->target_modules);
  EXPECT_TRUE(round->use_rslora);
}

}  // namespace
}  // namespace dsm
