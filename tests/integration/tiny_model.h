// Test helper: the built-in tiny model, initialised as `dsm init-model --templates
// configs/prompts/tiny` writes it (model/model_init.h, its tokenizer from tasks/chain_tokenizer.h
// with the tiny prompt templates in its corpus), in a folder of the test's temporary directory.
#ifndef DSM_TESTS_INTEGRATION_TINY_MODEL_H_
#define DSM_TESTS_INTEGRATION_TINY_MODEL_H_

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "model/model_init.h"
#include "tasks/chain_tokenizer.h"

namespace dsm::tiny_model_test {

// configs/prompts/tiny under $DSM_SOURCE_DIR (or the working directory).
inline std::string PromptsDir() {
  const char* source = std::getenv("DSM_SOURCE_DIR");
  return absl::StrCat(source != nullptr ? source : ".", "/configs/prompts/tiny");
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes the model to <TempDir>/<name>_<pid>; returns the folder, or "" (a test failure) on error.
inline std::string InitTinyModel(const std::string& name, const ModelInitOptions& model, int vocab_size) {
  const std::string dir = absl::StrCat(testing::TempDir(), "/", name, "_", getpid());
  ChainTokenizerOptions tok;
  tok.vocab_size = vocab_size;
  tok.seed = model.seed;
  tok.model_max_length = static_cast<int>(model.max_position_embeddings);
  std::vector<std::string> templates;
  for (const char* role : {"generator", "meta_verifier", "verifier"}) {
    templates.push_back(ReadText(absl::StrCat(PromptsDir(), "/", role, ".txt")));
  }
  auto tokenizer = ChainTokenizer::Build(tok, templates);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  if (!tokenizer.ok()) return "";
  auto config = WriteInitialModel(dir, model, tokenizer->TokenizerJson(), tokenizer->TokenizerConfigJson());
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? dir : "";
}

}  // namespace dsm::tiny_model_test

#endif  // DSM_TESTS_INTEGRATION_TINY_MODEL_H_
