// The built-in synthetic proof domain (DESIGN.md §6): proofs by chaining given equalities.
//
// A problem lists given facts in shuffled order and asks for an equality between two of the
// variables; exactly one chain of given facts joins them (the facts form a tree), the others
// are distractors hanging off it:
//
//   Given: c=d, a=b, e=b, c=b. Prove: a=d.
//
// A proof builds the chain from the goal's left side, one numbered step per fact. Every step
// cites one fact as written in the problem and states what the chain has reached; a fact may
// be used in either direction. A final line states the goal:
//
//   1. a=b, so a=b
//   2. c=b, so a=c
//   3. c=d, so a=d
//   Thus a=d.
//
// Flaws (ChainFlaw) and their expert scores: a step citing a fact that is not given (0); a
// gap, i.e. a step whose fact does not touch the chain so far (0); a step stating a conclusion
// that does not follow (0); a final line claiming the goal before the chain reaches it (0); a
// final line stating something other than the goal (0); a fact cited backwards, i.e. written
// reversed from how the problem gives it (0.5); a missing final line (0.5).
//
// Lines are numbered from 1 over the proof's non-empty lines: step k is line k, the final line
// is the line after the last step (where it would be when it is missing). "Faulty line" below
// always uses this numbering; 0 means "no fault".
//
// Everything here is a pure function of its arguments (seeds included): thread-safe.
#ifndef DSM_TASKS_CHAIN_DOMAIN_H_
#define DSM_TASKS_CHAIN_DOMAIN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsm {

// Variables are the letters 'a', 'b', ... ('a' + num_variables - 1).
inline constexpr int kChainMaxVariables = 26;

// Difficulty. Defaults keep problem + proof near 70 tokens (at most ~90) with
// BuildChainTokenizer's vocabulary.
struct ChainDomainOptions {
  // Size of the alphabet the variables of a problem are drawn from: 3..26.
  int num_variables = 10;
  // Facts on the chain from the goal's left side to its right side (= proof steps): 2..25.
  int min_chain_length = 2;
  int max_chain_length = 4;
  // Extra given facts that hang off the chain (or off each other) and lead nowhere: 0..23.
  int min_distractors = 1;
  int max_distractors = 3;
  // Percentage of all possible problems (decided by content, see ChainProblemSplit) that
  // belong to the eval split: 1..99.
  int eval_percent = 10;

  // One-line error naming the field and the limit, e.g.
  // "max_chain_length: 30 is over 25"; "num_variables: 5 is under max_chain_length + 1 +
  // max_distractors = 8".
  absl::Status Validate() const;
};

enum class ChainSplit { kTrain, kEval };
// "train" / "eval".
const char* ChainSplitName(ChainSplit split);

// One equality "lhs=rhs" between two variables.
struct ChainFact {
  char lhs = 'a';
  char rhs = 'a';

  std::string Text() const { return std::string{lhs, '=', rhs}; }
  ChainFact Reversed() const { return ChainFact{rhs, lhs}; }
  // The side across from `v`: rhs when v is lhs, else lhs (where the fact leads from v).
  char Across(char v) const { return lhs == v ? rhs : lhs; }
  bool operator==(const ChainFact& other) const { return lhs == other.lhs && rhs == other.rhs; }
  bool operator!=(const ChainFact& other) const { return !(*this == other); }
};

// What a problem states: the given facts in the order shown, and the goal.
struct ChainStatement {
  std::vector<ChainFact> facts;
  ChainFact goal;

  // "Given: c=d, a=b, e=b, c=b. Prove: a=d."
  std::string Text() const;
  // Whether `fact` is given exactly as written.
  bool IsGiven(const ChainFact& fact) const;
  // The distinct letters of the facts, in order of first appearance.
  std::vector<char> Letters() const;
  // Identity of the problem regardless of fact order and orientation: two statements with
  // the same key are the same problem (and always land in the same split).
  std::string ContentKey() const;
};

// Reads a statement written by ChainStatement::Text (blanks between items may vary).
// Errors are one line, e.g. "statement: expected 'Prove:' at byte 31".
absl::StatusOr<ChainStatement> ParseChainStatement(absl::string_view text);

// The split a statement belongs to: a stable hash of ContentKey() against eval_percent.
ChainSplit ChainProblemSplit(const ChainStatement& statement, int eval_percent);

// A generated problem.
struct ChainProblem {
  // "chain-train-<seed>" / "chain-eval-<seed>": unique per (split, seed).
  std::string id;
  ChainSplit split = ChainSplit::kTrain;
  uint64_t seed = 0;
  ChainStatement statement;
  // The facts of the chain in proof order, as given (the canonical proof cites these).
  std::vector<ChainFact> chain;
};

