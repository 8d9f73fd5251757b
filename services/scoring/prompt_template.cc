#include "services/scoring/prompt_template.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_io.h"

namespace dsm {
namespace {

constexpr absl::string_view kHeaderEnd = "---";

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Length of the identifier at the start of `s` (0 if none).
std::size_t IdentLength(absl::string_view s) {
  if (s.empty() || !IsIdentStart(s[0])) return 0;
  std::size_t n = 1;
  while (n < s.size() && IsIdentChar(s[n])) ++n;
  return n;
}

// The placeholders of each role (all required, no others allowed), in the
// order error messages list them.
std::vector<std::string> RolePlaceholders(PromptRole role) {
  switch (role) {
    case PromptRole::kGenerator: return {"problem"};
    case PromptRole::kVerifier: return {"problem", "proof"};
    case PromptRole::kMetaVerifier: return {"problem", "proof", "analysis"};
    case PromptRole::kRefiner: return {"problem", "proof", "analysis"};
  }
  return {};
}

std::string Braced(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& n : names) out.push_back(absl::StrCat("{", n, "}"));
  return absl::StrJoin(out, ", ");
}

}  // namespace

const char* PromptRoleName(PromptRole role) {
  switch (role) {
    case PromptRole::kGenerator: return "generator";
    case PromptRole::kVerifier: return "verifier";
    case PromptRole::kMetaVerifier: return "meta_verifier";
    case PromptRole::kRefiner: return "refiner";
  }
  return "unknown";
}

absl::StatusOr<PromptTemplate> PromptTemplate::Parse(absl::string_view text, const std::string& source) {
  auto bad = [&source](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(source, ": ", parts...)); };
  PromptTemplate t;
  t.source_ = source;

  // Header: "key: value" lines up to the "---" line.
  std::map<std::string, std::string> header;
  std::size_t pos = 0;
  int line_number = 0;
  bool ended = false;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == absl::string_view::npos) eol = text.size();
    absl::string_view line = text.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = eol + 1;
    ++line_number;
    if (line == kHeaderEnd) {
      ended = true;
      break;
    }
    absl::string_view stripped = absl::StripAsciiWhitespace(line);
    if (stripped.empty() || stripped[0] == '#') continue;
    const std::size_t colon = stripped.find(':');
    if (colon == absl::string_view::npos) {
      return bad("line ", line_number, ": expected \"key: value\" or \"---\" in the header, got \"",
                 std::string(stripped), "\"");
    }
    const std::string key(absl::StripAsciiWhitespace(stripped.substr(0, colon)));
    const std::string value(absl::StripAsciiWhitespace(stripped.substr(colon + 1)));
    if (key != "role" && key != "evaluation_marker" && key != "score_marker" && key != "stop") {
      return bad("line ", line_number, ": unknown header key \"", key,
                 "\" (allowed: role, evaluation_marker, score_marker, stop)");
    }
    if (value.empty()) return bad("line ", line_number, ": header key \"", key, "\" is empty");
    if (key == "stop") {
      if (std::find(t.stop_.begin(), t.stop_.end(), value) != t.stop_.end()) {
        return bad("line ", line_number, ": stop \"", value, "\" repeated");
      }
      t.stop_.push_back(value);
      continue;
    }
    if (header.count(key) > 0) return bad("line ", line_number, ": header key \"", key, "\" repeated");
    header[key] = value;
  }
  if (!ended) return bad("no \"---\" line ends the header");
  for (const char* key : {"role", "evaluation_marker", "score_marker"}) {
    if (header.count(key) == 0) return bad("missing header key \"", key, "\"");
  }
  const std::string& role = header["role"];
  if (role == "generator") {
    t.role_ = PromptRole::kGenerator;
  } else if (role == "verifier") {
    t.role_ = PromptRole::kVerifier;
  } else if (role == "meta_verifier") {
    t.role_ = PromptRole::kMetaVerifier;
  } else if (role == "refiner") {
    t.role_ = PromptRole::kRefiner;
  } else {
    return bad("role: \"", role, "\" is not one of generator, verifier, meta_verifier, refiner");
  }
  t.markers_.evaluation = header["evaluation_marker"];
  t.markers_.score = header["score_marker"];

  // Body: literal text and placeholders.
  absl::string_view body = pos <= text.size() ? text.substr(pos) : absl::string_view();
  if (!body.empty() && body.back() == '\n') body.remove_suffix(1);
  const std::vector<std::string> allowed = RolePlaceholders(t.role_);
  std::set<std::string> seen;
  std::string literal;
  auto flush = [&t, &literal]() {
    if (literal.empty()) return;
    t.segments_.push_back({Field::kNone, std::move(literal)});
    literal.clear();
  };
  int line = line_number + 1;  // file line of body[i]
  for (std::size_t i = 0; i < body.size();) {
    if (body[i] != '{') {
      if (body[i] == '\n') ++line;
      literal += body[i++];
      continue;
    }
    // "{{name}}": a literal "{name}".
    if (i + 1 < body.size() && body[i + 1] == '{') {
      const std::size_t n = IdentLength(body.substr(i + 2));
      if (n > 0 && body.substr(i + 2 + n, 2) == "}}") {
        absl::StrAppend(&literal, "{", body.substr(i + 2, n), "}");
        i += n + 4;
        continue;
      }
    }
    const std::size_t n = IdentLength(body.substr(i + 1));
    if (n == 0 || body.substr(i + 1 + n, 1) != "}") {
      literal += body[i++];
      continue;
    }
    const std::string name(body.substr(i + 1, n));
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return bad("line ", line, ": unknown placeholder {", name, "} for role ", role,
                 " (allowed: ", Braced(allowed), ")");
    }
    flush();
    seen.insert(name);
    const Field field = name == "problem" ? Field::kProblem : name == "proof" ? Field::kProof : Field::kAnalysis;
    t.segments_.push_back({field, ""});
    i += n + 2;
  }
  flush();
  for (const std::string& name : allowed) {
    if (seen.count(name) == 0) return bad("missing placeholder {", name, "} (required for role ", role, ")");
  }
  return t;
}

