// Tokenizer behaviour on small hand-made tokenizer.json files: pre-tokenizer splits, BPE
// merges, added tokens, post-processing, decoding and error messages. Comparisons with real
// Hugging Face tokenizers are in tokenizer_hf_test.cc.
#include "model/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "model/tokenizer_bytes.h"
#include "model/tokenizer_pre.h"
#include "model/tokenizer_regex.h"

namespace dsm {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> PreTokenize(const json& config, const std::string& text) {
  auto pre = ParseTokenizerPreTokenizer(config);
  EXPECT_TRUE(pre.ok()) << pre.status();
  if (!pre.ok()) return {};
  std::vector<std::string> pieces = {text};
  (*pre)->PreTokenize(&pieces);
  return pieces;
}

json SplitConfig(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

// The examples of Hugging Face's SplitDelimiterBehavior documentation.
TEST(TokenizerSplit, Removed) {
  EXPECT_THAT(PreTokenize(SplitConfig("Removed"), "the-final--countdown"),
              ElementsAre("the", "final", "countdown"));
}

TEST(TokenizerSplit, Isolated) {
  EXPECT_THAT(PreTokenize(SplitConfig("Isolated"), "the-final--countdown"),
              ElementsAre("the", "-", "final", "-", "-", "countdown"));
}

TEST(TokenizerSplit, MergedWithPrevious) {
  EXPECT_THAT(PreTokenize(SplitConfig("MergedWithPrevious"), "the-final--countdown"),
              ElementsAre("the-", "final-", "-", "countdown"));
}

TEST(TokenizerSplit, MergedWithNext) {
  EXPECT_THAT(PreTokenize(SplitConfig("MergedWithNext"), "the-final--countdown"),
              ElementsAre("the", "-final", "-", "-countdown"));
}

TEST(TokenizerSplit, Contiguous) {
  EXPECT_THAT(PreTokenize(SplitConfig("Contiguous"), "the-final--countdown"),
              ElementsAre("the", "-", "final", "--", "countdown"));
}

TEST(TokenizerSplit, InvertRemovesWhatDoesNotMatch) {
  EXPECT_THAT(PreTokenize(SplitConfig("Removed", /*invert=*/true), "the-final--countdown"),
              ElementsAre("-", "-", "-"));
  // Inverted, the letters are the "matches": each merges into the piece before it.
  EXPECT_THAT(PreTokenize(SplitConfig("MergedWithPrevious", /*invert=*/true), "a-b"),
              ElementsAre("a", "-b"));
}

TEST(TokenizerSplit, RegexWithLookAheadAndUnicodeClasses) {
  const json config = {{"type", "Split"},
                       {"pattern", {{"Regex", R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|\s+(?!\S)|\s+)"}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
  EXPECT_THAT(PreTokenize(config, "héllo   wörld 42"),
              ElementsAre("héllo", "  ", " wörld", " ", "4", "2"));
  // The same text with the look-ahead alternative gone: the spaces stay together.
  const json no_lookahead = {{"type", "Split"},
                             {"pattern", {{"Regex", R"(\p{L}+|\s+)"}}},
                             {"behavior", "Isolated"},
                             {"invert", false}};
  EXPECT_THAT(PreTokenize(no_lookahead, "héllo   wörld"), ElementsAre("héllo", "   ", "wörld"));
}

TEST(TokenizerDigits, IndividualDigits) {
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", true}}, "Call 123 please"),
              ElementsAre("Call ", "1", "2", "3", " please"));
}

TEST(TokenizerDigits, ContiguousDigits) {
  EXPECT_THAT(PreTokenize({{"type", "Digits"}, {"individual_digits", false}}, "Call 123 please"),
              ElementsAre("Call ", "123", " please"));
}

TEST(TokenizerByteLevel, SplitsWithGpt2PatternAndMapsBytes) {
  EXPECT_THAT(PreTokenize({{"type", "ByteLevel"}, {"add_prefix_space", true}}, "Hello my friend"),
              ElementsAre("ĠHello", "Ġmy", "Ġfriend"));
  EXPECT_THAT(
      PreTokenize({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}},
                  "a b\n"),
      ElementsAre("aĠbĊ"));
}

TEST(TokenizerRegex, FindAllFollowsRustEmptyMatchRules) {
  auto re = TokenizerRegex::Compile("a*");
  ASSERT_TRUE(re.ok()) << re.status();
  using Span = TokenizerRegex::Span;
  EXPECT_THAT((*re)->FindAll("baaac"), ElementsAre(Span{0, 0}, Span{1, 4}, Span{5, 5}));
}

TEST(TokenizerRegex, WhiteSpaceIsUnicodeWhiteSpaceLikeOniguruma) {
  auto re = TokenizerRegex::Compile(R"(\s+)");
  ASSERT_TRUE(re.ok()) << re.status();
  // U+0085 (NEL) is white space; U+180E (Mongolian vowel separator) is not, though PCRE2's
  // own \s says otherwise.
  const std::string text = "a\u0085b\u180Ec";
  using Span = TokenizerRegex::Span;
  EXPECT_THAT((*re)->FindAll(text), ElementsAre(Span{1, 3}));
}

TEST(TokenizerRegex, AnchorsMatchAtLineBoundariesLikeOniguruma) {
  auto re = TokenizerRegex::Compile(R"(\s+$)");
  ASSERT_TRUE(re.ok()) << re.status();
  using Span = TokenizerRegex::Span;
  EXPECT_THAT((*re)->FindAll("a  \nb  "), ElementsAre(Span{1, 3}, Span{5, 7}));
}

TEST(TokenizerRegex, StringPatternsAreLiteral) {
  auto re = TokenizerRegex::Compile("a.b", /*literal=*/true);
  ASSERT_TRUE(re.ok()) << re.status();
  using Span = TokenizerRegex::Span;
  EXPECT_THAT((*re)->FindAll("axb a.b"), ElementsAre(Span{4, 7}));
}

TEST(TokenizerRegex, BadPatternReportsPcre2Message) {
  auto re = TokenizerRegex::Compile("(abc");
  ASSERT_FALSE(re.ok());
  EXPECT_THAT(std::string(re.status().message()), HasSubstr("missing closing parenthesis"));
}

// --- Whole tokenizers ------------------------------------------------------------------------

// A byte-level BPE tokenizer.json whose ids 0..255 are the 256 byte symbols in byte order,
// followed by the results of `merges` in order (ids 256, 257, ...).
json ByteLevelTokenizer(const std::vector<std::pair<std::string, std::string>>& merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[tokenizer_internal::ByteToUnicode(b)] = b;
  json merge_list = json::array();
  int next_id = 256;
  for (const auto& [a, b] : merges) {
    merge_list.push_back(a + " " + b);
    if (!vocab.contains(a + b)) vocab[a + b] = next_id++;
  }
  return {
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}, {"unk_token", nullptr}}}};
}

