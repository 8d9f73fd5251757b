// model/model_init.h: a fresh Llama folder made from the chain tokenizer loads in LlamaModel,
// has the asked-for architecture and parameter count, is byte-for-byte a function of its seed,
// starts from HF's initialisation and gives finite logits.
#include "model/model_init.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/llama_model.h"
#include "model/safetensors.h"
#include "tasks/chain_tokenizer.h"

namespace dsm {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ModelInitTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    ChainTokenizerOptions options;
    options.vocab_size = 400;
    options.corpus_problems = 50;
    auto tokenizer = ChainTokenizer::Build(options, {});
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_json_ = new std::string(tokenizer->TokenizerJson());
    tokenizer_config_json_ = new std::string(tokenizer->TokenizerConfigJson());
    vocab_size_ = tokenizer->vocab_size();
  }
  static void TearDownTestSuite() {
    delete tokenizer_json_;
    delete tokenizer_config_json_;
  }

  static absl::StatusOr<ModelConfig> Write(const std::string& name, const ModelInitOptions& options) {
    return WriteInitialModel(testing::TempDir() + "/" + name, options, *tokenizer_json_, *tokenizer_config_json_);
  }

  static std::string* tokenizer_json_;
  static std::string* tokenizer_config_json_;
  static int vocab_size_;
};
std::string* ModelInitTest::tokenizer_json_ = nullptr;
std::string* ModelInitTest::tokenizer_config_json_ = nullptr;
int ModelInitTest::vocab_size_ = 0;

TEST_F(ModelInitTest, LoadsWithTheAskedArchitecture) {
  ModelInitOptions options;
  options.hidden_size = 64;
  options.num_hidden_layers = 2;
  options.num_attention_heads = 4;
  options.num_key_value_heads = 2;
  options.intermediate_size = 172;
  options.max_position_embeddings = 256;
  auto written = Write("arch", options);
  ASSERT_TRUE(written.ok()) << written.status();
  auto model = LlamaModel::Load(testing::TempDir() + "/arch");
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config();
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.vocab_size, vocab_size_);
  EXPECT_EQ(vocab_size_, 400);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.max_position_embeddings, 256);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, ChainTokenizer::kBosId);
  EXPECT_THAT(c.eos_token_ids, testing::ElementsAre(ChainTokenizer::kEosId));

  // embed 400x64 + lm_head 400x64 + final norm 64 + 2 x (2 norms x 64 + q 64x64 + k,v 32x64 + o 64x64 + 3 x 172x64)
  const int64_t expected = 2 * 400 * 64 + 64 + 2 * (2 * 64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 172 * 64);
  EXPECT_EQ(CountModelParameters(c), expected);
  int64_t loaded = 0;
  for (const auto& [name, tensor] : (*model)->NamedWeights()) loaded += tensor.numel();
  EXPECT_EQ(loaded, expected);
  EXPECT_EQ((*model)->NamedWeights().count("lm_head.weight"), 1u);

  // Tied on request: no lm_head.weight, one embedding fewer.
  options.tie_word_embeddings = true;
  ASSERT_TRUE(Write("arch_tied", options).ok());
  auto tied = LlamaModel::Load(testing::TempDir() + "/arch_tied");
  ASSERT_TRUE(tied.ok()) << tied.status();
  EXPECT_TRUE((*tied)->config().tie_word_embeddings);
  EXPECT_EQ(CountModelParameters((*tied)->config()), expected - 400 * 64);
  EXPECT_EQ((*tied)->NamedWeights().count("lm_head.weight"), 0u);

  EXPECT_EQ(ReadAll(testing::TempDir() + "/arch/tokenizer.json"), *tokenizer_json_);
  EXPECT_EQ(ReadAll(testing::TempDir() + "/arch/tokenizer_config.json"), *tokenizer_config_json_);
}

TEST_F(ModelInitTest, InitialisesLikeHuggingFace) {
  ModelInitOptions options;
  options.seed = 3;
  ASSERT_TRUE(Write("hf", options).ok());
  auto model = LlamaModel::Load(testing::TempDir() + "/hf");
  ASSERT_TRUE(model.ok()) << model.status();
  for (const auto& [name, tensor] : (*model)->NamedWeights()) {
    if (name.find("norm") != std::string::npos) {
      EXPECT_TRUE(torch::equal(tensor, torch::ones_like(tensor))) << name;
    } else {
      EXPECT_NEAR(tensor.mean().item<double>(), 0.0, 0.002) << name;
      EXPECT_NEAR(tensor.std().item<double>(), 0.02, 0.0015) << name;
    }
  }
  // Different tensors draw different numbers.
  auto weights = (*model)->NamedWeights();
  EXPECT_FALSE(torch::equal(weights.at("model.layers.0.self_attn.q_proj.weight"),
                            weights.at("model.layers.1.self_attn.q_proj.weight")));
}

