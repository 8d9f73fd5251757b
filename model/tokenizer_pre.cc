#include "model/tokenizer_pre.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_bytes.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_regex.h"

namespace dsm {
namespace {

using nlohmann::json;
using Span = TokenizerRegex::Span;

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The GPT-2 pattern that ByteLevel uses when use_regex is true.
constexpr absl::string_view kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Cuts `piece` at `matches` following NormalizedString::split in Hugging Face tokenizers,
// appending the non-empty parts to *out.
void SplitPiece(const std::string& piece, const std::vector<Span>& matches, bool invert,
                SplitBehavior behavior, std::vector<std::string>* out) {
  // 1. Cover the piece with (span, is_match) segments.
  std::vector<std::pair<Span, bool>> segments;
  if (piece.empty()) {
    segments.push_back({{0, 0}, false});
  } else {
    std::size_t prev = 0;
    for (const Span& m : matches) {
      if (prev != m.first) segments.push_back({{prev, m.first}, false});
      segments.push_back({m, true});
      prev = m.second;
    }
    if (prev != piece.size()) segments.push_back({{prev, piece.size()}, false});
  }
  if (invert) {
    for (auto& segment : segments) segment.second = !segment.second;
  }

  // 2. Apply the behavior: (span, remove) pairs.
  std::vector<std::pair<Span, bool>> parts;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      parts = segments;
      break;
    case SplitBehavior::kIsolated:
      for (const auto& [span, is_match] : segments) parts.push_back({span, false});
      break;
    case SplitBehavior::kContiguous:
      for (const auto& [span, is_match] : segments) {
        if (is_match == previous_match && !parts.empty()) {
          parts.back().first.second = span.second;
        } else {
          parts.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& [span, is_match] : segments) {
        if (is_match && !previous_match && !parts.empty()) {
          parts.back().first.second = span.second;
        } else {
          parts.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        const auto& [span, is_match] = *it;
        if (is_match && !previous_match && !parts.empty()) {
          parts.back().first.first = span.first;
        } else {
          parts.push_back({span, false});
        }
        previous_match = is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
  }

  // 3. Keep what is neither removed nor empty.
  for (const auto& [span, remove] : parts) {
    if (!remove && span.second > span.first) {
      out->push_back(piece.substr(span.first, span.second - span.first));
    }
  }
}

class SplitPreTokenizer : public TokenizerPreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<TokenizerRegex> pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

  void PreTokenize(std::vector<std::string>* pieces) const override {
    std::vector<std::string> out;
    out.reserve(pieces->size());
    for (const std::string& piece : *pieces) {
      SplitPiece(piece, pattern_->FindAll(piece), invert_, behavior_, &out);
    }
    *pieces = std::move(out);
  }

 private:
  std::unique_ptr<TokenizerRegex> pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public TokenizerPreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<TokenizerRegex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  void PreTokenize(std::vector<std::string>* pieces) const override {
    std::vector<std::string> split;
    split.reserve(pieces->size());
    for (std::string& piece : *pieces) {
      if (piece.empty()) continue;  // never produced by the pipeline; Rust has none either
      if (add_prefix_space_ && piece[0] != ' ') piece.insert(0, " ");
      if (regex_ != nullptr) {
        SplitPiece(piece, regex_->FindAll(piece), false, SplitBehavior::kIsolated, &split);
      } else {
        split.push_back(std::move(piece));
      }
    }
    for (std::string& piece : split) piece = tokenizer_internal::ByteLevelEncode(piece);
    *pieces = std::move(split);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<TokenizerRegex> regex_;  // null when use_regex is false
};

class SequencePreTokenizer : public TokenizerPreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<TokenizerPreTokenizer>> parts)
      : parts_(std::move(parts)) {}

  void PreTokenize(std::vector<std::string>* pieces) const override {
    for (const auto& part : parts_) part->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<TokenizerPreTokenizer>> parts_;
};

absl::StatusOr<SplitBehavior> ParseBehavior(const json& config, absl::string_view where) {
  auto name = tokenizer_internal::GetString(config, "behavior", where);
  if (!name.ok()) return name.status();
  if (*name == "Removed") return SplitBehavior::kRemoved;
  if (*name == "Isolated") return SplitBehavior::kIsolated;
  if (*name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (*name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (*name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": unknown behavior '", *name,
      "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)"));
}

absl::StatusOr<std::unique_ptr<TokenizerPreTokenizer>> ParseSplit(const json& config) {
  constexpr absl::string_view kWhere = "Split pre-tokenizer";
  auto pattern = tokenizer_internal::ParsePattern(config, kWhere);
  if (!pattern.ok()) return pattern.status();
  auto behavior = ParseBehavior(config, kWhere);
  if (!behavior.ok()) return behavior.status();
  auto invert = tokenizer_internal::GetBool(config, "invert", false, kWhere);
  if (!invert.ok()) return invert.status();
  return std::make_unique<SplitPreTokenizer>(*std::move(pattern), *behavior, *invert);
}

absl::StatusOr<std::unique_ptr<TokenizerPreTokenizer>> ParseByteLevel(const json& config) {
  constexpr absl::string_view kWhere = "ByteLevel pre-tokenizer";
  auto add_prefix_space = tokenizer_internal::GetBool(config, "add_prefix_space", true, kWhere);
  if (!add_prefix_space.ok()) return add_prefix_space.status();
  auto use_regex = tokenizer_internal::GetBool(config, "use_regex", true, kWhere);
  if (!use_regex.ok()) return use_regex.status();
  std::unique_ptr<TokenizerRegex> regex;
  if (*use_regex) {
    auto compiled = TokenizerRegex::Compile(kByteLevelPattern);
    if (!compiled.ok()) return compiled.status();
    regex = *std::move(compiled);
  }
  return std::make_unique<ByteLevelPreTokenizer>(*add_prefix_space, std::move(regex));
}

absl::StatusOr<std::unique_ptr<TokenizerPreTokenizer>> ParseDigits(const json& config) {
  auto individual =
      tokenizer_internal::GetBool(config, "individual_digits", false, "Digits pre-tokenizer");
  if (!individual.ok()) return individual.status();
  // Rust splits on char::is_numeric, i.e. one match per \p{N} character.
  auto digit = TokenizerRegex::Compile(R"(\p{N})");
  if (!digit.ok()) return digit.status();
  return std::make_unique<SplitPreTokenizer>(
      *std::move(digit), *individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
      /*invert=*/false);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerPreTokenizer>> ParseTokenizerPreTokenizer(
    const json& config) {
  if (config.is_null()) return nullptr;
  auto type = tokenizer_internal::GetString(config, "type", "pre_tokenizer");
  if (!type.ok()) return type.status();
  if (*type == "Split") return ParseSplit(config);
  if (*type == "ByteLevel") return ParseByteLevel(config);
  if (*type == "Digits") return ParseDigits(config);
  if (*type == "Sequence") {
    auto list = tokenizer_internal::GetArray(config, "pretokenizers", "Sequence pre-tokenizer");
    if (!list.ok()) return list.status();
    std::vector<std::unique_ptr<TokenizerPreTokenizer>> parts;
    for (const json& item : **list) {
      auto part = ParseTokenizerPreTokenizer(item);
      if (!part.ok()) return part.status();
      if (*part != nullptr) parts.push_back(*std::move(part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported pre-tokenizer type '", *type,
                   "' (supported: Sequence, Split, ByteLevel, Digits)"));
}

}  // namespace dsm
