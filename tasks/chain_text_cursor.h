// ChainTextCursor: reads the chain domain's small grammar (variables, facts "a=b", keywords)
// from arbitrary text, skipping blanks between items. Used by ParseChainStatement and the
// checker; never reads past the end, whatever the input.
//
// Not thread-safe (one per parse); views the text it is given, which must outlive it.
#ifndef DSM_TASKS_CHAIN_TEXT_CURSOR_H_
#define DSM_TASKS_CHAIN_TEXT_CURSOR_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "tasks/chain_domain.h"

namespace dsm {

class ChainTextCursor {
 public:
  explicit ChainTextCursor(absl::string_view text) : text_(text) {}

  std::size_t pos() const { return pos_; }
  bool AtEnd() {
    SkipBlanks();
    return pos_ >= text_.size();
  }

  // Consumes `word` (after blanks) if it comes next.
  bool Consume(absl::string_view word) {
    SkipBlanks();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // A variable: one lower-case letter not followed by another letter.
  std::optional<char> Variable() {
    SkipBlanks();
    if (pos_ >= text_.size() || !IsLower(text_[pos_])) return std::nullopt;
    if (pos_ + 1 < text_.size() && IsLetter(text_[pos_ + 1])) return std::nullopt;
    return text_[pos_++];
  }

  // "x=y".
  std::optional<ChainFact> Fact() {
    const std::size_t start = pos_;
    auto lhs = Variable();
    if (lhs && Consume("=")) {
      if (auto rhs = Variable()) return ChainFact{*lhs, *rhs};
    }
    pos_ = start;
    return std::nullopt;
  }

  // A run of 1 to 9 decimal digits, as written.
  std::optional<std::string> Number() {
    SkipBlanks();
    std::size_t end = pos_;
    while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') ++end;
    if (end == pos_ || end - pos_ > 9) return std::nullopt;
    std::string digits(text_.substr(pos_, end - pos_));
    pos_ = end;
    return digits;
  }

 private:
  static bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
  static bool IsLetter(char c) { return IsLower(c) || (c >= 'A' && c <= 'Z'); }
  void SkipBlanks() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  absl::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_TEXT_CURSOR_H_
