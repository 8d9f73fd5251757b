#include "model/tokenizer_normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_bytes.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_regex.h"

namespace dsm {
namespace {

using nlohmann::json;

bool IsAscii(absl::string_view text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// Unicode normalization form through ICU. ASCII text is invariant under every form, and text
// already in the form is returned as is, so the common case costs one scan.
class UnicodeFormNormalizer : public TokenizerNormalizer {
 public:
  explicit UnicodeFormNormalizer(const icu::Normalizer2* normalizer) : normalizer_(normalizer) {}

  std::string Normalize(absl::string_view text) const override {
    if (IsAscii(text)) return std::string(text);
    UErrorCode status = U_ZERO_ERROR;
    const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
    if (normalizer_->isNormalizedUTF8(piece, status) && U_SUCCESS(status)) {
      return std::string(text);
    }
    status = U_ZERO_ERROR;
    std::string out;
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
    normalizer_->normalizeUTF8(0, piece, sink, nullptr, status);
    // ICU fails only on allocation failure or ill-formed input, which callers rule out.
    return U_SUCCESS(status) ? out : std::string(text);
  }

 private:
  const icu::Normalizer2* normalizer_;  // owned by ICU, lives for the process
};

class SequenceNormalizer : public TokenizerNormalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<TokenizerNormalizer>> parts)
      : parts_(std::move(parts)) {}

  std::string Normalize(absl::string_view text) const override {
    std::string current(text);
    for (const auto& part : parts_) current = part->Normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<TokenizerNormalizer>> parts_;
};

class ReplaceNormalizer : public TokenizerNormalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<TokenizerRegex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}

  std::string Normalize(absl::string_view text) const override {
    std::string out;
    std::size_t pos = 0;
    for (const auto& [begin, end] : pattern_->FindAll(text)) {
      absl::StrAppend(&out, text.substr(pos, begin - pos), content_);
      pos = end;
    }
    absl::StrAppend(&out, text.substr(pos));
    return out;
  }

 private:
  std::unique_ptr<TokenizerRegex> pattern_;
  std::string content_;
};

class PrependNormalizer : public TokenizerNormalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(absl::string_view text) const override {
    return text.empty() ? std::string() : absl::StrCat(prefix_, text);
  }

 private:
  std::string prefix_;
};

class ByteLevelNormalizer : public TokenizerNormalizer {
 public:
  std::string Normalize(absl::string_view text) const override {
    return tokenizer_internal::ByteLevelEncode(text);
  }
};

absl::StatusOr<std::unique_ptr<TokenizerNormalizer>> MakeUnicodeForm(const std::string& type) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  if (type == "NFC") n = icu::Normalizer2::getNFCInstance(status);
  if (type == "NFD") n = icu::Normalizer2::getNFDInstance(status);
  if (type == "NFKC") n = icu::Normalizer2::getNFKCInstance(status);
  if (type == "NFKD") n = icu::Normalizer2::getNFKDInstance(status);
  if (n == nullptr || U_FAILURE(status)) {
    return absl::InternalError(
        absl::StrCat("ICU cannot provide the ", type, " normalizer: ", u_errorName(status)));
  }
  return std::make_unique<UnicodeFormNormalizer>(n);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerNormalizer>> ParseTokenizerNormalizer(const json& config) {
  if (config.is_null()) return nullptr;
  auto type = tokenizer_internal::GetString(config, "type", "normalizer");
  if (!type.ok()) return type.status();
  if (*type == "NFC" || *type == "NFD" || *type == "NFKC" || *type == "NFKD") {
    return MakeUnicodeForm(*type);
  }
  if (*type == "Sequence") {
    auto list = tokenizer_internal::GetArray(config, "normalizers", "Sequence normalizer");
    if (!list.ok()) return list.status();
    std::vector<std::unique_ptr<TokenizerNormalizer>> parts;
    for (const json& item : **list) {
      auto part = ParseTokenizerNormalizer(item);
      if (!part.ok()) return part.status();
      if (*part != nullptr) parts.push_back(*std::move(part));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (*type == "Replace") {
    auto pattern = tokenizer_internal::ParsePattern(config, "Replace normalizer");
    if (!pattern.ok()) return pattern.status();
    auto content = tokenizer_internal::GetString(config, "content", "Replace normalizer");
    if (!content.ok()) return content.status();
    return std::make_unique<ReplaceNormalizer>(*std::move(pattern), *std::move(content));
  }
  if (*type == "Prepend") {
    auto prefix = tokenizer_internal::GetString(config, "prepend", "Prepend normalizer");
    if (!prefix.ok()) return prefix.status();
    return std::make_unique<PrependNormalizer>(*std::move(prefix));
  }
  if (*type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  return absl::UnimplementedError(
      absl::StrCat("unsupported normalizer type '", *type,
                   "' (supported: NFC, NFD, NFKC, NFKD, Sequence, Replace, Prepend, ByteLevel)"));
}

}  // namespace dsm