std::unique_ptr<Tokenizer> Load(const json& config) {
  auto tokenizer = Tokenizer::FromJson(config.dump());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

int32_t Byte(char c) { return static_cast<unsigned char>(c); }

TEST(TokenizerBpe, MergesByRankLeftmostFirst) {
  // ids: 256 "he", 257 "ll", 258 "hell", 259 "hello", 260 "aa"
  auto tok =
      Load(ByteLevelTokenizer({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"a", "a"}}));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("hello"), ElementsAre(259));
  EXPECT_THAT(tok->Encode("hellx"), ElementsAre(258, Byte('x')));
  EXPECT_THAT(tok->Encode("aaa"), ElementsAre(260, Byte('a')));
  // " hello" is one pre-token "Ġhello": no merge joins Ġ (byte 0x20), so it stays apart.
  EXPECT_THAT(tok->Encode("hello hello"), ElementsAre(259, Byte(' '), 259));
  EXPECT_EQ(tok->Decode(tok->Encode("hello hello")), "hello hello");
}

TEST(TokenizerBpe, MergesAsPairsEqualMergesAsStrings) {
  json strings = ByteLevelTokenizer({{"h", "e"}, {"l", "l"}, {"he", "ll"}});
  json pairs = strings;
  pairs["model"]["merges"] = json::array({{"h", "e"}, {"l", "l"}, {"he", "ll"}});
  auto a = Load(strings);
  auto b = Load(pairs);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->Encode("hello shell"), b->Encode("hello shell"));
  EXPECT_THAT(a->Encode("hell"), ElementsAre(258));
}