// Mimetic attention: every query head scores a key by a (x_g . y_g + noise), x_g the coordinates
// its key group reads, and W_o W_v is about -(a / 2) I on those coordinates; the rest of the model
// keeps HF's normal init, and 0 leaves attention normal too.
TEST_F(ModelInitTest, MimeticAttentionStartsTokensAttendingToTheirLikes) {
  for (const int64_t kv_heads : {int64_t{4}, int64_t{2}}) {
    ModelInitOptions options;
    options.num_key_value_heads = kv_heads;
    options.mimetic_attention = 0.7;
    options.seed = 5;
    const std::string dir = absl::StrCat("mimetic", kv_heads);
    ASSERT_TRUE(Write(dir, options).ok());
    auto model = LlamaModel::Load(testing::TempDir() + "/" + dir);
    ASSERT_TRUE(model.ok()) << model.status();
    const auto weights = (*model)->NamedWeights();
    const int64_t d = 128, head_dim = 32, per_group = 4 / kv_heads;
    for (int layer = 0; layer < 4; ++layer) {
      const std::string p = absl::StrCat("model.layers.", layer, ".self_attn.");
      const torch::Tensor q = weights.at(p + "q_proj.weight"), k = weights.at(p + "k_proj.weight");
      const torch::Tensor v = weights.at(p + "v_proj.weight"), o = weights.at(p + "o_proj.weight");
      for (int64_t h = 0; h < 4; ++h) {
        const int64_t g = h / per_group;
        const torch::Tensor qk = torch::matmul(q.narrow(0, h * head_dim, head_dim).t(),
                                               k.narrow(0, g * head_dim, head_dim));  // [d, d]
        const torch::Tensor read = qk.diagonal().narrow(0, g * head_dim, head_dim);
        EXPECT_NEAR(read.mean().item<double>(), 0.7, 0.1) << p << " head " << h;
        // Off the diagonal: noise of std sqrt(0.7) * sqrt(0.7 / d) around 0.
        const torch::Tensor off = qk - torch::diag(qk.diagonal());
        EXPECT_NEAR(off.mean().item<double>(), 0.0, 0.01) << p;
        EXPECT_LT(off.abs().max().item<double>(), 0.7) << p;
      }
      std::vector<torch::Tensor> v_of_head;  // each query head reads its group's values
      for (int64_t h = 0; h < 4; ++h) v_of_head.push_back(v.narrow(0, (h / per_group) * head_dim, head_dim));
      const torch::Tensor ov = torch::matmul(o, torch::cat(v_of_head)).diagonal();  // [d]
      EXPECT_NEAR(ov.narrow(0, 0, kv_heads * head_dim).mean().item<double>(), -0.35, 0.05) << p;
      if (kv_heads * head_dim < d) {  // coordinates no group reads pass through untouched
        EXPECT_EQ(ov.narrow(0, kv_heads * head_dim, d - kv_heads * head_dim).abs().max().item<double>(), 0.0);
      }
    }
    EXPECT_NEAR(weights.at("model.layers.0.mlp.up_proj.weight").std().item<double>(), 0.02, 0.0015);
    EXPECT_NEAR(weights.at("model.embed_tokens.weight").std().item<double>(), 0.02, 0.0015);
    // The fresh model still gives finite, near-uniform first predictions.
    auto logits = (*model)->Logits(torch::tensor({1, 5, 9, 5}, torch::kLong).view({1, 4}), torch::Tensor());
    ASSERT_TRUE(logits.ok()) << logits.status();
    EXPECT_TRUE(torch::isfinite(*logits).all().item<bool>());
  }
  ModelInitOptions bad;
  bad.mimetic_attention = 5;
  EXPECT_EQ(Write("bad", bad).status().message(), "mimetic_attention: 5 is not in [0, 4]");
  bad.mimetic_attention = 0.7;
  bad.mimetic_layers = 5;
  EXPECT_EQ(Write("bad", bad).status().message(), "mimetic_layers: 5 is not in [0, num_hidden_layers 4]");
}

