#include "model/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_io.h"
#include "model/tokenizer_added.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_bytes.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_normalizer.h"
#include "model/tokenizer_post.h"
#include "model/tokenizer_pre.h"

namespace dsm {
namespace {

using nlohmann::json;

// Marks where the sequence goes when probing the post-processor for BOS/EOS.
constexpr int32_t kSequenceSentinel = -7;

const json& FieldOrNull(const json& object, const char* key) {
  static const json* const kNull = new json(nullptr);
  const auto it = object.find(key);
  return it == object.end() ? *kNull : *it;
}

absl::StatusOr<std::vector<AddedToken>> ParseAddedTokens(const json& root) {
  std::vector<AddedToken> tokens;
  const json& list = FieldOrNull(root, "added_tokens");
  if (list.is_null()) return tokens;
  if (!list.is_array()) return absl::InvalidArgumentError("'added_tokens' must be an array");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json& item = list[i];
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer() ||
        item["id"].get<int64_t>() < 0 || item["id"].get<int64_t>() > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing non-negative integer 'id'"));
    }
    AddedToken token;
    token.id = item["id"].get<int32_t>();
    auto content = tokenizer_internal::GetString(item, "content", where);
    if (!content.ok()) return content.status();
    token.content = *std::move(content);
    auto special = tokenizer_internal::GetBool(item, "special", false, where);
    if (!special.ok()) return special.status();
    token.special = *special;
    const std::pair<const char*, bool*> flags[] = {{"single_word", &token.single_word},
                                                   {"lstrip", &token.lstrip},
                                                   {"rstrip", &token.rstrip},
                                                   {"normalized", &token.normalized}};
    for (const auto& [key, field] : flags) {
      // Hugging Face's default for `normalized` is "not special"; the others default to false.
      const bool default_value = absl::string_view(key) == "normalized" ? !token.special : false;
      auto value = tokenizer_internal::GetBool(item, key, default_value, where);
      if (!value.ok()) return value.status();
      *field = *value;
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// bos_token / eos_token of a tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> ConfigTokenName(const json& config, const char* key) {
  const json& field = FieldOrNull(config, key);
  if (field.is_string()) return field.get<std::string>();
  if (field.is_object() && field.contains("content") && field["content"].is_string()) {
    return field["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromFile(const std::string& path) {
  auto contents = ReadFileToString(path);
  if (!contents.ok()) return contents.status();
  auto tokenizer = FromJson(*contents);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  const std::filesystem::path config_path =
      std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(config_path, ec)) {
    auto config_text = ReadFileToString(config_path.string());
    if (!config_text.ok()) return config_text.status();
    const json config = json::parse(*config_text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path.string(), ": not a valid JSON object"));
    }
    const std::pair<const char*, std::optional<int32_t>*> ends[] = {
        {"bos_token", &(*tokenizer)->bos_id_}, {"eos_token", &(*tokenizer)->eos_id_}};
    for (const auto& [key, id] : ends) {
      if (config.contains(key) && config[key].is_null()) {
        id->reset();  // the model has none (Qwen's bos_token is null)
      } else if (auto name = ConfigTokenName(config, key)) {
        if (auto found = (*tokenizer)->TokenToId(*name)) *id = found;
      }
    }
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(absl::string_view text) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json is not valid JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError("tokenizer.json must be a JSON object");
  }
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  try {
    const json& model = FieldOrNull(root, "model");
    if (!model.is_object()) return absl::InvalidArgumentError("tokenizer.json has no 'model'");
    const json& model_type = FieldOrNull(model, "type");
    const bool is_bpe = model_type.is_null() ? model.contains("merges")
                                             : (model_type.is_string() && model_type == "BPE");
    if (!is_bpe) {
      return absl::UnimplementedError(
          absl::StrCat("unsupported model type ",
                       model_type.is_null() ? "(none)" : model_type.dump(), " (supported: BPE)"));
    }
    auto bpe = BpeModel::FromJson(model);
    if (!bpe.ok()) return bpe.status();
    tokenizer->model_ = *std::move(bpe);

    auto normalizer = ParseTokenizerNormalizer(FieldOrNull(root, "normalizer"));
    if (!normalizer.ok()) return normalizer.status();
    tokenizer->normalizer_ = *std::move(normalizer);
    auto pre_tokenizer = ParseTokenizerPreTokenizer(FieldOrNull(root, "pre_tokenizer"));
    if (!pre_tokenizer.ok()) return pre_tokenizer.status();
    tokenizer->pre_tokenizer_ = *std::move(pre_tokenizer);
    auto post_processor = ParseTokenizerPostProcessor(FieldOrNull(root, "post_processor"));
    if (!post_processor.ok()) return post_processor.status();
    tokenizer->post_processor_ = *std::move(post_processor);
    auto decoder = ParseTokenizerDecoder(FieldOrNull(root, "decoder"));
    if (!decoder.ok()) return decoder.status();
    tokenizer->decoder_ = *std::move(decoder);

    auto added = ParseAddedTokens(root);
    if (!added.ok()) return added.status();
    absl::flat_hash_set<int32_t> extra_ids;
    for (const AddedToken& token : *added) {
      if (tokenizer->model_->IdToToken(token.id) == nullptr) extra_ids.insert(token.id);
    }
    tokenizer->vocab_size_ =
        static_cast<int32_t>(tokenizer->model_->vocab_size() + extra_ids.size());
    tokenizer->added_ =
        std::make_unique<AddedVocabulary>(*std::move(added), tokenizer->normalizer_.get());
  } catch (const json::exception& e) {
    // Parsers check types before reading; this only catches what they missed.
    return absl::InvalidArgumentError(absl::StrCat("malformed tokenizer.json: ", e.what()));
  }
  tokenizer->DiscoverBosEos();
  return tokenizer;
}

void Tokenizer::DiscoverBosEos() {
  if (post_processor_ != nullptr) {
    const std::vector<int32_t> probe = post_processor_->Process({kSequenceSentinel}, true);
    for (std::size_t i = 0; i < probe.size(); ++i) {
      if (probe[i] != kSequenceSentinel) continue;
      if (i > 0) bos_id_ = probe[i - 1];
      if (i + 1 < probe.size()) eos_id_ = probe[i + 1];
    }
  }
  static constexpr const char* kBosNames[] = {"<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<s>",
                                              "<bos>", "<|startoftext|>"};
  static constexpr const char* kEosNames[] = {"<|end_of_text|>", "<｜end▁of▁sentence｜>", "</s>",
                                              "<eos>", "<|endoftext|>"};
  // Only added tokens count: a model vocabulary may hold "<s>" as ordinary text.
  for (const char* name : kBosNames) {
    if (!bos_id_) bos_id_ = added_->FindByContent(name);
  }
  for (const char* name : kEosNames) {
    if (!eos_id_) eos_id_ = added_->FindByContent(name);
  }
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view input, bool add_special_tokens) const {
  std::string repaired;
  absl::string_view text = input;
  if (!tokenizer_internal::IsValidUtf8(text)) {
    repaired = tokenizer_internal::Utf8Lossy(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::vector<std::string> pieces;
  for (const AddedVocabulary::Segment& segment : added_->Split(text, /*normalized=*/false)) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    if (segment.end == segment.begin) continue;
    const absl::string_view raw = text.substr(segment.begin, segment.end - segment.begin);
    const std::string normalized =
        normalizer_ != nullptr ? normalizer_->Normalize(raw) : std::string(raw);
    for (const AddedVocabulary::Segment& part : added_->Split(normalized, /*normalized=*/true)) {
      if (part.id >= 0) {
        ids.push_back(part.id);
        continue;
      }
      if (part.end == part.begin) continue;
      pieces.clear();
      pieces.push_back(normalized.substr(part.begin, part.end - part.begin));
      if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(&pieces);
      for (const std::string& piece : pieces) model_->Tokenize(piece, &ids);
    }
  }
  if (post_processor_ != nullptr) {
    ids = post_processor_->Process(std::move(ids), add_special_tokens);
  }
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const AddedToken* added = added_->FindById(id);
    const std::string* token = added != nullptr ? &added->content : model_->IdToToken(id);
    if (token == nullptr) continue;
    if (skip_special_tokens && added_->IsSpecialContent(*token)) continue;
    tokens.push_back(*token);
  }
  if (decoder_ == nullptr) return absl::StrJoin(tokens, " ");
  return absl::StrJoin(decoder_->DecodeChain(std::move(tokens)), "");
}

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* added = added_->FindById(id)) return added->content;
  if (const std::string* token = model_->IdToToken(id)) return *token;
  return std::nullopt;
}

std::optional<int32_t> Tokenizer::TokenToId(absl::string_view token) const {
  if (auto id = added_->FindByContent(token)) return id;
  return model_->TokenToId(token);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* added = added_->FindById(id);
  return added != nullptr && added->special;
}

}  // namespace dsm
