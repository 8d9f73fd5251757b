// Normalizers of a Hugging Face tokenizer.json ("normalizer" key): they rewrite the text
// between added tokens before pre-tokenization.
//
// Supported types: NFC, NFD, NFKC, NFKD (ICU), Sequence, Replace, Prepend, ByteLevel.
// Implementations are immutable after parsing and thread-safe.
#ifndef DSM_MODEL_TOKENIZER_NORMALIZER_H_
#define DSM_MODEL_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsm {

class TokenizerNormalizer {
 public:
  virtual ~TokenizerNormalizer() = default;
  // `text` is well-formed UTF-8; so is the result.
  virtual std::string Normalize(absl::string_view text) const = 0;
};

// Builds the normalizer described by `config`; a JSON null gives nullptr (no normalization).
// Unknown types and malformed fields are errors that name the type or field.
absl::StatusOr<std::unique_ptr<TokenizerNormalizer>> ParseTokenizerNormalizer(
    const nlohmann::json& config);

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_NORMALIZER_H_
