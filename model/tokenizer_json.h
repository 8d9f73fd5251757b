// Typed field access for parsing tokenizer.json, with errors that say where and what.
#ifndef DSM_MODEL_TOKENIZER_JSON_H_
#define DSM_MODEL_TOKENIZER_JSON_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/tokenizer_regex.h"

namespace dsm::tokenizer_internal {

// `where` names the object being parsed ("Split pre-tokenizer"), for error messages.

// A required string field.
absl::StatusOr<std::string> GetString(const nlohmann::json& object, absl::string_view key,
                                      absl::string_view where);

// An optional string field: missing or null gives nullopt.
absl::StatusOr<std::optional<std::string>> GetOptionalString(const nlohmann::json& object,
                                                             absl::string_view key,
                                                             absl::string_view where);

// An optional boolean field: missing or null gives `default_value`.
absl::StatusOr<bool> GetBool(const nlohmann::json& object, absl::string_view key,
                             bool default_value, absl::string_view where);

// A required array field.
absl::StatusOr<const nlohmann::json*> GetArray(const nlohmann::json& object, absl::string_view key,
                                               absl::string_view where);

// The "pattern" field of Split / Replace: {"Regex": "..."} or {"String": "..."} (matched
// literally), compiled.
absl::StatusOr<std::unique_ptr<TokenizerRegex>> ParsePattern(const nlohmann::json& object,
                                                             absl::string_view where);

}  // namespace dsm::tokenizer_internal

#endif  // DSM_MODEL_TOKENIZER_JSON_H_
