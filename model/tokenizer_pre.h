// Pre-tokenizers of a Hugging Face tokenizer.json ("pre_tokenizer" key): they cut normalized
// text into pieces that the model then tokenizes one by one.
//
// Supported types: Sequence, Split (Regex or String pattern; behaviors Removed, Isolated,
// MergedWithPrevious, MergedWithNext, Contiguous; invert), ByteLevel (add_prefix_space,
// use_regex with the GPT-2 pattern) and Digits (individual_digits).
// Implementations are immutable after parsing and thread-safe.
#ifndef DSM_MODEL_TOKENIZER_PRE_H_
#define DSM_MODEL_TOKENIZER_PRE_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dsm {

class TokenizerPreTokenizer {
 public:
  virtual ~TokenizerPreTokenizer() = default;
  // Replaces every piece of *pieces (well-formed UTF-8) by its parts, in order, dropping
  // empty parts, as PreTokenizedString::split does.
  virtual void PreTokenize(std::vector<std::string>* pieces) const = 0;
};

// Builds the pre-tokenizer described by `config`; a JSON null gives nullptr (the whole text
// is one piece). Unknown types, behaviors and bad regexes are errors that name them.
absl::StatusOr<std::unique_ptr<TokenizerPreTokenizer>> ParseTokenizerPreTokenizer(
    const nlohmann::json& config);

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_PRE_H_
