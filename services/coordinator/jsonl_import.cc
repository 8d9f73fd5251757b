#include "services/coordinator/jsonl_import.h"

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace dsm {
namespace {

using Json = nlohmann::ordered_json;

const char* TypeName(const Json& v) {
  if (v.is_string()) return "a string";
  if (v.is_number()) return "a number";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// One settable field of a record kind.
struct FieldSpec {
  const char* name;       // proto field name
  const char* json_name;  // proto3 JSON name
  // Sets the field from a non-null value; returns an error message (without the field) or "".
  std::function<std::string(const Json&, v1::ImportRecordsRequest*)> set;
};

std::string ExpectString(const Json& v, std::string* out) {
  if (!v.is_string()) return absl::StrCat("expected a string, got ", TypeName(v));
  *out = v.get<std::string>();
  return "";
}

std::string ExpectNumber(const Json& v, double* out) {
  if (!v.is_number()) return absl::StrCat("expected a number, got ", TypeName(v));
  *out = v.get<double>();
  return "";
}

template <typename Setter>
FieldSpec StringField(const char* name, const char* json_name, Setter setter) {
  return FieldSpec{name, json_name, [setter](const Json& v, v1::ImportRecordsRequest* r) {
                     std::string s;
                     std::string error = ExpectString(v, &s);
                     if (error.empty()) setter(r, std::move(s));
                     return error;
                   }};
}

template <typename Setter>
FieldSpec NumberField(const char* name, const char* json_name, Setter setter) {
  return FieldSpec{name, json_name, [setter](const Json& v, v1::ImportRecordsRequest* r) {
                     double d = 0;
                     std::string error = ExpectNumber(v, &d);
                     if (error.empty()) setter(r, d);
                     return error;
                   }};
}

std::string SetSplit(const Json& v, v1::ImportRecordsRequest* r) {
  v1::DatasetSplit split = v1::DATASET_SPLIT_UNSPECIFIED;
  if (v.is_string()) {
    if (!v1::DatasetSplit_Parse(v.get<std::string>(), &split)) {
      return absl::StrCat("\"", v.get<std::string>(), "\" is not DATASET_SPLIT_TRAIN or DATASET_SPLIT_EVAL");
    }
  } else if (v.is_number_integer()) {
    const int64_t n = v.get<int64_t>();
    if (n < 0 || n > 2 || !v1::DatasetSplit_IsValid(static_cast<int>(n))) {
      return absl::StrCat(n, " is not a DatasetSplit (0, 1, 2)");
    }
    split = static_cast<v1::DatasetSplit>(n);
  } else {
    return absl::StrCat("expected a DatasetSplit name or number, got ", TypeName(v));
  }
  r->mutable_problem()->set_split(split);
  return "";
}

const std::vector<FieldSpec>& ProblemFields() {
  static const auto* fields = new std::vector<FieldSpec>{
      StringField(
          "problem_id", "problemId",
          [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_problem()->set_problem_id(std::move(s)); }),
      StringField(
          "statement", "statement",
          [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_problem()->set_statement(std::move(s)); }),
      FieldSpec{"split", "split", SetSplit},
      StringField("source", "source",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_problem()->set_source(std::move(s)); }),
  };
  return *fields;
}

const std::vector<FieldSpec>& ProofFields() {
  static const auto* fields = new std::vector<FieldSpec>{
      StringField("proof_id", "proofId",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_proof()->set_proof_id(std::move(s)); }),
      StringField("problem_id", "problemId",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_proof()->set_problem_id(std::move(s)); }),
      StringField("proof", "proof",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_proof()->set_proof(std::move(s)); }),
      NumberField("score", "score", [](v1::ImportRecordsRequest* r, double d) { r->mutable_proof()->set_score(d); }),
      StringField("issue", "issue",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_proof()->set_issue(std::move(s)); }),
      StringField("labeller", "labeller",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_proof()->set_labeller(std::move(s)); }),
  };
  return *fields;
}

