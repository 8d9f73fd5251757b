// Written analyses for the chain domain: the short verifier-style analysis (also the
// generator's self-evaluation), the generator's whole output, the meta-verifier's analysis of
// an analysis, and labelled analyses of several kinds for meta-verifier data (phase 2) and
// format warm-up (phase 0).
//
// The texts follow the output format of configs/prompts/verifier.txt and meta_verifier.txt
// (markers, then \boxed{score}) so services/scoring's ParseScore reads them, but stay a few
// dozen tokens long for the tiny model. A verifier-style analysis first notes how each step's
// citation stands against the given facts, one check per cited fact, in proof order, and then
// names the issues:
//
//   Here is my evaluation of the solution:
//   Cited: 1. a: a=b given, 2. b: b=e not given, end e: a=e goal.
//   Step 2 cites b=e, which is not given.
//   Based on my evaluation, the final overall score should be:
//   \boxed{0}
//
// Pure functions of their arguments (seeds included); thread-safe.
#ifndef DSM_TASKS_CHAIN_ANALYSIS_H_
#define DSM_TASKS_CHAIN_ANALYSIS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "tasks/chain_checker.h"
#include "tasks/chain_domain.h"

namespace dsm {

// What a faithful analysis of a correct proof says.
inline constexpr absl::string_view kChainNoIssue = "All steps are correct.";

// "0", "0.5" or "1".
std::string ChainScoreText(double score);

// What the verifier's citation note and the meta-verifier's check note open with.
inline constexpr absl::string_view kChainCitedPrefix = "Cited: ";
inline constexpr absl::string_view kChainCheckedPrefix = "Checked: ";

// "Cited: 1. a: a=b given, 2. b: b=e not given, 3. e: c=d gap, end e: a=c not goal." ("Cited: none."
// when no line is a step and there is no final line): the note that opens a verifier-style
// analysis. It names no step or line in words, so ReadChainAnalysis takes no claim from it; it
// spells out, one cited fact at a time, the look-ups the issue lines rest on, so that a small
// model checks each citation where it writes it instead of all at once. Each item starts like
// the proof line it copies ("2. " finds step 2), then the variable the chain has reached (the
// right side of the conclusion the step before states; the goal's left side at step 1), then
// the cited fact and its status: "not given" (neither way round), "gap" (given, but without the
// variable reached: the link is a comparison with the letter two tokens back, not a second
// look-up), "reversed" (given the other way round) or "given". With `final_claim` (what the
// final line states) a last item looks that up too, after where the cited facts take the chain
// (`chain_end`, else ChainCitedEnd from the goal's left side): "end d: a=d goal" when it is
// `goal` and the chain got to its right side, "not reached" when it is the goal but the last
// fact leads elsewhere (a last step that claims the goal without reaching it, or a chain that
// stops short), else "not goal" (the goal is the one equality in the problem that is not
// given).
std::string ChainCitationNote(const std::vector<ChainCitation>& citations,
                              const std::optional<ChainFact>& final_claim = std::nullopt,
                              const ChainFact& goal = {}, std::optional<char> chain_end = std::nullopt);

// Where the cited facts take the chain: the other side of the last step's fact from the variable
// that step had reached when the fact contains it, else that variable (`start` with no step).
char ChainCitedEnd(const std::vector<ChainCitation>& citations, char start);

// The note that opens the warm-up's meta-analysis: the true citation of each step line in
// `lines` (the lines an analysis names), in the citation note's words: "Checked: 2. b: a=b not
// given." ("Checked: none." when no named line is a step). A meta-verifier must look a named
// citation up to tell a real "cites a=b, which is not given" from a made-up one; written as the
// verifier's note items, the look-up is the one the verifier already does, next to its fact.
std::string ChainMetaCheckNote(const ChainVerdict& verdict, const std::vector<int>& lines);

// How an analysis's citation note stands against the true citations of the proof it grades:
// each true citation is right when the first "Cited: " line of `analysis` has, at the same
// place, exactly the item ChainCitationNote writes for it ("2. b: b=c reversed"). `faulty`
// counts the true citations that are not given as written or do not link (gaps),
// `faulty_right` those of them noted right; `reversed` and `reversed_right` the same for the
// citations given the other way round (the hardest look-up: both letters are in one given fact).
struct ChainLookupTally {
  int citations = 0;
  int right = 0;
  int faulty = 0;
  int faulty_right = 0;
  int reversed = 0;
  int reversed_right = 0;
};
ChainLookupTally TallyChainLookup(const std::vector<ChainCitation>& truth, absl::string_view analysis);

// "<evaluation marker>\n<lines, one per line, or kChainNoIssue>\n<score marker>\n\boxed{s}".
std::string RenderChainAnalysis(double score, const std::vector<std::string>& issues,
                                const ChainAnalysisMarkers& markers = {});

// The faithful analysis of a checked proof: its citation note, then its first fault (and its
// first fatal fault when that comes later) or kChainNoIssue, with the checker's score.
std::string RenderFaithfulChainAnalysis(const ChainVerdict& verdict,
                                        const ChainAnalysisMarkers& markers = {});

// The analysis of one who sees nothing wrong: every citation noted given and linking, the final
// line (if any) taken for the goal, kChainNoIssue, score 1 — kMissedIssue's text, and an
// overconfident writer's self-evaluation (chain_warmup_examples.h).
std::string RenderOverlookingChainAnalysis(const ChainVerdict& verdict,
                                           const ChainAnalysisMarkers& markers = {});

// A generator output: "## Solution\n<proof>\n\n## Self Evaluation\n\n<self_analysis>"
// (services/scoring's SplitGeneratorOutput gives back `proof` and `self_analysis`).
std::string RenderChainGeneratorOutput(absl::string_view proof, absl::string_view self_analysis);

// The meta-verifier's analysis of an analysis: the assessment's reason and meta-score, in the
// meta_verifier.txt format (ChainMetaAnalysisMarkers()).
std::string RenderChainMetaAnalysis(const ChainAnalysisAssessment& assessment);

enum class ChainAnalysisKind {
  kFaithful,     // names the real fault (or none) with the right score: meta 1
  kMissedIssue,  // flawed proof called correct, score 1, every citation noted given, the final
                 // line the goal: meta 1
                 // (missing is not judged)
  kWrongScore,   // names the real fault (or none) with a wrong score: meta 0.5
  kBogusIssue,   // names one line that is not faulty, scored by that made-up issue (a made-up
                 // citation issue shows in the note too): meta 0
  kMixedIssues,  // names the real fault and a line that is not faulty: meta 0.5
};
const std::vector<ChainAnalysisKind>& AllChainAnalysisKinds();
// "faithful", "missed_issue", "wrong_score", "bogus_issue", "mixed_issues".
const char* ChainAnalysisKindName(ChainAnalysisKind kind);

struct LabelledChainAnalysis {
  ChainAnalysisKind kind = ChainAnalysisKind::kFaithful;
  std::string text;
  // What the checker makes of `text` against the proof: meta_score is the expert meta-label,
  // reason its one-line explanation, hallucinated the issue-6 flag.
  ChainAnalysisAssessment assessment;
};

// An analysis of `proof` of the given kind (choices made by `seed`), or nullopt when the kind
// does not exist for this proof: kMissedIssue and kMixedIssues need a flawed proof;
// kBogusIssue and kMixedIssues need a line that is not faulty.
std::optional<LabelledChainAnalysis> MakeLabelledChainAnalysis(const ChainStatement& statement,
                                                               const LabelledChainProof& proof,
                                                               ChainAnalysisKind kind,
                                                               uint64_t seed);

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_ANALYSIS_H_
