#include "tasks/chain_checker.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tasks/chain_text_cursor.h"

namespace dsm {
namespace {

absl::string_view TrimBlanks(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

struct ParsedLine {
  enum Kind { kUnreadable, kStep, kFinal } kind = kUnreadable;
  std::string number;  // kStep: as written
  ChainFact cited;     // kStep
  ChainFact stated;    // kStep: the conclusion; kFinal: the claim
};

ParsedLine ParseLine(absl::string_view line) {
  ParsedLine parsed;
  {
    ChainTextCursor cursor(line);
    auto number = cursor.Number();
    if (number && cursor.Consume(".")) {
      auto cited = cursor.Fact();
      if (cited && cursor.Consume(",") && cursor.Consume("so")) {
        auto stated = cursor.Fact();
        if (stated) {
          cursor.Consume(".");
          if (cursor.AtEnd()) {
            parsed.kind = ParsedLine::kStep;
            parsed.number = *number;
            parsed.cited = *cited;
            parsed.stated = *stated;
            return parsed;
          }
        }
      }
    }
  }
  ChainTextCursor cursor(line);
  if (cursor.Consume("Thus")) {
    if (auto claim = cursor.Fact()) {
      cursor.Consume(".");
      if (cursor.AtEnd()) {
        parsed.kind = ParsedLine::kFinal;
        parsed.stated = *claim;
      }
    }
  }
  return parsed;
}

// The accepted score forms of services/scoring/score_parser.h: a plain decimal numeral whose
// value is exactly 0, 0.5 or 1.
std::optional<double> ScoreValue(absl::string_view content) {
  content = absl::StripAsciiWhitespace(content);
  if (content.empty()) return std::nullopt;
  const std::size_t dot = content.find('.');
  absl::string_view whole = content.substr(0, dot);
  absl::string_view fraction =
      dot == absl::string_view::npos ? absl::string_view() : content.substr(dot + 1);
  if (whole.empty() && fraction.empty()) return std::nullopt;
  for (absl::string_view part : {whole, fraction}) {
    for (char c : part) {
      if (c < '0' || c > '9') return std::nullopt;
    }
  }
  while (!whole.empty() && whole.front() == '0') whole.remove_prefix(1);
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (whole.empty() && fraction.empty()) return 0.0;
  if (whole == "1" && fraction.empty()) return 1.0;
  if (whole.empty() && fraction == "5") return 0.5;
  return std::nullopt;
}

// The last non-empty \boxed{} of `text`, brace-matched; nullopt when none, or when a box
// never closes.
std::optional<absl::string_view> LastBox(absl::string_view text) {
  constexpr absl::string_view kBox = "\\boxed{";
  std::optional<absl::string_view> last;
  std::size_t pos = 0;
  while ((pos = text.find(kBox, pos)) != absl::string_view::npos) {
    const std::size_t open = pos + kBox.size();
    int depth = 1;
    std::size_t i = open;
    for (; i < text.size() && depth > 0; ++i) {
      if (text[i] == '{') ++depth;
      if (text[i] == '}') --depth;
    }
    if (depth > 0) return std::nullopt;
    const absl::string_view content = text.substr(open, i - 1 - open);
    if (!absl::StripAsciiWhitespace(content).empty()) last = content;
    pos = i;
  }
  return last;
}

bool IsAsciiLetter(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)); }

// Adds to *lines the numbers after each word-initial `word` (blanks allowed in between).
void FindNumberedClaims(const std::string& lower, absl::string_view word, std::vector<int>* lines) {
  std::size_t pos = 0;
  while ((pos = lower.find(word.data(), pos, word.size())) != std::string::npos) {
    const bool starts_word = pos == 0 || !IsAsciiLetter(lower[pos - 1]);
    std::size_t i = pos + word.size();
    pos = i;
    if (!starts_word) continue;
    while (i < lower.size() && lower[i] == ' ') ++i;
    std::size_t digits = 0;
    long value = 0;
    while (i < lower.size() && absl::ascii_isdigit(static_cast<unsigned char>(lower[i]))) {
      if (digits < 7) value = value * 10 + (lower[i] - '0');
      ++digits;
      ++i;
    }
    if (digits > 0 && digits < 7 && value > 0) lines->push_back(static_cast<int>(value));
  }
}

std::string LineName(int line, const ChainVerdict& verdict) {
  if (line == verdict.final_line) return "The final line";
  if (line <= verdict.steps) return absl::StrCat("Step ", line);
  return absl::StrCat("Line ", line);
}

}  // namespace

