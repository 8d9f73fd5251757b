#include "common/config_reader.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dsm {

std::string DescribeYaml(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "null";
    case YAML::NodeType::Scalar:
      break;
  }
  std::string value = node.Scalar();
  if (value.size() > 60) value = value.substr(0, 57) + "...";
  return QuoteValue(value);
}

std::string QuoteValue(const std::string& value) {
  std::string out = "\"";
  for (const char ch : value) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          out += absl::StrCat("\\x", absl::Hex(static_cast<unsigned char>(ch), absl::kZeroPad2));
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

ConfigReader::ConfigReader(const YAML::Node& node, std::string path)
    : ConfigReader(std::make_shared<Frame>(), std::make_shared<std::string>()) {
  frame_->node = node;
  frame_->path = std::move(path);
  if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
    Fail(frame_->path.empty() ? absl::StrCat("the document must be a map, got ", DescribeYaml(node))
                              : absl::StrCat(frame_->path, ": expected a map, got ",
                                             DescribeYaml(node)));
  }
}

ConfigReader::ConfigReader(std::shared_ptr<Frame> frame, std::shared_ptr<std::string> error)
    : frame_(std::move(frame)), error_(std::move(error)) {}

std::string ConfigReader::Join(const char* key) const {
  return frame_->path.empty() ? std::string(key) : absl::StrCat(frame_->path, ".", key);
}

bool ConfigReader::Has(const char* key) const {
  if (!frame_->node.IsMap()) return false;
  const YAML::Node value = frame_->node[key];
  return value.IsDefined() && !value.IsNull();
}

void ConfigReader::Fail(std::string message) {
  if (error_->empty()) *error_ = std::move(message);
}

bool ConfigReader::Enter(const char* key, YAML::Node* value) {
  frame_->used.insert(key);
  if (!error_->empty() || !Has(key)) return false;
  *value = frame_->node[key];
  return true;
}

namespace {

template <typename T>
bool ReadScalar(const YAML::Node& node, T* out) {
  if (!node.IsScalar()) return false;
  try {
    *out = node.as<T>();
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

}  // namespace

void ConfigReader::Optional(const char* key, bool* out) {
  YAML::Node v;
  if (!Enter(key, &v)) return;
  if (!ReadScalar(v, out)) Fail(absl::StrCat(Join(key), ": expected true or false, got ", DescribeYaml(v)));
}

void ConfigReader::Optional(const char* key, int64_t* out) {
  YAML::Node v;
  if (!Enter(key, &v)) return;
  long long parsed = 0;
  if (!ReadScalar(v, &parsed)) {
    Fail(absl::StrCat(Join(key), ": expected an integer, got ", DescribeYaml(v)));
    return;
  }
  *out = parsed;
}

void ConfigReader::Optional(const char* key, int* out) {
  int64_t wide = *out;
  if (!Has(key)) {
    frame_->used.insert(key);
    return;
  }
  Optional(key, &wide);
  if (!error_->empty()) return;
  if (wide < INT32_MIN || wide > INT32_MAX) {
    Fail(absl::StrCat(Join(key), ": ", wide, " does not fit in a 32-bit integer"));
    return;
  }
  *out = static_cast<int>(wide);
}

void ConfigReader::Optional(const char* key, double* out) {
  YAML::Node v;
  if (!Enter(key, &v)) return;
  if (!ReadScalar(v, out)) Fail(absl::StrCat(Join(key), ": expected a number, got ", DescribeYaml(v)));
}

void ConfigReader::Optional(const char* key, std::string* out) {
  YAML::Node v;
  if (!Enter(key, &v)) return;
  if (!v.IsScalar()) {
    Fail(absl::StrCat(Join(key), ": expected a string, got ", DescribeYaml(v)));
    return;
  }
  *out = v.Scalar();
}

void ConfigReader::Optional(const char* key, std::vector<std::string>* out) {
  YAML::Node v;
  if (!Enter(key, &v)) return;
  if (!v.IsSequence()) {
    Fail(absl::StrCat(Join(key), ": expected a list of strings, got ", DescribeYaml(v)));
    return;
  }
  std::vector<std::string> values;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].IsScalar()) {
      Fail(absl::StrCat(Join(key), "[", i, "]: expected a string, got ", DescribeYaml(v[i])));
      return;
    }
    values.push_back(v[i].Scalar());
  }
  *out = std::move(values);
}

void ConfigReader::OneOf(const char* key, const std::vector<std::string>& allowed,
                         std::string* out) {
  std::string value = *out;
  if (!Has(key)) {
    frame_->used.insert(key);
    return;
  }
  Optional(key, &value);
  if (!error_->empty()) return;
  for (const std::string& a : allowed) {
    if (a == value) {
      *out = value;
      return;
    }
  }
  Fail(absl::StrCat(Join(key), ": ", QuoteValue(value), " is not one of ", absl::StrJoin(allowed, ", ")));
}

ConfigReader ConfigReader::Section(const char* key) {
  frame_->used.insert(key);
  for (auto& [name, frame] : frame_->sections) {
    if (name == key) return ConfigReader(frame, error_);
  }
  auto child = std::make_shared<Frame>();
  child->path = Join(key);
  if (frame_->node.IsMap()) {
    const YAML::Node value = frame_->node[key];
    if (value.IsDefined() && !value.IsNull()) {
      if (!value.IsMap()) {
        Fail(absl::StrCat(child->path, ": expected a map, got ", DescribeYaml(value)));
      } else {
        child->node = value;
      }
    }
  }
  frame_->sections.emplace_back(key, child);
  return ConfigReader(child, error_);
}

std::vector<std::string> ConfigReader::SectionKeys(const char* key) {
  std::vector<std::string> keys;
  if (!Has(key)) return keys;
  const YAML::Node value = frame_->node[key];
  if (!value.IsMap()) return keys;  // Section() reports the type error
  for (const auto& entry : value) keys.push_back(entry.first.Scalar());
  return keys;
}

std::string ConfigReader::FirstUnknownKey(const Frame& frame) {
  if (frame.node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& entry : frame.node) {
      const std::string key = entry.first.Scalar();
      if (!seen.insert(key).second) {
        // YAML forbids it; the parser would silently keep one of the two values.
        return absl::StrCat("duplicate key \"", frame.path.empty() ? key : frame.path + "." + key, "\" (line ",
                            entry.first.Mark().line + 1, ")");
      }
      if (frame.used.count(key) == 0) {
        std::vector<std::string> known(frame.used.begin(), frame.used.end());
        const std::string where = frame.path.empty() ? "at the top level" : "in \"" + frame.path + "\"";
        return absl::StrCat("unknown key \"", frame.path.empty() ? key : frame.path + "." + key,
                            "\" (allowed ", where, ": ", absl::StrJoin(known, ", "), ")");
      }
    }
  }
  for (const auto& [name, child] : frame.sections) {
    std::string unknown = FirstUnknownKey(*child);
    if (!unknown.empty()) return unknown;
  }
  return "";
}

absl::Status ConfigReader::Finish() {
  if (error_->empty()) *error_ = FirstUnknownKey(*frame_);
  if (error_->empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(*error_);
}

}  // namespace dsm