TEST(TokenizerBpe, IgnoreMergesEmitsWholeWordsFromVocab) {
  json config = ByteLevelTokenizer({});
  config["model"]["vocab"]["abc"] = 300;
  auto plain = Load(config);
  config["model"]["ignore_merges"] = true;
  auto ignoring = Load(config);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(ignoring, nullptr);
  EXPECT_THAT(plain->Encode("abc"), ElementsAre(Byte('a'), Byte('b'), Byte('c')));
  EXPECT_THAT(ignoring->Encode("abc"), ElementsAre(300));
}

json CharTokenizer() {
  return {{"model",
           {{"type", "BPE"},
            {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}, {"<0x78>", 4}}},
            {"merges", json::array({"a b"})},
            {"unk_token", "<unk>"}}}};
}

TEST(TokenizerBpe, UnknownCharactersBecomeUnkFusedOrNot) {
  json config = CharTokenizer();
  config["model"]["fuse_unk"] = false;
  auto separate = Load(config);
  config["model"]["fuse_unk"] = true;
  auto fused = Load(config);
  ASSERT_NE(separate, nullptr);
  ASSERT_NE(fused, nullptr);
  EXPECT_THAT(separate->Encode("azzb"), ElementsAre(1, 0, 0, 2));
  EXPECT_THAT(fused->Encode("azzb"), ElementsAre(1, 0, 2));
  EXPECT_THAT(fused->Encode("ab"), ElementsAre(3));
}

TEST(TokenizerBpe, ByteFallbackUsesByteTokens) {
  json config = CharTokenizer();
  config["model"]["byte_fallback"] = true;
  auto tok = Load(config);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("axz"), ElementsAre(1, 4, 0));  // x has <0x78>, z has no byte token
}

TEST(TokenizerBpe, ContinuingSubwordPrefixJoinsMerges) {
  const json config = {{"model",
                        {{"type", "BPE"},
                         {"vocab", {{"a", 0}, {"##b", 1}, {"ab", 2}, {"b", 3}}},
                         {"merges", json::array({"a ##b"})},
                         {"continuing_subword_prefix", "##"}}}};
  auto tok = Load(config);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("ab"), ElementsAre(2));
  EXPECT_THAT(tok->Encode("b"), ElementsAre(3));
}

json WithAddedTokens(json config, const json& added) {
  config["added_tokens"] = added;
  return config;
}

json Added(int id, const std::string& content, bool special = true) {
  return {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", !special}, {"special", special}};
}

TEST(TokenizerAddedTokens, LongestMatchWinsAndSpecialTokensAreSkippedOnRequest) {
  auto tok = Load(WithAddedTokens(
      ByteLevelTokenizer({}),
      json::array({Added(300, "<a>"), Added(301, "<ab>"), Added(302, "xy", /*special=*/false)})));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("q<ab>r<a>xy"), ElementsAre(Byte('q'), 301, Byte('r'), 300, 302));
  EXPECT_EQ(tok->Decode({Byte('q'), 301, 302}), "q<ab>xy");
  EXPECT_EQ(tok->Decode({Byte('q'), 301, 302}, /*skip_special_tokens=*/true), "qxy");
  EXPECT_EQ(tok->vocab_size(), 259);
  EXPECT_EQ(tok->TokenToId("<ab>"), 301);
  EXPECT_EQ(tok->IdToToken(300), "<a>");
  EXPECT_TRUE(tok->IsSpecial(300));
  EXPECT_FALSE(tok->IsSpecial(302));
  EXPECT_FALSE(tok->IsSpecial(Byte('q')));
}

TEST(TokenizerAddedTokens, LstripRstripAndSingleWord) {
  json strip = Added(300, "<m>");
  strip["lstrip"] = true;
  strip["rstrip"] = true;
  json word = Added(301, "cat", /*special=*/false);
  word["single_word"] = true;
  auto tok = Load(WithAddedTokens(ByteLevelTokenizer({}), json::array({strip, word})));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("a  <m>  b"), ElementsAre(Byte('a'), 300, Byte('b')));
  EXPECT_THAT(tok->Encode("cat concat"), ElementsAre(301, Byte(' '), Byte('c'), Byte('o'),
                                                     Byte('n'), Byte('c'), Byte('a'), Byte('t')));
}