const ChainFault* ChainVerdict::FaultOn(int line) const {
  for (const ChainFault& fault : faults) {
    if (fault.line == line) return &fault;
  }
  return nullptr;
}

ChainVerdict CheckChainProof(const ChainStatement& statement, absl::string_view proof) {
  ChainVerdict verdict;
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(proof, '\n')) {
    line = TrimBlanks(line);
    if (!line.empty()) lines.push_back(line);
  }
  const ChainFact goal = statement.goal;
  verdict.goal = goal;
  if (lines.empty()) {
    verdict.final_line = 1;
    verdict.faults.push_back(ChainFault{1, true, ChainIssueEmptyProof()});
    return verdict;
  }
  auto fault = [&verdict](int line, bool fatal, std::string reason) {
    verdict.faults.push_back(ChainFault{line, fatal, std::move(reason)});
  };
  char end = goal.lhs;  // the variable the chain has reached
  std::optional<ChainFact> last_conclusion;
  for (int k = 1; k <= static_cast<int>(lines.size()); ++k) {
    if (verdict.final_line != 0) {
      fault(k, true, ChainIssueAfterFinalLine(k));
      continue;
    }
    const ParsedLine parsed = ParseLine(lines[k - 1]);
    if (parsed.kind == ParsedLine::kUnreadable) {
      fault(k, true, ChainIssueUnreadable(k));
      continue;
    }
    if (parsed.kind == ParsedLine::kFinal) {
      verdict.final_line = k;
      verdict.final_claim = parsed.stated;
      if (parsed.stated != goal) {
        fault(k, true, ChainIssueFinalNotGoal(parsed.stated, goal));
      } else if (!last_conclusion || end != goal.rhs) {
        fault(k, true, ChainIssueUnfinished(goal, last_conclusion));
      }
      continue;
    }
    ++verdict.steps;
    const ChainFact cited = parsed.cited;
    const bool given = statement.IsGiven(cited);
    const bool backwards = !given && statement.IsGiven(cited.Reversed());
    verdict.citations.push_back(ChainCitation{
        k, cited,
        given ? ChainCitationStatus::kGiven : (backwards ? ChainCitationStatus::kReversed : ChainCitationStatus::kNotGiven),
        end, cited.lhs == end || cited.rhs == end});
    if (parsed.number != std::to_string(k)) {
      fault(k, true, ChainIssueMisnumbered(k, parsed.number));
    } else if (!given && !backwards) {
      fault(k, true, ChainIssueNotGiven(k, cited));
    } else if (!verdict.citations.back().links) {
      fault(k, true, ChainIssueGap(k, cited, end));
    } else {
      const ChainFact follows{goal.lhs, cited.Across(end)};
      if (parsed.stated != follows) {
        fault(k, true, ChainIssueWrongConclusion(k, parsed.stated, follows));
      } else if (backwards) {
        fault(k, false, ChainIssueBackwards(k, cited));
      }
    }
    end = parsed.stated.rhs;
    last_conclusion = parsed.stated;
  }
  if (verdict.final_line == 0) {
    verdict.final_line = static_cast<int>(lines.size()) + 1;
    if (last_conclusion && *last_conclusion == goal) {
      fault(verdict.final_line, false, ChainIssueMissingFinalLine());
    } else {
      fault(verdict.final_line, true, ChainIssueNotReached(goal, last_conclusion));
    }
  }
  std::stable_sort(verdict.faults.begin(), verdict.faults.end(),
                   [](const ChainFault& a, const ChainFault& b) { return a.line < b.line; });
  verdict.score = 1.0;
  for (const ChainFault& f : verdict.faults) {
    verdict.score = std::min(verdict.score, f.fatal ? 0.0 : 0.5);
  }
  return verdict;
}

std::optional<ChainProof> ParseChainProof(absl::string_view proof) {
  ChainProof out;
  bool any = false;
  for (absl::string_view line : absl::StrSplit(proof, '\n')) {
    line = TrimBlanks(line);
    if (line.empty()) continue;
    if (out.final_claim) return std::nullopt;  // a line after the final line
    const ParsedLine parsed = ParseLine(line);
    if (parsed.kind == ParsedLine::kUnreadable) return std::nullopt;
    any = true;
    if (parsed.kind == ParsedLine::kFinal) {
      out.final_claim = parsed.stated;
      continue;
    }
    if (parsed.number != std::to_string(out.steps.size() + 1)) return std::nullopt;
    out.steps.push_back(ChainStep{parsed.cited, parsed.stated});
  }
  if (!any) return std::nullopt;
  return out;
}

