#include "tasks/chain_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tasks/chain_analysis.h"
#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr const char* kSpecialTokens[] = {"<pad>", "<s>", "</s>"};
constexpr int32_t kFirstByteId = 3;
constexpr absl::string_view kBoxOpen = "\\boxed{";

bool IsSpace(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsLetter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }

// GPT-2's bytes_to_unicode: the byte-level character (UTF-8) of each byte.
const std::vector<std::string>& ByteChars() {
  static const std::vector<std::string>* const kChars = [] {
    std::vector<int> code(256, -1);
    for (int b = 0; b < 256; ++b) {
      if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        code[b] = b;
    }
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      if (code[b] < 0) code[b] = next++;
    }
    auto* chars = new std::vector<std::string>();
    for (int b = 0; b < 256; ++b) {
      const int cp = code[b];
      std::string s;
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      chars->push_back(s);
    }
    return chars;
  }();
  return *kChars;
}

// Domain texts for training, each paired with how often to count it.
std::vector<std::string> DomainCorpus(const ChainTokenizerOptions& options) {
  std::vector<std::string> texts;
  for (int i = 0; i < options.corpus_problems; ++i) {
    const ChainSplit split = i % 10 == 9 ? ChainSplit::kEval : ChainSplit::kTrain;
    auto problem = GenerateChainProblem(options.domain, split, CombineSeeds(options.seed, i));
    if (!problem.ok()) continue;
    texts.push_back(problem->statement.Text());
    for (ChainFlaw flaw : AllChainFlaws()) {
      const LabelledChainProof proof = MakeLabelledChainProof(*problem, flaw, options.seed + i);
      for (ChainAnalysisKind kind : AllChainAnalysisKinds()) {
        auto analysis =
            MakeLabelledChainAnalysis(problem->statement, proof, kind, options.seed + i);
        if (!analysis) continue;
        texts.push_back(RenderChainGeneratorOutput(proof.text, analysis->text));
        texts.push_back(RenderChainMetaAnalysis(analysis->assessment));
      }
    }
  }
  return texts;
}

}  // namespace

const char* ChainTokenizerPattern() {
  return R"(\\boxed\{|\p{L}=\p{L}(?!\p{L})|\p{L}{2,} ?| \p{L}{2,} ?|\p{L}|\p{N}|[^\s\p{L}\p{N}]+ ?|\s+(?!\S)|\s+)";
}

std::vector<std::string> ChainPreTokenize(absl::string_view text) {
  std::vector<std::string> pieces;
  const std::size_t n = text.size();
  std::size_t i = 0;
  auto at = [&text](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    std::size_t j = i;
    if (text.substr(i, kBoxOpen.size()) == kBoxOpen) {
      j = i + kBoxOpen.size();
    } else if (i + 2 < n && IsLetter(at(i)) && text[i + 1] == '=' && IsLetter(at(i + 2)) &&
               (i + 3 == n || !IsLetter(at(i + 3)))) {
      j = i + 3;  // an equality "x=y" is one piece
    } else if (IsLetter(at(i))) {
      while (j < n && IsLetter(at(j))) ++j;
      // A word takes one trailing space; a single letter stays alone.
      if (j - i >= 2 && j < n && text[j] == ' ') ++j;
    } else if (text[i] == ' ' && i + 2 < n && IsLetter(at(i + 1)) && IsLetter(at(i + 2))) {
      // A word a space leads that no word or punctuation took ("a=b given", "1 cites"): the
      // space is the word's, and the word takes one trailing space too.
      j = i + 1;
      while (j < n && IsLetter(at(j))) ++j;
      if (j < n && text[j] == ' ') ++j;
    } else if (IsDigit(at(i))) {
      j = i + 1;
    } else if (!IsSpace(at(i))) {
      while (j < n && !IsSpace(at(j)) && !IsLetter(at(j)) && !IsDigit(at(j))) ++j;
      if (j < n && text[j] == ' ') ++j;
    } else {
      while (j < n && IsSpace(at(j))) ++j;
      // \s+(?!\S): leave the last blank to the next piece when a non-blank follows.
      if (j < n && j - i >= 2) --j;
    }
    pieces.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return pieces;
}

absl::Status ChainTokenizerOptions::Validate() const {
  if (vocab_size < kFirstByteId + 256 || vocab_size > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size: ", vocab_size, " is outside 259..65536"));
  }
  if (corpus_problems < 1 || corpus_problems > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("corpus_problems: ", corpus_problems, " is outside 1..100000"));
  }
  if (model_max_length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_max_length: ", model_max_length, " is under 1"));
  }
  return domain.Validate();
}

int32_t ChainTokenizer::AddToken(const std::string& token) {
  auto [it, inserted] = token_ids_.emplace(token, static_cast<int32_t>(vocab_.size()));
  if (inserted) vocab_.push_back(token);
  return it->second;
}

