// PromptTemplate: one role's prompt, read from a file (configs/prompts/
// generator.txt, verifier.txt, meta_verifier.txt), plus the output markers
// the role's answers must contain (score_parser.h).
//
// File format: a header, a line that is exactly "---", then the body.
//
//   # comment lines and blank lines are ignored in the header
//   role: verifier
//   evaluation_marker: Here is my evaluation of the solution:
//   score_marker: Based on my evaluation, the final overall score should be:
//   ---
//   ## Instruction
//   ... {problem} ... {proof} ...
//
// - Header lines are "key: value"; the value is the rest of the line with
//   surrounding blanks removed, taken literally (no quoting, no escapes).
//   Keys, all required: role (generator | verifier | meta_verifier | refiner),
//   evaluation_marker, score_marker (both non-empty). Optional and repeatable:
//   stop, a string that ends the role's output where it first appears (kept in
//   the output, as vLLM's stop with include_stop_str_in_output): e.g. the
//   self-score boxes, so a generator ends at its self-score instead of writing
//   on past it. Other unknown or repeated keys are errors.
// - The body is everything after the "---" line, less the file's final
//   newline. It is sent to the model as it is (no chat template is applied
//   here).
// - Placeholders are "{name}" with name = [A-Za-z_][A-Za-z0-9_]*. Each role
//   has a fixed set, all of which must appear (each may appear more than
//   once): generator {problem}; verifier {problem} {proof}; meta_verifier
//   {problem} {proof} {analysis}; refiner (`dsm eval`'s sequential
//   refinement: the previous proof and its self-evaluation, answered in the
//   generator's format) {problem} {proof} {analysis}. Any other {name} is an
//   error. Every other
//   brace is literal text, so LaTeX such as \boxed{} or \frac{1}{2} needs no
//   escaping; "{{name}}" writes a literal "{name}".
// - Rendering substitutes in one pass over the parsed template: braces (or
//   "{proof}") inside a substituted problem, proof or analysis are never
//   interpreted.
// Every load error is one line that names the file (and line or
// placeholder), e.g. "configs/prompts/verifier.txt: missing placeholder {proof}".
//
// Immutable after loading; thread-safe.
#ifndef DSM_SERVICES_SCORING_PROMPT_TEMPLATE_H_
#define DSM_SERVICES_SCORING_PROMPT_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/scoring/score_parser.h"

namespace dsm {

enum class PromptRole { kGenerator, kVerifier, kMetaVerifier, kRefiner };

// "generator", "verifier", "meta_verifier", "refiner": the header value and file stem.
const char* PromptRoleName(PromptRole role);

// The texts a template is filled with (unused ones are ignored).
struct PromptFields {
  absl::string_view problem;
  absl::string_view proof;
  absl::string_view analysis;
};

class PromptTemplate {
 public:
  // Parses a template's text; `source` (usually the path) starts every error.
  static absl::StatusOr<PromptTemplate> Parse(absl::string_view text, const std::string& source);
  // Reads and parses a file.
  static absl::StatusOr<PromptTemplate> Load(const std::string& path);
  // Loads `<dir>/<PromptRoleName(role)>.txt` and checks it declares `role`.
  static absl::StatusOr<PromptTemplate> LoadRole(const std::string& dir, PromptRole role);

  PromptRole role() const { return role_; }
  const OutputMarkers& markers() const { return markers_; }
  // The header's stop strings, in file order (empty: the output ends at EOS).
  const std::vector<std::string>& stop() const { return stop_; }
  // Adds stop() to `params` (keeping the matched string in the output); no
  // change when the template has none.
  void AddStopsTo(v1::SamplingParams* params) const;
  const std::string& source() const { return source_; }

  // The body with every placeholder replaced by its field.
  std::string Render(const PromptFields& fields) const;

 private:
  enum class Field { kNone, kProblem, kProof, kAnalysis };
  struct Segment {
    Field field = Field::kNone;  // kNone: literal text
    std::string text;
  };

  PromptTemplate() = default;

  PromptRole role_ = PromptRole::kVerifier;
  OutputMarkers markers_;
  std::vector<std::string> stop_;
  std::string source_;
  std::vector<Segment> segments_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_SCORING_PROMPT_TEMPLATE_H_
