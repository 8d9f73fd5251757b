// The chain tokenizer's tokenizer.json in dsm's Hugging Face tokenizer (model/tokenizer.h):
// it loads, finds BOS/EOS, gives the same ids as ChainTokenizer::Encode and decodes every
// domain text and prompt template back exactly.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "model/tokenizer.h"
#include "tasks/chain_analysis.h"
#include "tasks/chain_tokenizer.h"

namespace dsm {
namespace {

std::vector<std::string> PromptTemplates() {
  const char* source = std::getenv("DSM_SOURCE_DIR");
  EXPECT_NE(source, nullptr) << "DSM_SOURCE_DIR is not set (run the test through ctest)";
  std::vector<std::string> texts;
  for (const char* name : {"generator.txt", "verifier.txt", "meta_verifier.txt"}) {
    std::ifstream in(std::string(source ? source : ".") + "/configs/prompts/" + name);
    std::stringstream contents;
    contents << in.rdbuf();
    texts.push_back(contents.str());
  }
  return texts;
}

TEST(ChainTokenizerModel, LoadsAndRoundTripsDomainTexts) {
  const std::vector<std::string> templates = PromptTemplates();
  auto chain = ChainTokenizer::Build({}, templates);
  ASSERT_TRUE(chain.ok()) << chain.status();
  const std::string dir = testing::TempDir() + "/chain_tokenizer";
  ASSERT_TRUE(chain->WriteFiles(dir).ok());
  auto loaded = Tokenizer::FromFile(dir + "/tokenizer.json");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& tokenizer = **loaded;
  EXPECT_EQ(tokenizer.vocab_size(), chain->vocab_size());
  EXPECT_EQ(tokenizer.bos_id(), ChainTokenizer::kBosId);
  EXPECT_EQ(tokenizer.eos_id(), ChainTokenizer::kEosId);
  EXPECT_TRUE(tokenizer.IsSpecial(ChainTokenizer::kPadId));

  std::vector<std::string> texts = templates;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    auto problem =
        GenerateChainProblem({}, seed % 5 == 0 ? ChainSplit::kEval : ChainSplit::kTrain, seed);
    ASSERT_TRUE(problem.ok());
    texts.push_back(problem->statement.Text());
    for (ChainFlaw flaw : AllChainFlaws()) {
      const LabelledChainProof proof = MakeLabelledChainProof(*problem, flaw, seed);
      for (ChainAnalysisKind kind : AllChainAnalysisKinds()) {
        auto analysis = MakeLabelledChainAnalysis(problem->statement, proof, kind, seed);
        if (!analysis) continue;
        texts.push_back(RenderChainGeneratorOutput(proof.text, analysis->text));
        texts.push_back(RenderChainMetaAnalysis(analysis->assessment));
      }
    }
  }
  texts.push_back("odd bytes: \xc3\xa9 \xe2\x86\x92 \t\t tabs  and  spaces \n\n\n end");
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tokenizer.Encode(text);
    EXPECT_EQ(tokenizer.Decode(ids), text);
    if (text.find('\xc3') == std::string::npos) {
      ASSERT_EQ(ids, chain->Encode(text)) << text;
    }
  }
  const std::vector<int32_t> with_bos = tokenizer.Encode("Thus a=d.", /*add_special_tokens=*/true);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos.front(), ChainTokenizer::kBosId);
  EXPECT_EQ(tokenizer.Decode(with_bos, /*skip_special_tokens=*/true), "Thus a=d.");
}

}  // namespace
}  // namespace dsm