absl::StatusOr<ChainTokenizer> ChainTokenizer::Build(const ChainTokenizerOptions& options,
                                                     const std::vector<std::string>& extra_texts) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  ChainTokenizer tokenizer;
  tokenizer.model_max_length_ = options.model_max_length;
  for (const char* special : kSpecialTokens) tokenizer.AddToken(special);
  for (const std::string& c : ByteChars()) tokenizer.AddToken(c);

  // Piece -> count, in a sorted map so training is deterministic.
  std::map<std::string, int64_t> piece_counts;
  auto add_text = [&piece_counts](absl::string_view text) {
    for (std::string& piece : ChainPreTokenize(text)) ++piece_counts[std::move(piece)];
  };
  for (const std::string& text : DomainCorpus(options)) add_text(text);
  for (const std::string& text : extra_texts) add_text(text);

  struct Word {
    std::vector<int32_t> symbols;
    int64_t count;
  };
  std::vector<Word> words;
  for (const auto& [piece, count] : piece_counts) {
    Word word{{}, count};
    for (unsigned char c : piece) word.symbols.push_back(kFirstByteId + c);
    if (word.symbols.size() > 1) words.push_back(std::move(word));
  }
  while (tokenizer.vocab_size() < options.vocab_size) {
    absl::flat_hash_map<uint64_t, int64_t> pair_counts;
    for (const Word& word : words) {
      for (std::size_t k = 0; k + 1 < word.symbols.size(); ++k) {
        pair_counts[PairKey(word.symbols[k], word.symbols[k + 1])] += word.count;
      }
    }
    if (pair_counts.empty()) break;
    // Most frequent pair; ties go to the smaller (left token, right token) strings.
    uint64_t best = 0;
    int64_t best_count = -1;
    for (const auto& [key, count] : pair_counts) {
      if (count < best_count) continue;
      if (count == best_count) {
        const auto a =
            std::make_pair(tokenizer.vocab_[key >> 32], tokenizer.vocab_[key & 0xffffffffu]);
        const auto b =
            std::make_pair(tokenizer.vocab_[best >> 32], tokenizer.vocab_[best & 0xffffffffu]);
        if (!(a < b)) continue;
      }
      best = key;
      best_count = count;
    }
    const int32_t left = static_cast<int32_t>(best >> 32);
    const int32_t right = static_cast<int32_t>(best & 0xffffffffu);
    const int32_t merged = tokenizer.AddToken(tokenizer.vocab_[left] + tokenizer.vocab_[right]);
    tokenizer.merge_index_[best] =
        MergeInfo{static_cast<int32_t>(tokenizer.merges_.size()), merged};
    tokenizer.merges_.emplace_back(left, right);
    for (Word& word : words) {
      std::vector<int32_t>& s = word.symbols;
      std::size_t out = 0;
      for (std::size_t k = 0; k < s.size(); ++k) {
        if (k + 1 < s.size() && s[k] == left && s[k + 1] == right) {
          s[out++] = merged;
          ++k;
        } else {
          s[out++] = s[k];
        }
      }
      s.resize(out);
    }
    words.erase(std::remove_if(words.begin(), words.end(),
                               [](const Word& w) { return w.symbols.size() < 2; }),
                words.end());
  }
  return tokenizer;
}

std::vector<int32_t> ChainTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  std::vector<int32_t> symbols;
  for (const std::string& piece : ChainPreTokenize(text)) {
    symbols.clear();
    for (unsigned char c : piece) symbols.push_back(kFirstByteId + c);
    // Hugging Face's merge loop: the lowest-ranked adjacent pair first, leftmost on ties.
    while (symbols.size() > 1) {
      int32_t best_rank = -1;
      std::size_t best_at = 0;
      int32_t best_id = 0;
      for (std::size_t k = 0; k + 1 < symbols.size(); ++k) {
        auto it = merge_index_.find(PairKey(symbols[k], symbols[k + 1]));
        if (it == merge_index_.end()) continue;
        if (best_rank < 0 || it->second.rank < best_rank) {
          best_rank = it->second.rank;
          best_at = k;
          best_id = it->second.new_id;
        }
      }
      if (best_rank < 0) break;
      symbols[best_at] = best_id;
      symbols.erase(symbols.begin() + best_at + 1);
    }
    ids.insert(ids.end(), symbols.begin(), symbols.end());
  }
  return ids;
}

std::string ChainTokenizer::TokenString(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return vocab_[id];
}

std::string ChainTokenizer::TokenizerJson() const {
  ordered_json root;
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  ordered_json added = ordered_json::array();
  for (int32_t id = 0; id < kFirstByteId; ++id) {
    added.push_back({{"id", id},
                     {"content", vocab_[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  root["added_tokens"] = added;
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", ordered_json::array({{{"type", "Split"},
                                              {"pattern", {{"Regex", ChainTokenizerPattern()}}},
                                              {"behavior", "Isolated"},
                                              {"invert", false}},
                                             {{"type", "ByteLevel"},
                                              {"add_prefix_space", false},
                                              {"trim_offsets", true},
                                              {"use_regex", false}}})}};
  const ordered_json bos = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
  root["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", ordered_json::array({bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", ordered_json::array({bos,
                                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                    bos,
                                    {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {kBosId}}, {"tokens", {"<s>"}}}}}}};
  root["decoder"] = {{"type", "ByteLevel"},
                     {"add_prefix_space", true},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  ordered_json vocab = ordered_json::object();
  for (std::size_t id = 0; id < vocab_.size(); ++id) vocab[vocab_[id]] = id;
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : merges_) merges.push_back(vocab_[left] + " " + vocab_[right]);
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", false},
                   {"vocab", vocab},
                   {"merges", merges}};
  return root.dump(1);
}

std::string ChainTokenizer::TokenizerConfigJson() const {
  ordered_json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                         {"bos_token", vocab_[kBosId]},
                         {"eos_token", vocab_[kEosId]},
                         {"pad_token", vocab_[kPadId]},
                         {"add_bos_token", true},
                         {"add_eos_token", false},
                         {"clean_up_tokenization_spaces", false},
                         {"model_max_length", model_max_length_}};
  return config.dump(1);
}

absl::Status ChainTokenizer::WriteFiles(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const std::pair<const char*, std::string> files[] = {
      {"tokenizer.json", TokenizerJson()}, {"tokenizer_config.json", TokenizerConfigJson()}};
  for (const auto& [name, contents] : files) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << contents;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  }
  return absl::OkStatus();
}

}  // namespace dsm