// mimetic_layers N: the last N layers start mimetic, the ones below stay exactly as without it.
TEST_F(ModelInitTest, MimeticLayersAreTheLastOnes) {
  ModelInitOptions plain;
  plain.seed = 9;
  ModelInitOptions last = plain;
  last.mimetic_attention = 0.7;
  last.mimetic_layers = 1;
  ASSERT_TRUE(Write("plain", plain).ok());
  ASSERT_TRUE(Write("last", last).ok());
  auto a = LlamaModel::Load(testing::TempDir() + "/plain");
  auto b = LlamaModel::Load(testing::TempDir() + "/last");
  ASSERT_TRUE(a.ok() && b.ok());
  const auto wa = (*a)->NamedWeights(), wb = (*b)->NamedWeights();
  for (const auto& [name, tensor] : wa) {
    const bool mimetic = name.rfind("model.layers.3.self_attn.", 0) == 0;
    EXPECT_EQ(torch::equal(tensor, wb.at(name)), !mimetic) << name;
  }
  // The last layer's keys read one coordinate each.
  const torch::Tensor k = wb.at("model.layers.3.self_attn.k_proj.weight");
  EXPECT_EQ((k != 0).sum(1).max().item<int64_t>(), 1);
}

TEST_F(ModelInitTest, BytesAreAFunctionOfTheSeed) {
  ModelInitOptions options;
  options.hidden_size = 32;
  options.num_hidden_layers = 1;
  options.intermediate_size = 64;
  options.seed = 7;
  ASSERT_TRUE(Write("seed7a", options).ok());
  ASSERT_TRUE(Write("seed7b", options).ok());
  options.seed = 8;
  ASSERT_TRUE(Write("seed8", options).ok());
  const std::string a = ReadAll(testing::TempDir() + "/seed7a/model.safetensors");
  EXPECT_GT(a.size(), 4u * 400 * 32);
  EXPECT_EQ(a, ReadAll(testing::TempDir() + "/seed7b/model.safetensors"));
  EXPECT_NE(a, ReadAll(testing::TempDir() + "/seed8/model.safetensors"));
  EXPECT_EQ(ReadAll(testing::TempDir() + "/seed7a/config.json"),
            ReadAll(testing::TempDir() + "/seed8/config.json"));
  // The first embedding weight is pinned, so a change of the generator shows.
  auto file = SafetensorsFile::Open(testing::TempDir() + "/seed7a/model.safetensors");
  ASSERT_TRUE(file.ok());
  auto embed = (*file)->Load("model.embed_tokens.weight");
  ASSERT_TRUE(embed.ok());
  EXPECT_EQ(embed->scalar_type(), torch::kFloat);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
}

TEST_F(ModelInitTest, GivesFiniteLogits) {
  ModelInitOptions options;
  ASSERT_TRUE(Write("logits", options).ok());
  auto model = LlamaModel::Load(testing::TempDir() + "/logits");
  ASSERT_TRUE(model.ok()) << model.status();
  torch::Tensor ids = torch::tensor({1, 5, 9, 300, 2, 100}, torch::kLong).view({1, 6});
  auto logits = (*model)->Logits(ids, torch::Tensor());
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(logits->sizes(), (std::vector<int64_t>{1, 6, vocab_size_}));
  EXPECT_TRUE(torch::isfinite(*logits).all().item<bool>());
  // Small init: the first prediction is close to uniform.
  const double max_prob = torch::softmax(logits->select(1, 0), -1).max().item<double>();
  EXPECT_LT(max_prob, 5.0 / vocab_size_);
}

TEST_F(ModelInitTest, RejectsBadOptionsWithOneLine) {
  ModelInitOptions options;
  options.num_key_value_heads = 3;
  EXPECT_EQ(Write("bad", options).status().message(), "num_key_value_heads: 3 does not divide num_attention_heads 4");
  options = {};
  options.hidden_size = 130;
  EXPECT_EQ(Write("bad", options).status().message(), "num_attention_heads: 4 does not divide hidden_size 130");
  options = {};
  options.num_hidden_layers = 0;
  EXPECT_EQ(Write("bad", options).status().message(), "num_hidden_layers: 0 is under 1");
  options = {};
  options.hidden_size = 12;  // 4 heads of 3
  EXPECT_EQ(Write("bad", options).status().message(),
            "num_attention_heads: head size hidden_size / 4 = 3 is odd (rotary embeddings need it even)");
  EXPECT_EQ(WriteInitialModel(testing::TempDir() + "/bad", {}, "{", "").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto bad_config = WriteInitialModel(testing::TempDir() + "/bad", {}, *tokenizer_json_, R"({"eos_token": "<eot>"})");
  EXPECT_EQ(bad_config.status().message(), "tokenizer_config.json: eos_token: \"<eot>\" is not a token of tokenizer.json");
}

}  // namespace
}  // namespace dsm
