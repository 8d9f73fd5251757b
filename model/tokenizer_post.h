// The ends of a Hugging Face tokenizer.json pipeline: the post-processor ("post_processor", which
// adds special tokens such as BOS around encoded ids) and the decoder ("decoder", which turns
// tokens back into text).
//
// Post-processors: ByteLevel (ids unchanged), TemplateProcessing (single-sequence template),
// BertProcessing, RobertaProcessing, Sequence. Decoders: ByteLevel, Sequence.
// Implementations are immutable after parsing and thread-safe.
#ifndef DSM_MODEL_TOKENIZER_POST_H_
#define DSM_MODEL_TOKENIZER_POST_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dsm {

class TokenizerPostProcessor {
 public:
  virtual ~TokenizerPostProcessor() = default;
  // The final ids of one encoded sequence; special tokens only when `add_special_tokens`.
  virtual std::vector<int32_t> Process(std::vector<int32_t> ids, bool add_special_tokens) const = 0;
};

// A JSON null gives nullptr (ids unchanged).
absl::StatusOr<std::unique_ptr<TokenizerPostProcessor>> ParseTokenizerPostProcessor(
    const nlohmann::json& config);

class TokenizerDecoder {
 public:
  virtual ~TokenizerDecoder() = default;
  // Hugging Face's decode_chain: tokens in, strings out (concatenated by the caller).
  virtual std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const = 0;
};

// A JSON null gives nullptr (tokens are joined with spaces, as Hugging Face does).
absl::StatusOr<std::unique_ptr<TokenizerDecoder>> ParseTokenizerDecoder(
    const nlohmann::json& config);

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_POST_H_