// The problem of `split` for `seed`: deterministic, and ChainProblemSplit(statement) == split
// always holds, so train and eval never share a problem. Fails only on invalid options, or
// when options allow so few problems that none of the split turns up in 10000 draws.
absl::StatusOr<ChainProblem> GenerateChainProblem(const ChainDomainOptions& options,
                                                  ChainSplit split, uint64_t seed);

// `count` problems of `split` with distinct ContentKey()s, from seeds first_seed,
// first_seed + 1, ... (a seed whose problem repeats an earlier one is skipped). Fails when
// 20 * count + 100 seeds do not give enough distinct problems.
absl::StatusOr<std::vector<ChainProblem>> GenerateChainProblems(const ChainDomainOptions& options,
                                                                ChainSplit split,
                                                                uint64_t first_seed, int count);

// One numbered step: the cited fact and the conclusion it states.
struct ChainStep {
  ChainFact cited;
  ChainFact conclusion;
};

struct ChainProof {
  std::vector<ChainStep> steps;
  // The final line "Thus x=y."; absent when the proof leaves it out.
  std::optional<ChainFact> final_claim;

  // "1. a=b, so a=b\n2. c=b, so a=c\nThus a=c." (no trailing newline).
  std::string Text() const;
};

// The correct proof: the chain's facts as given, then the goal.
ChainProof CanonicalChainProof(const ChainProblem& problem);

enum class ChainFlaw {
  kNone,                 // 1
  kFactNotGiven,         // 0: a step cites a fact that is not given (a made-up shortcut)
  kGap,                  // 0: a step is left out, so the next one does not touch the chain
  kWrongStepConclusion,  // 0: a step states a conclusion that does not follow
  kUnfinishedChain,      // 0: the proof stops early and the final line claims the goal
  kWrongFinalLine,       // 0: the final line states something other than the goal
  kFactBackwards,        // 0.5: a step writes a given fact reversed
  kMissingFinalLine,     // 0.5: the steps reach the goal but the final line is missing
  kStepAfterGoal,        // 0: one more step after the goal is reached, citing another given
                         //    fact and restating the goal (a gap or a wrong conclusion)
};

// Every flaw, kNone first.
const std::vector<ChainFlaw>& AllChainFlaws();
// "none", "fact_not_given", "gap", "wrong_step_conclusion", "unfinished_chain",
// "wrong_final_line", "fact_backwards", "missing_final_line", "step_after_goal".
const char* ChainFlawName(ChainFlaw flaw);
// The flaw ChainFlawName calls `name`; nullopt for any other name.
std::optional<ChainFlaw> ChainFlawNamed(absl::string_view name);
// The expert score of a proof with this flaw: 1, 0.5 or 0.
double ChainFlawScore(ChainFlaw flaw);
// kNone with probability correct_fraction (clamped to [0, 1]), else one of the eight flaws
// uniformly; deterministic in `seed`.
ChainFlaw SampleChainFlaw(uint64_t seed, double correct_fraction);

// A proof with a known label.
struct LabelledChainProof {
  ChainFlaw flaw = ChainFlaw::kNone;
  ChainProof proof;
  std::string text;  // proof.Text()
  double score = 1;  // ChainFlawScore(flaw)
  // The first faulty line (see the header comment); 0 for kNone.
  int faulty_line = 0;
  // The first fault in the checker's words (ChainIssue* below); empty for kNone.
  std::string issue;
};

// The canonical proof with `flaw` put in (where and how chosen by `seed`). Precondition:
// `problem` came from GenerateChainProblem (chain of at least 2 facts).
LabelledChainProof MakeLabelledChainProof(const ChainProblem& problem, ChainFlaw flaw,
                                          uint64_t seed);

// The one-line issue texts, shared by the checker, the corrupter and the analyses so that all
// three say the same thing. `line` is the proof line (step number for steps).
std::string ChainIssueNotGiven(int line, const ChainFact& cited);
std::string ChainIssueBackwards(int line, const ChainFact& cited);
// `chain_end`: the variable the chain has reached (the goal's left side before step 1).
std::string ChainIssueGap(int line, const ChainFact& cited, char chain_end);
std::string ChainIssueWrongConclusion(int line, const ChainFact& stated, const ChainFact& follows);
std::string ChainIssueMisnumbered(int line, absl::string_view number);
std::string ChainIssueUnreadable(int line);
std::string ChainIssueAfterFinalLine(int line);
std::string ChainIssueFinalNotGoal(const ChainFact& stated, const ChainFact& goal);
// `reached`: the last conclusion stated by a step; nullopt when there is no step.
std::string ChainIssueUnfinished(const ChainFact& goal, const std::optional<ChainFact>& reached);
std::string ChainIssueNotReached(const ChainFact& goal, const std::optional<ChainFact>& reached);
std::string ChainIssueMissingFinalLine();
std::string ChainIssueEmptyProof();

}  // namespace dsm

#endif  // DSM_TASKS_CHAIN_DOMAIN_H_
