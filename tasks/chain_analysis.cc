#include "tasks/chain_analysis.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

constexpr uint64_t kAnalysisSalt = 0x616e616c79736973ULL;  // "analysis"

// A made-up but plausible issue on a line that is not faulty, the score it would call for, and
// the status its analysis's citation note then gives that line's citation (when it is about one).
struct MadeUp {
  std::string issue;
  double score = 0;
  std::optional<ChainCitationStatus> citation;
};

MadeUp MadeUpIssue(const ChainStatement& statement, const ChainProof& proof, int line, SeededRng* rng) {
  const int steps = static_cast<int>(proof.steps.size());
  if (line > steps) {
    // The final line (correct here): claim the chain stops one step short.
    const ChainFact reached = steps >= 2 ? proof.steps[steps - 2].conclusion
                                         : ChainFact{statement.goal.lhs, statement.goal.lhs};
    return {ChainIssueUnfinished(statement.goal, reached), 0.0, std::nullopt};
  }
  const ChainStep& step = proof.steps[line - 1];
  switch (rng->Uniform(3)) {
    case 0:
      return {ChainIssueNotGiven(line, step.cited), 0.0, ChainCitationStatus::kNotGiven};
    case 1:
      return {ChainIssueBackwards(line, step.cited), 0.5, ChainCitationStatus::kReversed};
    default: {
      // Claims the fact's other side follows (it does not).
      const char other = step.cited.Across(step.conclusion.rhs);
      return {ChainIssueWrongConclusion(line, step.conclusion, ChainFact{step.conclusion.lhs, other}), 0.0,
              std::nullopt};
    }
  }
}

const char* CitationStatusText(ChainCitationStatus status) {
  switch (status) {
    case ChainCitationStatus::kGiven:
      return "given";
    case ChainCitationStatus::kReversed:
      return "reversed";
    case ChainCitationStatus::kNotGiven:
      return "not given";
  }
  return "given";
}

// The analysis body: the citation note of `noted`, then the issues (or kChainNoIssue).
std::vector<std::string> NotedIssues(const ChainVerdict& noted, std::vector<std::string> issues,
                                     std::optional<char> chain_end = std::nullopt) {
  std::vector<std::string> lines{ChainCitationNote(noted.citations, noted.final_claim, noted.goal, chain_end)};
  if (issues.empty()) issues.emplace_back(kChainNoIssue);
  for (std::string& issue : issues) lines.push_back(std::move(issue));
  return lines;
}

// One item of a citation note: "2. b: c=b not given", "3. d: a=f gap".
std::string CitationNoteItem(const ChainCitation& c) {
  const char* status = c.status != ChainCitationStatus::kNotGiven && !c.links ? "gap" : CitationStatusText(c.status);
  return absl::StrCat(c.line, ". ", std::string(1, c.reached), ": ", c.cited.Text(), " ", status);
}

// `verdict` with step `line`'s citation status replaced by `status` (when set and the step
// exists).
ChainVerdict WithCitation(ChainVerdict verdict, int line, std::optional<ChainCitationStatus> status) {
  if (status && line >= 1 && line <= static_cast<int>(verdict.citations.size())) {
    verdict.citations[line - 1].status = *status;
  }
  return verdict;
}

}  // namespace

std::string ChainScoreText(double score) {
  if (score == 0.5) return "0.5";
  return score >= 1.0 ? "1" : "0";
}

std::string RenderChainAnalysis(double score, const std::vector<std::string>& issues,
                                const ChainAnalysisMarkers& markers) {
  const std::string body =
      issues.empty() ? std::string(kChainNoIssue) : absl::StrJoin(issues, "\n");
  return absl::StrCat(markers.evaluation, "\n", body, "\n", markers.score, "\n\\boxed{",
                      ChainScoreText(score), "}");
}

char ChainCitedEnd(const std::vector<ChainCitation>& citations, char start) {
  if (citations.empty()) return start;
  const ChainCitation& last = citations.back();
  if (!last.links) return last.reached;
  return last.cited.Across(last.reached);
}

