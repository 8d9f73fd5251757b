// A Hugging Face tokenizer.json tokenizer (byte-level BPE: Qwen2/2.5/3, Llama-3, DeepSeek)
// whose ids match Hugging Face `tokenizers` exactly.
//
// Encode follows TokenizerImpl::encode: added tokens are split out of the raw input first
// (special tokens written in the text are recognised, as Hugging Face does by default), then
// each remaining part is normalized, searched for normalized added tokens, pre-tokenized and
// run through the BPE model; the post-processor adds BOS/EOS-style tokens only when asked.
// Decode follows TokenizerImpl::decode (unknown ids are skipped).
//
// Owns every part of the pipeline. Immutable after construction and thread-safe: any number of
// threads may call Encode/Decode at once (the BPE word cache is internally locked).
#ifndef DSM_MODEL_TOKENIZER_H_
#define DSM_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dsm {

class AddedVocabulary;
class BpeModel;
class TokenizerDecoder;
class TokenizerNormalizer;
class TokenizerPostProcessor;
class TokenizerPreTokenizer;

class Tokenizer {
 public:
  // Loads tokenizer.json. When a tokenizer_config.json sits next to it, its bos_token and
  // eos_token (if they name known tokens, or are null) decide bos_id() / eos_id().
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromFile(const std::string& path);
  // Parses the contents of a tokenizer.json. Errors say what is wrong: invalid JSON, an
  // unsupported model / normalizer / pre-tokenizer / post-processor / decoder type, a bad
  // regex (with PCRE2's message), a merge that uses unknown tokens, ...
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(absl::string_view json);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text`. Ill-formed UTF-8 is first replaced by U+FFFD (as Rust's
  // String::from_utf8_lossy would). `add_special_tokens` applies the post-processor
  // (e.g. a TemplateProcessing BOS); Hugging Face's `encode` calls this `add_special_tokens`.
  std::vector<int32_t> Encode(absl::string_view text, bool add_special_tokens = false) const;

  // Text of `ids`. Ids that name no token are skipped; with `skip_special_tokens`, so are
  // special added tokens. Byte sequences that are not UTF-8 come out as U+FFFD.
  std::string Decode(absl::Span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The token string of `id` (added tokens first, then the model vocabulary), if any.
  std::optional<std::string> IdToToken(int32_t id) const;
  // The id of `token` (added tokens first, then the model vocabulary), if any.
  std::optional<int32_t> TokenToId(absl::string_view token) const;
  // Whether `id` is a special added token (what skip_special_tokens drops).
  bool IsSpecial(int32_t id) const;

  // Number of distinct ids: model vocabulary plus added tokens. (A model's embedding matrix
  // may be larger, e.g. Qwen pads to a multiple of 128.)
  int32_t vocab_size() const { return vocab_size_; }

  // Beginning / end of sequence ids when discoverable: tokenizer_config.json next to the file
  // (a null there means none), else the post-processor's template (tokens before / after the
  // sequence), else added tokens with well-known names (<|begin_of_text|>,
  // <｜begin▁of▁sentence｜>, <s>, <|endoftext|>, </s>, ...).
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }

 private:
  Tokenizer();
  void DiscoverBosEos();

  std::unique_ptr<TokenizerNormalizer> normalizer_;
  std::unique_ptr<TokenizerPreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<TokenizerPostProcessor> post_processor_;
  std::unique_ptr<TokenizerDecoder> decoder_;
  std::unique_ptr<AddedVocabulary> added_;
  int32_t vocab_size_ = 0;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
};

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_H_
