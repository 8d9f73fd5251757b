// `dsm tokenize` (RunTokenizeCommand) on a small byte-level tokenizer written to a temp dir.
#include "model/tokenizer_cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "model/tokenizer_bytes.h"

namespace dsm {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

class TokenizeCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("tokenizer_cli_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "tokenizer.json").string();
    // Ids 0..255 are the bytes; 256 is "hi" (a merge); 300 is a special token.
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[tokenizer_internal::ByteToUnicode(b)] = b;
    vocab["hi"] = 256;
    const json config = {
        {"added_tokens", json::array({{{"id", 300},
                                       {"content", "<|end|>"},
                                       {"single_word", false},
                                       {"lstrip", false},
                                       {"rstrip", false},
                                       {"normalized", false},
                                       {"special", true}}})},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"h i"})}}}};
    std::ofstream(path_) << config.dump();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the command; returns its exit code and fills out_ / err_.
  int Run(bool decode, const std::string& input, const std::string& path = "") {
    std::istringstream in(input);
    out_.str("");
    err_.str("");
    return RunTokenizeCommand(path.empty() ? path_ : path, decode, in, out_, err_);
  }

  std::filesystem::path dir_;
  std::string path_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(TokenizeCommandTest, EncodePrintsIdsOnOneLine) {
  EXPECT_EQ(Run(false, "hi a<|end|>\n"), 0);
  EXPECT_EQ(out_.str(), "256 32 97 300 10\n");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(TokenizeCommandTest, EncodeEmptyInputPrintsEmptyLine) {
  EXPECT_EQ(Run(false, ""), 0);
  EXPECT_EQ(out_.str(), "\n");
}

TEST_F(TokenizeCommandTest, DecodeAcceptsSpacesCommasAndNewlinesAndKeepsSpecialTokens) {
  EXPECT_EQ(Run(true, "256, 32 97,300\n10"), 0);
  EXPECT_EQ(out_.str(), "hi a<|end|>\n");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(TokenizeCommandTest, EncodeThenDecodeRoundTrips) {
  const std::string text = "naïve 数学 \\boxed{1}\n";
  ASSERT_EQ(Run(false, text), 0);
  const std::string ids = out_.str();
  ASSERT_EQ(Run(true, ids), 0);
  EXPECT_EQ(out_.str(), text);
}

TEST_F(TokenizeCommandTest, NonIntegerIdIsAnError) {
  EXPECT_EQ(Run(true, "12 abc 13"), 2);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), HasSubstr("'abc' is not an integer token id"));
  const std::string err = err_.str();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
}

TEST_F(TokenizeCommandTest, OutOfRangeIdsAreErrors) {
  for (const std::string input : {"999999", "-1", "257", "99999999999999"}) {
    EXPECT_EQ(Run(true, input), 2) << input;
    EXPECT_THAT(err_.str(), HasSubstr("out of range")) << input;
  }
}

TEST_F(TokenizeCommandTest, MissingTokenizerFileIsAnError) {
  EXPECT_EQ(Run(false, "x", (dir_ / "missing.json").string()), 2);
  EXPECT_THAT(err_.str(), HasSubstr("cannot load tokenizer"));
  EXPECT_THAT(err_.str(), HasSubstr("missing.json"));
  const std::string err = err_.str();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
}

}  // namespace
}  // namespace dsm