std::string ChainCitationNote(const std::vector<ChainCitation>& citations, const std::optional<ChainFact>& final_claim,
                              const ChainFact& goal, std::optional<char> chain_end) {
  std::vector<std::string> items;
  for (const ChainCitation& c : citations) items.push_back(CitationNoteItem(c));
  if (final_claim) {
    const char end = chain_end.value_or(ChainCitedEnd(citations, goal.lhs));
    const char* status = *final_claim != goal ? " not goal" : (end != goal.rhs ? " not reached" : " goal");
    items.push_back(absl::StrCat("end ", std::string(1, end), ": ", final_claim->Text(), status));
  }
  if (items.empty()) return absl::StrCat(kChainCitedPrefix, "none.");
  return absl::StrCat(kChainCitedPrefix, absl::StrJoin(items, ", "), ".");
}

std::string ChainMetaCheckNote(const ChainVerdict& verdict, const std::vector<int>& lines) {
  std::vector<std::string> items;
  for (int line : lines) {
    for (const ChainCitation& c : verdict.citations) {
      if (c.line == line) items.push_back(CitationNoteItem(c));
    }
  }
  if (items.empty()) return absl::StrCat(kChainCheckedPrefix, "none.");
  return absl::StrCat(kChainCheckedPrefix, absl::StrJoin(items, ", "), ".");
}

ChainLookupTally TallyChainLookup(const std::vector<ChainCitation>& truth, absl::string_view analysis) {
  std::vector<std::string> written;  // the items of the first note line
  for (absl::string_view line : absl::StrSplit(analysis, '\n')) {
    if (!absl::ConsumePrefix(&line, kChainCitedPrefix)) continue;
    absl::ConsumeSuffix(&line, ".");
    written = absl::StrSplit(line, ", ");
    break;
  }
  ChainLookupTally tally;
  for (size_t i = 0; i < truth.size(); ++i) {
    const bool right = i < written.size() && written[i] == CitationNoteItem(truth[i]);
    const bool faulty = truth[i].status != ChainCitationStatus::kGiven || !truth[i].links;
    ++tally.citations;
    tally.right += right ? 1 : 0;
    tally.faulty += faulty ? 1 : 0;
    tally.faulty_right += faulty && right ? 1 : 0;
    const bool reversed = truth[i].status == ChainCitationStatus::kReversed;
    tally.reversed += reversed ? 1 : 0;
    tally.reversed_right += reversed && right ? 1 : 0;
  }
  return tally;
}

std::string RenderFaithfulChainAnalysis(const ChainVerdict& verdict,
                                        const ChainAnalysisMarkers& markers) {
  std::vector<std::string> issues;
  if (const ChainFault* first = verdict.first_fault()) {
    issues.push_back(first->reason);
    if (!first->fatal) {
      for (const ChainFault& fault : verdict.faults) {
        if (fault.fatal) {
          issues.push_back(fault.reason);
          break;
        }
      }
    }
  }
  return RenderChainAnalysis(verdict.score, NotedIssues(verdict, std::move(issues)), markers);
}

std::string RenderOverlookingChainAnalysis(const ChainVerdict& verdict, const ChainAnalysisMarkers& markers) {
  ChainVerdict missed = verdict;
  for (ChainCitation& c : missed.citations) {
    c.status = ChainCitationStatus::kGiven;
    c.links = true;
  }
  if (missed.final_claim) missed.goal = *missed.final_claim;
  return RenderChainAnalysis(1.0, NotedIssues(missed, {}, missed.goal.rhs), markers);
}

std::string RenderChainGeneratorOutput(absl::string_view proof, absl::string_view self_analysis) {
  return absl::StrCat("## Solution\n", proof, "\n\n## Self Evaluation\n\n", self_analysis);
}

std::string RenderChainMetaAnalysis(const ChainAnalysisAssessment& assessment) {
  const ChainAnalysisMarkers markers = ChainMetaAnalysisMarkers();
  return absl::StrCat(markers.evaluation, "\n", assessment.reason, "\n", markers.score,
                      "\n\\boxed{", ChainScoreText(assessment.meta_score), "}");
}

