#include "services/scoring/score_parser.h"

#include <cctype>

#include "absl/strings/ascii.h"

namespace dsm {
namespace {

constexpr absl::string_view kThinkEnd = "</think>";
constexpr absl::string_view kBoxedOpen = "\\boxed{";

// The outcome of looking for the score box in a region of text.
struct BoxSearch {
  bool unbalanced = false;                 // a \boxed{ never closes
  std::optional<absl::string_view> content;  // last non-empty box, trimmed
};

BoxSearch FindLastBox(absl::string_view region) {
  BoxSearch result;
  std::size_t pos = 0;
  while ((pos = region.find(kBoxedOpen, pos)) != absl::string_view::npos) {
    const std::size_t start = pos + kBoxedOpen.size();
    int depth = 1;
    std::size_t i = start;
    for (; i < region.size(); ++i) {
      if (region[i] == '{') {
        ++depth;
      } else if (region[i] == '}' && --depth == 0) {
        break;
      }
    }
    if (depth != 0) {  // runs to the end of the text: nothing after it can be a box
      result.unbalanced = true;
      result.content.reset();
      return result;
    }
    absl::string_view content = absl::StripAsciiWhitespace(region.substr(start, i - start));
    if (!content.empty()) result.content = content;
    pos = i + 1;  // boxes nested in this one are part of its content
  }
  return result;
}

}  // namespace

OutputMarkers VerifierMarkers() {
  return {"Here is my evaluation of the solution:", "Based on my evaluation, the final overall score should be:"};
}

OutputMarkers MetaVerifierMarkers() {
  return {"Here is my analysis of the \"solution evaluation\":",
          "Based on my analysis, I will rate the \"solution evaluation\" as:"};
}

absl::string_view TextAfterThinking(absl::string_view text) {
  const std::size_t end = text.rfind(kThinkEnd);
  return end == absl::string_view::npos ? text : text.substr(end + kThinkEnd.size());
}

std::optional<double> ParseScoreValue(absl::string_view boxed_content) {
  absl::string_view s = absl::StripAsciiWhitespace(boxed_content);
  // [0-9]* ( "." [0-9]* )?, at least one digit.
  std::size_t i = 0;
  std::string int_part;
  std::string frac_part;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) int_part += s[i++];
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) frac_part += s[i++];
  }
  if (i != s.size() || (int_part.empty() && frac_part.empty())) return std::nullopt;
  // Exact decimal comparison (no floating point): strip leading zeros of the
  // integer part and trailing zeros of the fraction.
  const std::size_t first = int_part.find_first_not_of('0');
  int_part = first == std::string::npos ? "" : int_part.substr(first);
  const std::size_t last = frac_part.find_last_not_of('0');
  frac_part = last == std::string::npos ? "" : frac_part.substr(0, last + 1);
  if (int_part.empty() && frac_part.empty()) return 0.0;
  if (int_part.empty() && frac_part == "5") return 0.5;
  if (int_part == "1" && frac_part.empty()) return 1.0;
  return std::nullopt;
}

v1::Score ParseScore(absl::string_view text, const OutputMarkers& markers, v1::FinishReason finish_reason) {
  const absl::string_view body = TextAfterThinking(text);
  const bool has_evaluation = !markers.evaluation.empty() && body.find(markers.evaluation) != absl::string_view::npos;
  const std::size_t score_at = markers.score.empty() ? absl::string_view::npos : body.rfind(markers.score);
  const bool has_score_marker = score_at != absl::string_view::npos;
  const absl::string_view region = has_score_marker ? body.substr(score_at + markers.score.size()) : body;

  const BoxSearch box = FindLastBox(region);
  std::optional<double> value;
  if (box.content.has_value()) value = ParseScoreValue(*box.content);

  v1::Score score;
  if (value.has_value()) score.set_value(*value);
  if (finish_reason == v1::FINISH_REASON_LENGTH) {
    score.set_format(v1::FORMAT_STATUS_TRUNCATED);
  } else if (!has_evaluation) {
    score.set_format(v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
  } else if (!has_score_marker) {
    score.set_format(v1::FORMAT_STATUS_MISSING_SCORE_MARKER);
  } else if (!box.content.has_value()) {
    score.set_format(v1::FORMAT_STATUS_NO_BOXED_SCORE);
  } else if (!value.has_value()) {
    score.set_format(v1::FORMAT_STATUS_SCORE_OUT_OF_RANGE);
  } else {
    score.set_format(v1::FORMAT_STATUS_OK);
  }
  return score;
}

GeneratorOutput SplitGeneratorOutput(absl::string_view text, const OutputMarkers& markers,
                                     v1::FinishReason finish_reason) {
  GeneratorOutput out;
  absl::string_view rest = TextAfterThinking(text);
  const std::size_t solution_at = rest.find(kSolutionHeader);
  if (solution_at != absl::string_view::npos) {
    out.has_solution_header = true;
    rest = rest.substr(solution_at + kSolutionHeader.size());
  }
  const std::size_t evaluation_at = rest.find(kSelfEvaluationHeader);
  if (evaluation_at == absl::string_view::npos) {
    out.proof = std::string(absl::StripAsciiWhitespace(rest));
    out.self_score.set_format(finish_reason == v1::FINISH_REASON_LENGTH ? v1::FORMAT_STATUS_TRUNCATED
                                                                        : v1::FORMAT_STATUS_MISSING_EVALUATION_MARKER);
    return out;
  }
  out.has_self_evaluation_header = true;
  out.proof = std::string(absl::StripAsciiWhitespace(rest.substr(0, evaluation_at)));
  out.self_analysis =
      std::string(absl::StripAsciiWhitespace(rest.substr(evaluation_at + kSelfEvaluationHeader.size())));
  out.self_score = ParseScore(out.self_analysis, markers, finish_reason);
  return out;
}

}  // namespace dsm
