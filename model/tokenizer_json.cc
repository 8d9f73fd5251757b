#include "model/tokenizer_json.h"

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dsm::tokenizer_internal {

using nlohmann::json;

namespace {

const json* Field(const json& object, absl::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

absl::Status NotAnObject(absl::string_view where) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": expected a JSON object"));
}

}  // namespace

absl::StatusOr<std::string> GetString(const json& object, absl::string_view key,
                                      absl::string_view where) {
  if (!object.is_object()) return NotAnObject(where);
  const json* field = Field(object, key);
  if (field == nullptr || !field->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing string field '", key, "'"));
  }
  return field->get<std::string>();
}

absl::StatusOr<std::optional<std::string>> GetOptionalString(const json& object,
                                                             absl::string_view key,
                                                             absl::string_view where) {
  if (!object.is_object()) return NotAnObject(where);
  const json* field = Field(object, key);
  if (field == nullptr || field->is_null()) return std::optional<std::string>();
  if (!field->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": field '", key, "' must be a string or null"));
  }
  return std::optional<std::string>(field->get<std::string>());
}

absl::StatusOr<bool> GetBool(const json& object, absl::string_view key, bool default_value,
                             absl::string_view where) {
  if (!object.is_object()) return NotAnObject(where);
  const json* field = Field(object, key);
  if (field == nullptr || field->is_null()) return default_value;
  if (!field->is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": field '", key, "' must be true or false"));
  }
  return field->get<bool>();
}

absl::StatusOr<const json*> GetArray(const json& object, absl::string_view key,
                                     absl::string_view where) {
  if (!object.is_object()) return NotAnObject(where);
  const json* field = Field(object, key);
  if (field == nullptr || !field->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing array field '", key, "'"));
  }
  return field;
}

absl::StatusOr<std::unique_ptr<TokenizerRegex>> ParsePattern(const json& object,
                                                             absl::string_view where) {
  if (!object.is_object()) return NotAnObject(where);
  const json* pattern = Field(object, "pattern");
  if (pattern == nullptr || !pattern->is_object() || pattern->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": field 'pattern' must be {\"Regex\": \"...\"} or {\"String\": \"...\"}"));
  }
  const auto entry = pattern->begin();
  const std::string& kind = entry.key();
  const json& value = entry.value();
  if ((kind != "Regex" && kind != "String") || !value.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": field 'pattern' must be {\"Regex\": \"...\"} or {\"String\": \"...\"}"));
  }
  auto regex = TokenizerRegex::Compile(value.get<std::string>(), /*literal=*/kind == "String");
  if (!regex.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", regex.status().message()));
  }
  return regex;
}

}  // namespace dsm::tokenizer_internal
