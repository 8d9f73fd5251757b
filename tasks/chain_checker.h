// The exact checker of the chain domain (chain_domain.h): grades any text as a proof of a
// statement with the expert rubric (1 / 0.5 / 0) and names the faulty lines; and judges a
// verifier analysis of a proof against those faults (the expert meta-label, and whether the
// analysis hallucinates an issue).
//
// Proof rules (lines are the proof's non-empty lines, numbered from 1; blanks inside a line
// are ignored):
// - Step k is "k. u=v, so x=w" (an optional "." at the end). Its citation u=v must be given
//   exactly (fatal if neither u=v nor v=u is given; minor if only v=u is, "cited backwards").
//   It must contain the variable the chain has reached (fatal gap otherwise; before step 1
//   the chain is at the goal's left side). Its conclusion must be "<goal's left side>=<the
//   other side of u=v>" (fatal otherwise). A step numbered j != k is fatal.
// - The final line is "Thus x=y" (an optional "." at the end) and must be the last line. It
//   must state the goal (fatal otherwise) and the chain must have reached the goal's right
//   side (fatal otherwise). Missing: minor when the chain reached the goal, fatal when not.
// - Any other line is unreadable (fatal); an empty proof is fatal (line 1).
// - After a faulty step the chain continues from the conclusion the step states, so a fault
//   is judged against what the proof claims at that point. One fault per line at most: the
//   first of not given / gap / wrong conclusion / backwards.
// Score: 0 with any fatal fault, else 0.5 with any minor one, else 1.
//
// Pure functions of their arguments; thread-safe. Linear in the input, whatever it holds.
#ifndef DSM_TASKS_CHAIN_CHECKER_H_
#define DSM_TASKS_CHAIN_CHECKER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasks/chain_domain.h"

namespace dsm {

struct ChainFault {
  int line = 0;        // 1-based proof line (step k = line k; see chain_domain.h)
  bool fatal = true;   // false: a minor flaw (0.5)
  std::string reason;  // one line, e.g. "Step 2 cites b=e, which is not given."
};

// How a step's citation stands against the given facts.
enum class ChainCitationStatus { kGiven, kReversed, kNotGiven };

// One step's citation as the checker read it (every line read as a step, misnumbered ones too).
struct ChainCitation {
  int line = 0;  // the step's line
  ChainFact cited;
  ChainCitationStatus status = ChainCitationStatus::kGiven;
  // The variable the chain had reached before this step: the goal's left side before step 1,
  // else the right side of the conclusion the step before states.
  char reached = 0;
  // Whether `cited` contains `reached`, either side (a step that does not is a gap).
  bool links = true;
};

struct ChainVerdict {
  double score = 0;                // 0, 0.5 or 1
  std::vector<ChainFault> faults;  // in line order; empty iff score == 1
  int steps = 0;                   // lines read as steps (well-formed or misnumbered)
  std::vector<ChainCitation> citations;  // one per step, in line order (steps == size())
  // The final line's number: where "Thus ..." is, or where it should be when missing.
  int final_line = 0;
  // What the final line states; nullopt when there is no final line.
  std::optional<ChainFact> final_claim;
  // The statement's goal.
  ChainFact goal;

  // The first fault, or nullptr when the proof is correct.
  const ChainFault* first_fault() const { return faults.empty() ? nullptr : &faults.front(); }
  int first_faulty_line() const { return faults.empty() ? 0 : faults.front().line; }
  // The fault on `line`, or nullptr.
  const ChainFault* FaultOn(int line) const;
};

// Grades `proof` (any text: model output, garbage, empty) as a proof of `statement`.
ChainVerdict CheckChainProof(const ChainStatement& statement, absl::string_view proof);
// Same, reading the statement first; fails only when `statement` is not a chain statement
// (ParseChainStatement's error).
absl::StatusOr<ChainVerdict> CheckChainProof(absl::string_view statement, absl::string_view proof);

// `proof` read back as a ChainProof when every non-empty line is a step numbered in order from 1
// or, last, the final line (the checker's line forms; any score): then the proof's lines are
// exactly the ChainProof's. Else nullopt (an unreadable, misnumbered or trailing line, or none).
std::optional<ChainProof> ParseChainProof(absl::string_view proof);

// The two phrases of a verifier analysis (configs/prompts/verifier.txt header; the same
// strings as services/scoring's VerifierMarkers(), which tasks/ cannot depend on).
struct ChainAnalysisMarkers {
  std::string evaluation = "Here is my evaluation of the solution:";
  std::string score = "Based on my evaluation, the final overall score should be:";
};
// The meta-verifier's phrases (configs/prompts/meta_verifier.txt).
ChainAnalysisMarkers ChainMetaAnalysisMarkers();

// What an analysis says, read loosely: only the text after the last "</think>" counts.
struct ChainAnalysisClaims {
  bool has_evaluation_marker = false;
  bool has_score_marker = false;
  // The last non-empty \boxed{} after the last score marker, if it is 0, 0.5 or 1
  // (the score parser's accepted forms: "1", "0.5", ".5", "1.0", ...).
  std::optional<double> score;
  // Lines it names as faulty, sorted and unique: "Step k" / "Line k" (any case) name line k,
  // "final line" names `final_line`; "proof is empty" names line 1. Only the text between the
  // evaluation marker and the score marker is searched (all of it when a marker is missing).
  std::vector<int> lines;

  // Both markers and a valid score: R_format = 1.
  bool format_ok() const { return has_evaluation_marker && has_score_marker && score.has_value(); }
};
ChainAnalysisClaims ReadChainAnalysis(absl::string_view analysis, int final_line,
                                      const ChainAnalysisMarkers& markers = {});

// The expert's judgement of an analysis (METHOD.md meta-verifier rubric, on lines):
// - format not ok: meta_score 0;
// - it names lines and none is faulty: 0;
// - it names faulty and non-faulty lines: 0.5;
// - otherwise (every named line faulty, or none named) the score must fit: the worst named
//   fault's score (0 fatal, 0.5 minor), or 1 when none is named; 1 if it fits, else 0.5.
// Missing a real fault is not judged here (positive claims are out of scope): it costs the
// verifier R_score instead.
struct ChainAnalysisAssessment {
  ChainAnalysisClaims claims;
  std::vector<int> real_lines;   // named lines that are faulty
  std::vector<int> bogus_lines;  // named lines that are not
  double meta_score = 0;
  // The issue-6 "hallucinated issue": names a line that is not faulty, or gives a score below
  // 1 to a correct proof.
  bool hallucinated = false;
  // Whether the analysis's score equals the proof's true score.
  bool score_agrees = false;
  // One line: why the meta-score is what it is (for meta-analyses and the `issue` field).
  std::string reason;
};
ChainAnalysisAssessment AssessChainAnalysis(const ChainVerdict& verdict, absl::string_view analysis,
                                            const ChainAnalysisMarkers& markers = {});

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_CHECKER_H_