absl::StatusOr<PromptTemplate> PromptTemplate::Load(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return absl::NotFoundError(absl::StrCat(path, ": cannot open prompt template"));
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

absl::StatusOr<PromptTemplate> PromptTemplate::LoadRole(const std::string& dir, PromptRole role) {
  const std::string path = absl::StrCat(dir, "/", PromptRoleName(role), ".txt");
  absl::StatusOr<PromptTemplate> t = Load(path);
  if (!t.ok()) return t.status();
  if (t->role() != role) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": role: \"", PromptRoleName(t->role()),
                                                   "\" but this file must be the ", PromptRoleName(role),
                                                   " template"));
  }
  return t;
}

void PromptTemplate::AddStopsTo(v1::SamplingParams* params) const {
  if (stop_.empty()) return;
  for (const std::string& s : stop_) {
    if (std::find(params->stop().begin(), params->stop().end(), s) == params->stop().end()) params->add_stop(s);
  }
  params->set_include_stop_str_in_output(true);
}

std::string PromptTemplate::Render(const PromptFields& fields) const {
  std::size_t size = 0;
  for (const Segment& s : segments_) {
    size += s.field == Field::kNone      ? s.text.size()
            : s.field == Field::kProblem ? fields.problem.size()
            : s.field == Field::kProof   ? fields.proof.size()
                                         : fields.analysis.size();
  }
  std::string out;
  out.reserve(size);
  for (const Segment& s : segments_) {
    switch (s.field) {
      case Field::kNone: out += s.text; break;
      case Field::kProblem: out.append(fields.problem.data(), fields.problem.size()); break;
      case Field::kProof: out.append(fields.proof.data(), fields.proof.size()); break;
      case Field::kAnalysis: out.append(fields.analysis.data(), fields.analysis.size()); break;
    }
  }
  return out;
}

}  // namespace dsm