const std::vector<ChainAnalysisKind>& AllChainAnalysisKinds() {
  static const std::vector<ChainAnalysisKind>* const kAll = new std::vector<ChainAnalysisKind>{
      ChainAnalysisKind::kFaithful, ChainAnalysisKind::kMissedIssue, ChainAnalysisKind::kWrongScore,
      ChainAnalysisKind::kBogusIssue, ChainAnalysisKind::kMixedIssues};
  return *kAll;
}

const char* ChainAnalysisKindName(ChainAnalysisKind kind) {
  switch (kind) {
    case ChainAnalysisKind::kFaithful:
      return "faithful";
    case ChainAnalysisKind::kMissedIssue:
      return "missed_issue";
    case ChainAnalysisKind::kWrongScore:
      return "wrong_score";
    case ChainAnalysisKind::kBogusIssue:
      return "bogus_issue";
    case ChainAnalysisKind::kMixedIssues:
      return "mixed_issues";
  }
  return "unknown";
}

std::optional<LabelledChainAnalysis> MakeLabelledChainAnalysis(const ChainStatement& statement,
                                                               const LabelledChainProof& proof,
                                                               ChainAnalysisKind kind,
                                                               uint64_t seed) {
  SeededRng rng(CombineSeeds(CombineSeeds(seed, kAnalysisSalt), static_cast<uint64_t>(kind)));
  const ChainVerdict verdict = CheckChainProof(statement, proof.text);
  std::vector<int> sound_lines;  // lines that exist and are not faulty
  const int last_line = proof.proof.final_claim ? verdict.final_line : verdict.final_line - 1;
  for (int line = 1; line <= last_line; ++line) {
    if (verdict.FaultOn(line) == nullptr) sound_lines.push_back(line);
  }
  const ChainFault* first = verdict.first_fault();

  std::string text;
  switch (kind) {
    case ChainAnalysisKind::kFaithful:
      text = RenderFaithfulChainAnalysis(verdict);
      break;
    case ChainAnalysisKind::kMissedIssue: {
      if (first == nullptr) return std::nullopt;
      // It sees nothing wrong, in its citation note either (the final line taken for the goal).
      text = RenderOverlookingChainAnalysis(verdict);
      break;
    }
    case ChainAnalysisKind::kWrongScore: {
      std::vector<double> wrong;
      for (double s : {0.0, 0.5, 1.0}) {
        // A named fault with score 1 contradicts itself; keep wrong scores below 1 then.
        if (s != verdict.score && (first == nullptr || s < 1.0)) wrong.push_back(s);
      }
      const double score = wrong[rng.Uniform(static_cast<int>(wrong.size()))];
      std::vector<std::string> issues;
      if (first != nullptr) issues.push_back(first->reason);
      text = RenderChainAnalysis(score, NotedIssues(verdict, std::move(issues)));
      break;
    }
    case ChainAnalysisKind::kBogusIssue: {
      if (sound_lines.empty()) return std::nullopt;
      const int line = sound_lines[rng.Uniform(static_cast<int>(sound_lines.size()))];
      MadeUp made_up = MadeUpIssue(statement, proof.proof, line, &rng);
      text = RenderChainAnalysis(made_up.score,
                                 NotedIssues(WithCitation(verdict, line, made_up.citation), {made_up.issue}));
      break;
    }
    case ChainAnalysisKind::kMixedIssues: {
      if (first == nullptr || sound_lines.empty()) return std::nullopt;
      const int line = sound_lines[rng.Uniform(static_cast<int>(sound_lines.size()))];
      MadeUp made_up = MadeUpIssue(statement, proof.proof, line, &rng);
      std::vector<std::string> issues{first->reason, made_up.issue};
      if (line < first->line) std::swap(issues[0], issues[1]);
      text = RenderChainAnalysis(verdict.score,
                                 NotedIssues(WithCitation(verdict, line, made_up.citation), issues));
      break;
    }
  }
  LabelledChainAnalysis out;
  out.kind = kind;
  out.assessment = AssessChainAnalysis(verdict, text);
  out.text = std::move(text);
  return out;
}

}  // namespace dsm
