// Sampling the model on chain-domain prompts (tasks/chain_sampling.h) side by side on several
// threads, each with its copy of the weights: what phase 0 does with its own proofs on its
// data-parallel replicas, and why that does not change phase 0's model.
#include "tasks/chain_sampling.h"

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "model/llama_model.h"
#include "model/model_init.h"
#include "model/tokenizer.h"
#include "tasks/chain_domain.h"
#include "tasks/chain_warmup_examples.h"
#include "tasks/replica_thread.h"
#include "tests/integration/tiny_model.h"

namespace dsm {
namespace {

using tiny_model_test::InitTinyModel;
using tiny_model_test::PromptsDir;

// SampleChainPromptsSideBySide (phase 0 samples its own proofs so, on its replicas): the same
// tokens, log-probabilities and texts as one sampler given every prompt on this thread (two
// LibTorch threads), for seeded temperature-1 and greedy prompts, parts of unequal lengths.
TEST(ChainSampling, PromptsSampledSideBySideAreOneSamplersResults) {
  ASSERT_TRUE(SetTorchThreads(2).ok());
  const std::string dir = InitTinyModel("tiny_side_by_side", ModelInitOptions{}, 1024);
  ASSERT_FALSE(dir.empty());
  auto model = LlamaModel::Load(dir);
  auto copy = LlamaModel::Load(dir);
  auto tokenizer = Tokenizer::FromFile(dir + "/tokenizer.json");
  auto templates = ChainWarmupTemplates::Load(PromptsDir());
  auto problems = GenerateChainProblems(ChainDomainOptions{}, ChainSplit::kTrain, 77, 7);
  ASSERT_TRUE(model.ok() && copy.ok() && tokenizer.ok() && templates.ok() && problems.ok());
  std::vector<ChainPrompt> prompts;
  for (const ChainProblem& p : *problems) {
    const double temperature = prompts.size() % 3 == 2 ? 0.0 : 1.0;
    prompts.push_back(ChainPrompt{MakeChainWarmupExample(*templates, PromptRole::kGenerator, p, 1.0, 0).prompt,
                                  temperature, p.seed});
  }
  ChainSamplingOptions options;
  options.max_new_tokens = 40;
  auto one = SampleChainPrompts(**model, **tokenizer, prompts, options);
  ReplicaThread first, second;
  auto side = SampleChainPromptsSideBySide({model->get(), copy->get()}, {&first, &second}, **tokenizer, prompts,
                                           options);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(side.ok()) << side.status();
  ASSERT_EQ(side->size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*side)[i].tokens, (*one)[i].tokens);
    EXPECT_EQ((*side)[i].logprobs, (*one)[i].logprobs);
    EXPECT_EQ((*side)[i].text, (*one)[i].text);
  }
  // An untrained model: the samples differ from each other, so a mix-up of parts would show.
  EXPECT_NE((*one)[0].tokens, (*one)[1].tokens);
  EXPECT_FALSE(SampleChainPromptsSideBySide({model->get()}, {&first, &second}, **tokenizer, prompts, options).ok());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace dsm