TEST(TokenizerAddedTokens, NormalizedTokensMatchNormalizedText) {
  json config = WithAddedTokens(ByteLevelTokenizer({}),
                                json::array({Added(300, "\u00e9", /*special=*/false)}));
  config["normalizer"] = {{"type", "NFC"}};
  auto tok = Load(config);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("e\u0301!"), ElementsAre(300, Byte('!')));
}

TEST(TokenizerPostProcessor, TemplateAddsBosOnlyWhenAsked) {
  json config = WithAddedTokens(ByteLevelTokenizer({}),
                                json::array({Added(300, "<bos>"), Added(301, "<eos>")}));
  config["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array({{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}},
                    {{"type", "TemplateProcessing"},
                     {"single", json::array({{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}},
                                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                     {"pair", json::array()},
                     {"special_tokens",
                      {{"<bos>", {{"id", "<bos>"}, {"ids", {300}}, {"tokens", {"<bos>"}}}}}}}})}};
  auto tok = Load(config);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("a", /*add_special_tokens=*/false), ElementsAre(Byte('a')));
  EXPECT_THAT(tok->Encode("a", /*add_special_tokens=*/true), ElementsAre(300, Byte('a')));
  EXPECT_EQ(tok->bos_id(), 300);  // from the template
  EXPECT_EQ(tok->eos_id(), 301);  // from the well-known name "<eos>"
}

TEST(TokenizerDecode, IllFormedBytesBecomeReplacementCharacters) {
  auto tok = Load(ByteLevelTokenizer({}));
  ASSERT_NE(tok, nullptr);
  // E2 82 is a truncated 3-byte sequence (one U+FFFD); FF is never valid (one more).
  EXPECT_EQ(tok->Decode({0xE2, 0x82, Byte('a'), 0xFF, Byte('b')}), "\uFFFDa\uFFFDb");
  EXPECT_EQ(tok->Decode({0xE2, 0x82, 0xAC}), "\u20AC");
  EXPECT_EQ(tok->Decode({99999, Byte('a')}), "a");  // unknown ids are skipped
}

TEST(TokenizerEncode, IllFormedInputIsRepairedFirst) {
  auto tok = Load(ByteLevelTokenizer({}));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode(std::string("a\xff")), tok->Encode("a\uFFFD"));
  EXPECT_THAT(tok->Encode(""), ElementsAre());
}

TEST(TokenizerErrors, InvalidJson) {
  auto tok = Tokenizer::FromJson("{\"model\": ");
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("not valid JSON"));
}

TEST(TokenizerErrors, UnknownPreTokenizerTypeIsNamed) {
  json config = ByteLevelTokenizer({});
  config["pre_tokenizer"] = {{"type", "Whitespace"}};
  auto tok = Tokenizer::FromJson(config.dump());
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(tok.status().message()),
              HasSubstr("unsupported pre-tokenizer type 'Whitespace'"));
}

TEST(TokenizerErrors, OtherUnsupportedOrBrokenParts) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& c) { c["model"]["type"] = "WordPiece"; }, "unsupported model type \"WordPiece\""},
      {[](json& c) {
         c["normalizer"] = {{"type", "Lowercase"}};
       },
       "unsupported normalizer type 'Lowercase'"},
      {[](json& c) {
         c["decoder"] = {{"type", "Metaspace"}};
       },
       "unsupported decoder type 'Metaspace'"},
      {[](json& c) {
         c["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "[a-"}}}, {"behavior", "Isolated"}};
       },
       "missing terminating ] for character class"},
      {[](json& c) {
         c["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}};
       },
       "unknown behavior 'Sideways'"},
      {[](json& c) { c["model"]["merges"] = json::array({"q zz"}); },
       "merge #1 ('q' 'zz') uses 'zz', which is not in the vocab"},
      {[](json& c) { c["model"]["merges"] = json::array({"abc"}); }, "merge #1 must be"},
  };
  for (const auto& [edit, expected] : cases) {
    json config = ByteLevelTokenizer({});
    edit(config);
    auto tok = Tokenizer::FromJson(config.dump());
    ASSERT_FALSE(tok.ok()) << expected;
    EXPECT_THAT(std::string(tok.status().message()), HasSubstr(expected));
  }
}

TEST(TokenizerErrors, MissingFileIsNotFound) {
  auto tok = Tokenizer::FromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("/nonexistent/tokenizer.json"));
}

}  // namespace
}  // namespace dsm