absl::StatusOr<ChainVerdict> CheckChainProof(absl::string_view statement, absl::string_view proof) {
  auto parsed = ParseChainStatement(statement);
  if (!parsed.ok()) return parsed.status();
  return CheckChainProof(*parsed, proof);
}

ChainAnalysisMarkers ChainMetaAnalysisMarkers() {
  ChainAnalysisMarkers markers;
  markers.evaluation = "Here is my analysis of the \"solution evaluation\":";
  markers.score = "Based on my analysis, I will rate the \"solution evaluation\" as:";
  return markers;
}

ChainAnalysisClaims ReadChainAnalysis(absl::string_view analysis, int final_line,
                                      const ChainAnalysisMarkers& markers) {
  constexpr absl::string_view kThinkEnd = "</think>";
  if (const std::size_t think = analysis.rfind(kThinkEnd); think != absl::string_view::npos) {
    analysis.remove_prefix(think + kThinkEnd.size());
  }
  ChainAnalysisClaims claims;
  const std::size_t evaluation =
      markers.evaluation.empty() ? absl::string_view::npos : analysis.find(markers.evaluation);
  const std::size_t score =
      markers.score.empty() ? absl::string_view::npos : analysis.rfind(markers.score);
  claims.has_evaluation_marker = evaluation != absl::string_view::npos;
  claims.has_score_marker = score != absl::string_view::npos;
  const absl::string_view boxes =
      claims.has_score_marker ? analysis.substr(score + markers.score.size()) : analysis;
  if (auto box = LastBox(boxes)) claims.score = ScoreValue(*box);

  absl::string_view body = analysis;
  if (claims.has_evaluation_marker) body.remove_prefix(evaluation + markers.evaluation.size());
  if (claims.has_score_marker) {
    const std::size_t cut = body.rfind(markers.score);
    if (cut != absl::string_view::npos) body = body.substr(0, cut);
  }
  const std::string lower = absl::AsciiStrToLower(body);
  FindNumberedClaims(lower, "step", &claims.lines);
  FindNumberedClaims(lower, "line", &claims.lines);
  if (lower.find("final line") != std::string::npos) claims.lines.push_back(final_line);
  if (lower.find("proof is empty") != std::string::npos) claims.lines.push_back(1);
  std::sort(claims.lines.begin(), claims.lines.end());
  claims.lines.erase(std::unique(claims.lines.begin(), claims.lines.end()), claims.lines.end());
  return claims;
}

ChainAnalysisAssessment AssessChainAnalysis(const ChainVerdict& verdict, absl::string_view analysis,
                                            const ChainAnalysisMarkers& markers) {
  ChainAnalysisAssessment out;
  out.claims = ReadChainAnalysis(analysis, verdict.final_line, markers);
  const ChainAnalysisClaims& claims = out.claims;
  double expected = 1.0;  // the score the named real faults call for
  for (int line : claims.lines) {
    if (const ChainFault* fault = verdict.FaultOn(line)) {
      out.real_lines.push_back(line);
      expected = std::min(expected, fault->fatal ? 0.0 : 0.5);
    } else {
      out.bogus_lines.push_back(line);
    }
  }
  out.score_agrees = claims.score.has_value() && *claims.score == verdict.score;
  out.hallucinated = !out.bogus_lines.empty() ||
                     (verdict.score == 1.0 && claims.score.has_value() && *claims.score < 1.0);
  if (!claims.format_ok()) {
    out.meta_score = 0;
    out.reason = "The evaluation has no valid score.";
  } else if (!out.bogus_lines.empty() && out.real_lines.empty()) {
    out.meta_score = 0;
    out.reason = absl::StrCat(LineName(out.bogus_lines.front(), verdict), " is not faulty.");
  } else if (!out.bogus_lines.empty()) {
    out.meta_score = 0.5;
    std::string bogus = LineName(out.bogus_lines.front(), verdict);
    bogus[0] = absl::ascii_tolower(static_cast<unsigned char>(bogus[0]));
    out.reason = absl::StrCat(LineName(out.real_lines.front(), verdict), " is faulty, but ", bogus,
                              " is not.");
  } else if (*claims.score == expected) {
    out.meta_score = 1;
    out.reason = out.real_lines.empty() ? "It names no issue and its score fits."
                                        : "The issue it names is real and its score fits.";
  } else {
    out.meta_score = 0.5;
    out.reason = out.real_lines.empty()
                     ? absl::StrCat("It names no issue but gives ", *claims.score, ".")
                     : absl::StrCat("The issue is real but the score should be ", expected, ".");
  }
  return out;
}

}  // namespace dsm
