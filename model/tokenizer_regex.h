// A compiled PCRE2 regular expression (UTF + UCP, JIT) with the matching semantics that
// Hugging Face tokenizers get from Oniguruma (Ruby syntax): leftmost-first alternation,
// look-around, Unicode classes, ^ and $ at line boundaries, and Rust's find_iter rules for
// empty matches.
//
// Thread-safe: a compiled TokenizerRegex is immutable; matching uses per-thread scratch space.
#ifndef DSM_MODEL_TOKENIZER_REGEX_H_
#define DSM_MODEL_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsm {

class TokenizerRegex {
 public:
  // A [begin, end) byte range of a match.
  using Span = std::pair<std::size_t, std::size_t>;

  // Compiles `pattern`. With literal=true the pattern is matched as plain text.
  // Oniguruma escapes that PCRE2 reads differently are rewritten first: \s and \S follow
  // Unicode White_Space exactly, \h and \H are hex digits. Errors carry PCRE2's message and
  // the offset of the bad character.
  static absl::StatusOr<std::unique_ptr<TokenizerRegex>> Compile(absl::string_view pattern,
                                                                 bool literal = false);
  ~TokenizerRegex();
  TokenizerRegex(const TokenizerRegex&) = delete;
  TokenizerRegex& operator=(const TokenizerRegex&) = delete;

  // Every non-overlapping match in `text` (well-formed UTF-8), left to right, as Rust's
  // Regex::find_iter reports them: an empty match right after the previous match is skipped.
  // A PCRE2 run-time failure (resource limits) ends the search as if nothing else matched.
  std::vector<Span> FindAll(absl::string_view text) const;

  // The first match starting at or after `start`, if any.
  bool Find(absl::string_view text, std::size_t start, Span* match) const;

  const std::string& pattern() const { return pattern_; }

 private:
  TokenizerRegex(std::string pattern, void* code) : pattern_(std::move(pattern)), code_(code) {}

  std::string pattern_;
  void* code_;  // pcre2_code_8*, kept opaque so users need not include pcre2.h
};

}  // namespace dsm

#endif  // DSM_MODEL_TOKENIZER_REGEX_H_
