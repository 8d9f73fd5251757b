// The added tokens of a Hugging Face tokenizer.json ("added_tokens"): special tokens such as
// <|im_end|> and extra tokens, found in the input before normalization and pre-tokenization.
//
// Matching follows tokenizers' AddedVocabulary: leftmost-longest over the raw text for tokens
// with normalized=false, and over the normalized text for tokens with normalized=true (whose
// content is normalized too); single_word, lstrip and rstrip as in Hugging Face.
//
// Immutable after construction; thread-safe.
#ifndef DSM_MODEL_TOKENIZER_ADDED_H_
#define DSM_MODEL_TOKENIZER_ADDED_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace dsm {

class TokenizerNormalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  // A piece of the input: [begin, end) bytes, and the added token it is (id >= 0) or -1.
  struct Segment {
    std::size_t begin;
    std::size_t end;
    int32_t id;
  };

  // `normalizer` (may be null) normalizes the content of normalized tokens; it is not kept.
  AddedVocabulary(std::vector<AddedToken> tokens, const TokenizerNormalizer* normalizer);

  // Covers `text` with segments, in order. `normalized` selects the tokens matched: false for
  // the raw input (normalized=false tokens), true for normalized text. Empty text gives one
  // empty segment.
  std::vector<Segment> Split(absl::string_view text, bool normalized) const;

  const AddedToken* FindById(int32_t id) const;
  std::optional<int32_t> FindByContent(absl::string_view content) const;
  // Whether `content` is the content of a special token (what decode skips).
  bool IsSpecialContent(absl::string_view content) const {
    return special_contents_.contains(content);
  }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // A byte trie of token contents. Node 0 is the root.
  class Trie {
   public:
    Trie() : terminal_(1, -1) {}
    // Adds `pattern` for token `token_index` unless the pattern is already there.
    void Add(absl::string_view pattern, int32_t token_index);
    // The leftmost-longest match at or after `start`, as Aho-Corasick's LeftmostLongest
    // finds it; false if none.
    bool FindLeftmostLongest(absl::string_view text, std::size_t start, std::size_t* match_begin,
                             std::size_t* match_end, int32_t* token_index) const;

   private:
    static uint64_t EdgeKey(int32_t node, unsigned char byte) {
      return (static_cast<uint64_t>(node) << 8) | byte;
    }
    absl::flat_hash_map<uint64_t, int32_t> edges_;  // (node, byte) -> child node
    std::vector<int32_t> terminal_;                 // node -> token index, or -1
    bool first_byte_[256] = {};                     // bytes that start some pattern
  };

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, std::size_t> by_id_;
  absl::flat_hash_map<std::string, int32_t> by_content_;
  absl::flat_hash_set<std::string> special_contents_;
  Trie raw_trie_;
  Trie normalized_trie_;
};

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_ADDED_H_
