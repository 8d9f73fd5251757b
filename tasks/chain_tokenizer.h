// ChainTokenizer: a small byte-level BPE tokenizer for the built-in model, trained here on
// the chain domain's texts (problems, proofs of every flaw, analyses, meta-analyses, generator
// outputs) plus any extra texts (the prompt templates), and written as a Hugging Face
// tokenizer.json that model/tokenizer.h loads (and Hugging Face `tokenizers` too).
//
// Layout of the file:
// - ids 0, 1, 2: "<pad>", "<s>" (BOS), "</s>" (EOS), special added tokens;
// - ids 3..258: the 256 byte-level characters (GPT-2's byte-to-unicode map), so every text,
//   whatever its bytes, encodes and decodes back exactly;
// - then one token per learned merge, most frequent pair first, up to vocab_size.
// - pre-tokenizer: Split on ChainTokenizerPattern() (Isolated), then ByteLevel without its
//   own regex; decoder ByteLevel; post-processor TemplateProcessing "<s> $A" (used only when
//   special tokens are asked for). The pattern makes every equality "x=y" one piece (so the
//   corpus gives each fact a token of its own, the same wherever it appears: checking that a
//   cited fact is given is then one token look-up, not a match of three), keeps every other
//   letter and every digit a token of its own, lets words take one trailing space ("so ",
//   "Thus ") and punctuation runs one trailing space (", ", ". "), and gives a space no word or
//   punctuation took to the word after it ("a=b given" is "a=b", " given"): a citation note's
//   status is then the very next token after the fact it judges, so the model decides it at the
//   fact's own position (one look-up), not a token later, where it must first fetch the fact
//   (bench/experiments/lookup_probe.py, mimetic attention on the last layer: with a token between
//   fact and status, `--format sep`, no look-up in 1500 steps; without, from ~1000).
//
// Encode() here applies the same pattern and merges, for counting tokens without LibTorch: it
// gives model/tokenizer.h's ids for ASCII text (the domain and the templates are ASCII); for
// other bytes it may split differently (the count is then approximate).
//
// Immutable after Build; thread-safe.
#ifndef DSM_TASKS_CHAIN_TOKENIZER_H_
#define DSM_TASKS_CHAIN_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasks/chain_domain.h"

namespace dsm {

struct ChainTokenizerOptions {
  // Total ids: 3 special + 256 bytes + merges. 259..65536. Training stops earlier when every
  // corpus piece is one token.
  int vocab_size = 1024;
  // Domain problems sampled for the training corpus (each with proofs of every flaw and their
  // analyses): 1..100000.
  int corpus_problems = 200;
  // Domain options of the sampled problems (their letters must cover the model's domain).
  ChainDomainOptions domain;
  uint64_t seed = 0;
  // The context length written to tokenizer_config.json (model_max_length): >= 1.
  int model_max_length = 1024;

  // One-line error naming the field and the limit.
  absl::Status Validate() const;
};

// The Split pre-tokenizer regex (PCRE2 / Oniguruma syntax).
const char* ChainTokenizerPattern();
// The pieces ChainTokenizerPattern() cuts ASCII `text` into (exact for ASCII).
std::vector<std::string> ChainPreTokenize(absl::string_view text);

class ChainTokenizer {
 public:
  static constexpr int32_t kPadId = 0;
  static constexpr int32_t kBosId = 1;
  static constexpr int32_t kEosId = 2;

  // Trains on the domain corpus (options) plus `extra_texts` (e.g. the prompt templates'
  // contents). Deterministic in its arguments.
  static absl::StatusOr<ChainTokenizer> Build(const ChainTokenizerOptions& options,
                                              const std::vector<std::string>& extra_texts);

  // tokenizer.json / tokenizer_config.json contents.
  std::string TokenizerJson() const;
  std::string TokenizerConfigJson() const;
  // Writes both files into `dir` (created if missing); errors name the file.
  absl::Status WriteFiles(const std::string& dir) const;

  // Ids without BOS/EOS (see the header comment for non-ASCII text).
  std::vector<int32_t> Encode(absl::string_view text) const;
  int CountTokens(absl::string_view text) const { return static_cast<int>(Encode(text).size()); }

  int vocab_size() const { return static_cast<int>(vocab_.size()); }
  // The token string (byte-level alphabet) of `id`; empty when out of range.
  std::string TokenString(int32_t id) const;

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  int32_t AddToken(const std::string& token);

  std::vector<std::string> vocab_;  // id -> token (byte-level alphabet)
  absl::flat_hash_map<std::string, int32_t> token_ids_;
  std::vector<std::pair<int32_t, int32_t>> merges_;  // in rank order
  absl::flat_hash_map<uint64_t, MergeInfo> merge_index_;
  int model_max_length_ = 1024;
};

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_TOKENIZER_H_
