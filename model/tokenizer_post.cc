#include "model/tokenizer_post.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_bytes.h"
#include "model/tokenizer_json.h"

namespace dsm {
namespace {

using nlohmann::json;

class IdentityPostProcessor : public TokenizerPostProcessor {
 public:
  std::vector<int32_t> Process(std::vector<int32_t> ids, bool) const override { return ids; }
};

// Ids to put before and after the sequence (TemplateProcessing's single template, or
// Bert/Roberta's [CLS] A [SEP]).
class WrapPostProcessor : public TokenizerPostProcessor {
 public:
  WrapPostProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}

  std::vector<int32_t> Process(std::vector<int32_t> ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return ids;
    std::vector<int32_t> out;
    out.reserve(before_.size() + ids.size() + after_.size());
    out.insert(out.end(), before_.begin(), before_.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    return out;
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
};

class SequencePostProcessor : public TokenizerPostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<TokenizerPostProcessor>> parts)
      : parts_(std::move(parts)) {}

  std::vector<int32_t> Process(std::vector<int32_t> ids, bool add_special_tokens) const override {
    for (const auto& part : parts_) ids = part->Process(std::move(ids), add_special_tokens);
    return ids;
  }

 private:
  std::vector<std::unique_ptr<TokenizerPostProcessor>> parts_;
};

absl::StatusOr<std::unique_ptr<TokenizerPostProcessor>> ParseTemplate(const json& config) {
  constexpr absl::string_view kWhere = "TemplateProcessing post-processor";
  auto single = tokenizer_internal::GetArray(config, "single", kWhere);
  if (!single.ok()) return single.status();
  const json* special_tokens =
      config.contains("special_tokens") ? &config["special_tokens"] : nullptr;
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const json& piece : **single) {
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id") ||
        !piece["SpecialToken"]["id"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          kWhere,
          ": template pieces must be {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": "
          "...}}, got ",
          piece.dump().substr(0, 100)));
    }
    const std::string name = piece["SpecialToken"]["id"].get<std::string>();
    if (special_tokens == nullptr || !special_tokens->contains(name) ||
        !(*special_tokens)[name].contains("ids") || !(*special_tokens)[name]["ids"].is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kWhere, ": special token '", name, "' is missing from special_tokens"));
    }
    for (const json& id : (*special_tokens)[name]["ids"]) {
      if (!id.is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(kWhere, ": special token '", name, "' has a non-integer id"));
      }
      (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
  }
  return std::make_unique<WrapPostProcessor>(std::move(before), std::move(after));
}

// BertProcessing / RobertaProcessing: "cls": ["[CLS]", 101], "sep": ["[SEP]", 102].
absl::StatusOr<std::unique_ptr<TokenizerPostProcessor>> ParseClsSep(const json& config,
                                                                    const std::string& type) {
  int32_t ids[2];
  const char* keys[2] = {"cls", "sep"};
  for (int k = 0; k < 2; ++k) {
    if (!config.contains(keys[k]) || !config[keys[k]].is_array() || config[keys[k]].size() != 2 ||
        !config[keys[k]][1].is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(type, " post-processor: field '", keys[k], "' must be [token, id]"));
    }
    ids[k] = config[keys[k]][1].get<int32_t>();
  }
  return std::make_unique<WrapPostProcessor>(std::vector<int32_t>{ids[0]},
                                             std::vector<int32_t>{ids[1]});
}

// ByteLevel decoder: every token's characters back to bytes through the GPT-2 table (a token
// with a character outside the table, such as an added token, keeps its own UTF-8 bytes),
// then the bytes to text with ill-formed sequences replaced by U+FFFD.
class ByteLevelDecoder : public TokenizerDecoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& token : tokens) {
      token_bytes.clear();
      bool mapped = true;
      for (std::size_t pos = 0; pos < token.size();) {
        std::size_t len = 0;
        const int byte =
            tokenizer_internal::UnicodeToByte(tokenizer_internal::DecodeUtf8At(token, pos, &len));
        if (byte < 0) {
          mapped = false;
          break;
        }
        token_bytes.push_back(static_cast<char>(byte));
        pos += len;
      }
      bytes += mapped ? token_bytes : token;
    }
    return {tokenizer_internal::Utf8Lossy(bytes)};
  }
};

class SequenceDecoder : public TokenizerDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<TokenizerDecoder>> parts)
      : parts_(std::move(parts)) {}

  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (const auto& part : parts_) tokens = part->DecodeChain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<TokenizerDecoder>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenizerPostProcessor>> ParseTokenizerPostProcessor(
    const json& config) {
  if (config.is_null()) return nullptr;
  auto type = tokenizer_internal::GetString(config, "type", "post_processor");
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return std::make_unique<IdentityPostProcessor>();
  if (*type == "TemplateProcessing") return ParseTemplate(config);
  if (*type == "BertProcessing" || *type == "RobertaProcessing") return ParseClsSep(config, *type);
  if (*type == "Sequence") {
    auto list = tokenizer_internal::GetArray(config, "processors", "Sequence post-processor");
    if (!list.ok()) return list.status();
    std::vector<std::unique_ptr<TokenizerPostProcessor>> parts;
    for (const json& item : **list) {
      auto part = ParseTokenizerPostProcessor(item);
      if (!part.ok()) return part.status();
      if (*part != nullptr) parts.push_back(*std::move(part));
    }
    return std::make_unique<SequencePostProcessor>(std::move(parts));
  }
  return absl::UnimplementedError(absl::StrCat(
      "unsupported post-processor type '", *type,
      "' (supported: ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence)"));
}

absl::StatusOr<std::unique_ptr<TokenizerDecoder>> ParseTokenizerDecoder(const json& config) {
  if (config.is_null()) return nullptr;
  auto type = tokenizer_internal::GetString(config, "type", "decoder");
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (*type == "Sequence") {
    auto list = tokenizer_internal::GetArray(config, "decoders", "Sequence decoder");
    if (!list.ok()) return list.status();
    std::vector<std::unique_ptr<TokenizerDecoder>> parts;
    for (const json& item : **list) {
      auto part = ParseTokenizerDecoder(item);
      if (!part.ok()) return part.status();
      if (*part != nullptr) parts.push_back(*std::move(part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return absl::UnimplementedError(
      absl::StrCat("unsupported decoder type '", *type, "' (supported: ByteLevel, Sequence)"));
}

}  // namespace dsm