const std::vector<FieldSpec>& AnalysisFields() {
  static const auto* fields = new std::vector<FieldSpec>{
      StringField(
          "analysis_id", "analysisId",
          [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_analysis()->set_analysis_id(std::move(s)); }),
      StringField(
          "proof_id", "proofId",
          [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_analysis()->set_proof_id(std::move(s)); }),
      StringField(
          "analysis", "analysis",
          [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_analysis()->set_analysis(std::move(s)); }),
      NumberField("meta_score", "metaScore",
                  [](v1::ImportRecordsRequest* r, double d) { r->mutable_analysis()->set_meta_score(d); }),
      StringField("issue", "issue",
                  [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_analysis()->set_issue(std::move(s)); }),
      StringField(
          "labeller", "labeller",
          [](v1::ImportRecordsRequest* r, std::string s) { r->mutable_analysis()->set_labeller(std::move(s)); }),
  };
  return *fields;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix,
// and "line 1, column N" shortened to "column N" (a JSONL record is one line).
std::string CleanParseError(const std::string& what) {
  absl::string_view m = what;
  if (absl::StartsWith(m, "[json.exception.")) {
    const size_t close = m.find("] ");
    if (close != absl::string_view::npos) m.remove_prefix(close + 2);
  }
  std::string out(m);
  const std::string from = "at line 1, column ";
  const size_t pos = out.find(from);
  if (pos != std::string::npos) out.replace(pos, from.size(), "at column ");
  return out;
}

JsonlRecordKind KindOf(const Json& object) {
  if (object.contains("analysis_id") || object.contains("analysisId")) return JsonlRecordKind::kAnalysis;
  if (object.contains("proof_id") || object.contains("proofId")) return JsonlRecordKind::kProof;
  return JsonlRecordKind::kProblem;
}

uint64_t MaxLineBytes(const JsonlOptions& options) {
  return options.max_line_bytes > 0 ? options.max_line_bytes : 4 * options.limits.max_text_bytes + (64 << 10);
}

}  // namespace

std::optional<RecordIssue> ParseJsonlLine(absl::string_view line, const JsonlOptions& options,
                                          v1::ImportRecordsRequest* out) {
  const uint64_t max_line = MaxLineBytes(options);
  if (line.size() > max_line) {
    return RecordIssue{"line", absl::StrCat(line.size(), " bytes > max_line_bytes ", max_line)};
  }
  // Repeated keys of the record itself (depth 1) are an error, not "last wins".
  std::set<std::string> keys;
  std::string repeated;
  Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      std::string key = parsed.get<std::string>();
      if (!keys.insert(key).second && repeated.empty()) repeated = key;
    }
    return true;
  };
  Json object;
  try {
    object = Json::parse(line.begin(), line.end(), callback);
  } catch (const Json::exception& e) {
    return RecordIssue{"json", CleanParseError(e.what())};
  }
  if (!object.is_object()) return RecordIssue{"json", absl::StrCat("expected an object, got ", TypeName(object))};

  JsonlRecordKind kind = options.kind == JsonlRecordKind::kAuto ? KindOf(object) : options.kind;
  const std::vector<FieldSpec>* fields = nullptr;
  const char* prefix = "";
  out->clear_record();
  switch (kind) {
    case JsonlRecordKind::kAuto:
    case JsonlRecordKind::kProblem:
      fields = &ProblemFields();
      prefix = "problem";
      out->mutable_problem();
      break;
    case JsonlRecordKind::kProof:
      fields = &ProofFields();
      prefix = "proof";
      out->mutable_proof();
      break;
    case JsonlRecordKind::kAnalysis:
      fields = &AnalysisFields();
      prefix = "analysis";
      out->mutable_analysis();
      break;
  }
  if (!repeated.empty()) return RecordIssue{absl::StrCat(prefix, ".", repeated), "given twice"};
  std::set<std::string> seen;  // proto field names set (a name and its JSON name are the same field)
  for (const auto& [key, value] : object.items()) {
    const FieldSpec* spec = nullptr;
    for (const FieldSpec& f : *fields) {
      if (key == f.name || key == f.json_name) spec = &f;
    }
    if (spec == nullptr) return RecordIssue{absl::StrCat(prefix, ".", key), "unknown field"};
    const std::string field = absl::StrCat(prefix, ".", spec->name);
    if (!seen.insert(spec->name).second) return RecordIssue{field, "given twice"};
    if (value.is_null()) continue;
    std::string error = spec->set(value, out);
    if (!error.empty()) return RecordIssue{field, error};
  }
  return ValidateImportRecord(*out, options.limits);
}

JsonlParseResult ParseJsonl(std::istream& in, const std::string& source_name, const JsonlOptions& options) {
  JsonlParseResult result;
  std::string line;
  while (std::getline(in, line)) {
    ++result.lines;
    absl::string_view text = line;
    if (result.lines == 1) absl::ConsumePrefix(&text, "\xEF\xBB\xBF");  // UTF-8 byte order mark
    absl::ConsumeSuffix(&text, "\r");
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    v1::ImportRecordsRequest request;
    if (std::optional<RecordIssue> issue = ParseJsonlLine(text, options, &request)) {
      ++result.error_count;
      if (result.errors.size() < options.limits.max_import_errors) {
        v1::ImportError e;
        e.set_line(result.lines);
        e.set_source_file(source_name);
        e.set_field(issue->field);
        e.set_message(issue->message);
        result.errors.push_back(std::move(e));
      }
      continue;
    }
    request.set_line(result.lines);
    request.set_source_file(source_name);
    result.records.push_back(std::move(request));
  }
  return result;
}

absl::StatusOr<JsonlParseResult> ParseJsonlFile(const std::string& path, const JsonlOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open for reading"));
  JsonlParseResult result = ParseJsonl(in, path, options);
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error after line ", result.lines));
  return result;
}

}  // namespace dsm
