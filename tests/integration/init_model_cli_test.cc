// `dsm init-model` run as a process: the folder it writes loads in LlamaModel with the asked
// sizes, its tokenizer is the chain tokenizer with the templates in its corpus, the same seed
// gives the same bytes, and bad flags are exit 2 with one line.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/llama_model.h"
#include "model/model_init.h"
#include "model/tokenizer.h"
#include "tests/integration/dsm_process.h"

namespace dsm {
namespace {

using dsm_test::RunDsm;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Templates() { return std::string(std::getenv("DSM_SOURCE_DIR")) + "/configs/prompts"; }

TEST(InitModelCli, WritesALoadableModelWithTheAskedSizes) {
  const std::string out = testing::TempDir() + "/init_cli_a";
  const auto r = RunDsm("init-model --out " + out + " --hidden 64 --layers 2 --heads 4 --kv-heads 1 --intermediate 96"
                        " --max-len 256 --vocab 600 --seed 5 --templates " + Templates());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "wrote " + out + ": LlamaForCausalLM, " +
                std::to_string(2 * 600 * 64 + 64 + 2 * (2 * 64 + 64 * 64 + 2 * 16 * 64 + 64 * 64 + 3 * 96 * 64)) +
                " parameters (vocab 600, hidden 64, layers 2, heads 4/1, intermediate 96, context 256, "
                "4 templates in the tokenizer corpus)\n");
  auto model = LlamaModel::Load(out);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().vocab_size, 600);
  EXPECT_EQ((*model)->config().num_key_value_heads, 1);
  EXPECT_EQ((*model)->config().max_position_embeddings, 256);
  auto tokenizer = Tokenizer::FromFile(out + "/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 600);
  // The templates were in the corpus: their words take fewer tokens than without them.
  const std::string empty_templates = testing::TempDir() + "/no_templates";
  std::filesystem::create_directories(empty_templates);
  const std::string bare = testing::TempDir() + "/init_cli_bare";
  const auto r_bare = RunDsm("init-model --out " + bare + " --hidden 64 --layers 2 --heads 4 --kv-heads 1"
                             " --intermediate 96 --max-len 256 --vocab 600 --seed 5 --templates " + empty_templates);
  ASSERT_EQ(r_bare.exit_code, 0) << r_bare.err;
  EXPECT_THAT(r_bare.out, testing::HasSubstr(", 0 templates in the tokenizer corpus)"));
  auto bare_tokenizer = Tokenizer::FromFile(bare + "/tokenizer.json");
  ASSERT_TRUE(bare_tokenizer.ok()) << bare_tokenizer.status();
  const std::string template_text = "Citing a result does not remove the need to prove it.";
  EXPECT_LT((*tokenizer)->Encode(template_text).size(), (*bare_tokenizer)->Encode(template_text).size());
  EXPECT_THAT(ReadAll(out + "/tokenizer_config.json"), testing::HasSubstr("\"model_max_length\": 256"));

  const std::string again = testing::TempDir() + "/init_cli_b";
  ASSERT_EQ(RunDsm("init-model --out " + again + " --hidden 64 --layers 2 --heads 4 --kv-heads 1 --intermediate 96"
                   " --max-len 256 --vocab 600 --seed 5 --templates " + Templates())
                .exit_code,
            0);
  EXPECT_EQ(ReadAll(out + "/model.safetensors"), ReadAll(again + "/model.safetensors"));
  EXPECT_EQ(ReadAll(out + "/tokenizer.json"), ReadAll(again + "/tokenizer.json"));
}

TEST(InitModelCli, MimeticAttentionInTheLastLayers) {
  const std::string out = testing::TempDir() + "/init_cli_mimetic";
  const auto r = RunDsm("init-model --out " + out + " --hidden 64 --layers 2 --heads 4 --kv-heads 1 --intermediate 96"
                        " --max-len 256 --vocab 600 --mimetic 0.7 --mimetic-layers 1 --templates " + Templates());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto model = LlamaModel::Load(out);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto weights = (*model)->NamedWeights();
  // Layer 1's keys each read one coordinate; layer 0's are dense and normal.
  EXPECT_EQ((weights.at("model.layers.1.self_attn.k_proj.weight") != 0).sum(1).max().item<int64_t>(), 1);
  EXPECT_EQ((weights.at("model.layers.0.self_attn.k_proj.weight") != 0).sum(1).min().item<int64_t>(), 64);
}

TEST(InitModelCli, InitStdSetsTheNormalInit) {
  const std::string out = testing::TempDir() + "/init_cli_std";
  const auto r = RunDsm("init-model --out " + out + " --hidden 64 --layers 2 --heads 4 --kv-heads 1 --intermediate 96"
                        " --max-len 256 --vocab 600 --init-std 0.125 --templates " + Templates());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto model = LlamaModel::Load(out);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto weights = (*model)->NamedWeights();
  EXPECT_NEAR(weights.at("model.layers.0.mlp.up_proj.weight").std().item<double>(), 0.125, 0.005);
  EXPECT_NEAR(weights.at("model.embed_tokens.weight").std().item<double>(), 0.125, 0.005);
}

TEST(InitModelCli, BadFlagsAreExitTwoWithOneLine) {
  const std::string out = testing::TempDir() + "/init_cli_bad";
  auto r = RunDsm("init-model --out " + out + " --heads 4 --kv-heads 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: init-model: num_key_value_heads: 3 does not divide num_attention_heads 4\n");
  r = RunDsm("init-model --out " + out + " --layers 2 --mimetic 0.7 --mimetic-layers 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: init-model: mimetic_layers: 3 is not in [0, num_hidden_layers 2]\n");
  r = RunDsm("init-model --out " + out + " --init-std 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: init-model: initializer_range: 0 is not in (0, 1]\n");
  r = RunDsm("init-model --out " + out + " --vocab 100");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, testing::StartsWith("dsm: init-model: vocab_size: 100"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  r = RunDsm("init-model --out " + out + " --templates /nonexistent/prompts");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: init-model: --templates: /nonexistent/prompts is not a folder\n");
  r = RunDsm("init-model --out " + out + " --seed -1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "dsm: init-model: --seed: -1 is negative\n");
  r = RunDsm("init-model --hidden 64");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, testing::HasSubstr("--out is required"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  r = RunDsm("init-model --out " + out + " --layers many");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
}

}  // namespace
}  // namespace dsm
