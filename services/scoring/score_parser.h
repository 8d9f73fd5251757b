// Score parsing: turns a verifier / meta-verifier analysis (or a generator's
// self-evaluation) into a v1::Score, and splits a generator output into its
// proof and its self-analysis. Text only; no model, no gRPC.
//
// The rules (METHOD.md "Verifier", proto/dsm/v1/common.proto Score and
// FormatStatus):
// - Only the text after the LAST "</think>" counts (all of it when there is
//   none): a reasoning model's scratch work is never parsed.
// - The format checks run in FormatStatus order and the first failure is
//   reported: TRUNCATED (finish reason LENGTH), MISSING_EVALUATION_MARKER,
//   MISSING_SCORE_MARKER, NO_BOXED_SCORE, SCORE_OUT_OF_RANGE; else OK.
// - The markers are per role and come from the role's prompt template
//   (prompt_template.h); a marker is found by exact, case-sensitive substring
//   match.
// - The score is the content of the LAST non-empty \boxed{...} after the LAST
//   occurrence of the score marker (in the whole text when the marker is
//   missing, so that Score.value is still reported). Braces are matched, so
//   \boxed{\text{1}} has content "\text{1}". A \boxed{ whose braces never
//   close makes the score unreadable: NO_BOXED_SCORE, never an earlier box.
//   Empty or all-blank boxes are skipped. A box inside a box is part of the
//   outer box's content.
// - Accepted values (documented decision): a plain decimal numeral, blanks
//   around it allowed, whose value is exactly 0, 0.5 or 1: "0", "1", "0.5",
//   ".5", "1.0", "0.50", "1.", "00". Everything else is SCORE_OUT_OF_RANGE:
//   other numbers ("2", "0.7"), signs or exponents ("-0", "+1", "1e0"),
//   fractions ("1/2", "\frac{1}{2}", "\dfrac12"), words, units, "$1$". The
//   prompt asks for "0, 0.5, or 1, and nothing else", the released model
//   writes exactly that, and R_format is the place where the model learns it:
//   a fraction is a format failure, never guessed into 0.5.
//
// Thread-safe (pure functions).
#ifndef DSM_SERVICES_SCORING_SCORE_PARSER_H_
#define DSM_SERVICES_SCORING_SCORE_PARSER_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "dsm/v1/common.pb.h"

namespace dsm {

// The two phrases a role's analysis must contain (from its prompt template).
struct OutputMarkers {
  // Opens the analysis, e.g. "Here is my evaluation of the solution:".
  std::string evaluation;
  // Precedes the boxed score, e.g.
  // "Based on my evaluation, the final overall score should be:".
  std::string score;
};

// The verifier markers of the released DeepSeekMath-V2 model (also the
// generator's self-evaluation markers).
OutputMarkers VerifierMarkers();
// The meta-verifier markers of the released model.
OutputMarkers MetaVerifierMarkers();

// Parses one analysis. `finish_reason` is the completion's; LENGTH makes the
// format TRUNCATED (value still reported if a valid box is there).
v1::Score ParseScore(absl::string_view text, const OutputMarkers& markers,
                     v1::FinishReason finish_reason = v1::FINISH_REASON_STOP_TOKEN);

// The value of a box's content under the rules above (0, 0.5 or 1), or
// nullopt when it is not an accepted form.
std::optional<double> ParseScoreValue(absl::string_view boxed_content);

// The text that counts: after the last "</think>", or all of `text`.
absl::string_view TextAfterThinking(absl::string_view text);

// Section headers of a generator output (METHOD.md "Generator").
inline constexpr absl::string_view kSolutionHeader = "## Solution";
inline constexpr absl::string_view kSelfEvaluationHeader = "## Self Evaluation";

// A generator output cut into the proof (what the verifier grades) and the
// self-analysis with its parsed self-score.
struct GeneratorOutput {
  // Text before the first "## Self Evaluation" (after the first "## Solution"
  // when present), with surrounding blanks trimmed. The whole text (after
  // "## Solution") when there is no self-evaluation header.
  std::string proof;
  // Text after the first "## Self Evaluation", trimmed; empty when absent.
  std::string self_analysis;
  bool has_solution_header = false;
  bool has_self_evaluation_header = false;
  // ParseScore(self_analysis). Without a self-evaluation header the format
  // is TRUNCATED (finish reason LENGTH) or MISSING_EVALUATION_MARKER.
  v1::Score self_score;
};

// Splits a generator completion. Only the text after the last "</think>"
// counts. `markers` are the self-evaluation markers (VerifierMarkers() for
// the released model; the generator template declares them).
GeneratorOutput SplitGeneratorOutput(absl::string_view text, const OutputMarkers& markers,
                                     v1::FinishReason finish_reason = v1::FINISH_REASON_STOP_TOKEN);

}  // namespace dsm

#endif  // DSM_SERVICES_SCORING_SCORE_PARSER_H_
