// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): a vocabulary,
// ranked merges, and the merge loop of tokenizers' Word::merge_all.
//
// Supports merges as "a b" strings or ["a", "b"] pairs, ignore_merges, unk_token with fuse_unk,
// byte_fallback, continuing_subword_prefix and end_of_word_suffix. Dropout is refused (it makes
// ids random). An unk_token missing from the vocabulary is ignored (Hugging Face fails the
// encode instead).
//
// Thread-safe: the vocabulary and merges are immutable; the word cache is sharded and locked.
#ifndef DSM_MODEL_TOKENIZER_BPE_H_
#define DSM_MODEL_TOKENIZER_BPE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsm {

class BpeModel {
 public:
  // Parses the "model" object of tokenizer.json.
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of `word` (one pre-tokenized piece, well-formed UTF-8) to *ids.
  // Characters neither in the vocabulary nor covered by unk_token/byte_fallback are dropped,
  // as Hugging Face does.
  void Tokenize(absl::string_view word, std::vector<int32_t>* ids) const;

  std::optional<int32_t> TokenToId(absl::string_view token) const;
  // The token with this id, or nullptr.
  const std::string* IdToToken(int32_t id) const;
  // Number of entries in the vocabulary.
  std::size_t vocab_size() const { return vocab_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  struct CacheShard {
    std::mutex mu;
    absl::flat_hash_map<std::string, std::vector<int32_t>> words;  // guarded by mu
  };
  static constexpr int kCacheShards = 16;
  static constexpr std::size_t kCacheWordsPerShard = 4096;
  static constexpr std::size_t kMaxCachedWordBytes = 256;

  BpeModel() = default;

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Splits `word` into characters and merges them; the result is the word's ids.
  std::vector<int32_t> MergeWord(absl::string_view word) const;
  // Merges adjacent symbols by rank (lowest first, leftmost on ties) until none applies.
  void MergeAll(std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<const std::string*> id_to_token_;  // points into vocab_'s keys; null for holes
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_;
  std::optional<std::string> continuing_subword_prefix_;
  std::optional<std::string> end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  mutable std::unique_ptr<CacheShard[]> cache_;
};

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_BPE_H_
