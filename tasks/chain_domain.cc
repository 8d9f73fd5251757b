#include "tasks/chain_domain.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tasks/chain_text_cursor.h"
#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

constexpr int kMaxDrawsPerProblem = 10000;
// Salts keep the streams of different uses of one seed apart.
constexpr uint64_t kProblemSalt = 0x70726f626c656d31ULL;  // "problem1"
constexpr uint64_t kSplitSalt = 0x73706c6974303031ULL;    // "split001"
constexpr uint64_t kFlawSalt = 0x666c617773616c74ULL;     // "flawsalt"

absl::Status OutOfRange(absl::string_view field, int value, absl::string_view relation,
                        absl::string_view limit) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is ", relation, " ", limit));
}

template <typename T>
void Shuffle(std::vector<T>* items, SeededRng* rng) {
  for (int i = static_cast<int>(items->size()) - 1; i > 0; --i) {
    std::swap((*items)[i], (*items)[rng->Uniform(i + 1)]);
  }
}

// One draw of a problem (split not yet checked).
ChainProblem DrawProblem(const ChainDomainOptions& options, SeededRng* rng) {
  const int length = rng->Between(options.min_chain_length, options.max_chain_length);
  const int distractors = rng->Between(options.min_distractors, options.max_distractors);
  std::vector<char> letters;
  for (int i = 0; i < options.num_variables; ++i) letters.push_back(static_cast<char>('a' + i));
  Shuffle(&letters, rng);
  ChainProblem problem;
  auto orient = [rng](char x, char y) {
    return rng->Chance(0.5) ? ChainFact{x, y} : ChainFact{y, x};
  };
  for (int i = 0; i < length; ++i) problem.chain.push_back(orient(letters[i], letters[i + 1]));
  std::vector<ChainFact> facts = problem.chain;
  // Distractors grow the tree: each joins a new letter to one already used.
  for (int j = 0; j < distractors; ++j) {
    const int fresh = length + 1 + j;
    facts.push_back(orient(letters[rng->Uniform(fresh)], letters[fresh]));
  }
  Shuffle(&facts, rng);
  problem.statement.facts = std::move(facts);
  problem.statement.goal = ChainFact{letters[0], letters[length]};
  return problem;
}

}  // namespace

absl::Status ChainDomainOptions::Validate() const {
  if (num_variables < 3) return OutOfRange("num_variables", num_variables, "under", "3");
  if (num_variables > kChainMaxVariables) {
    return OutOfRange("num_variables", num_variables, "over", absl::StrCat(kChainMaxVariables));
  }
  if (min_chain_length < 2) return OutOfRange("min_chain_length", min_chain_length, "under", "2");
  if (max_chain_length > kChainMaxVariables - 1) {
    return OutOfRange("max_chain_length", max_chain_length, "over",
                      absl::StrCat(kChainMaxVariables - 1));
  }
  if (max_chain_length < min_chain_length) {
    return OutOfRange("max_chain_length", max_chain_length, "under",
                      absl::StrCat("min_chain_length ", min_chain_length));
  }
  if (min_distractors < 0) return OutOfRange("min_distractors", min_distractors, "under", "0");
  if (max_distractors < min_distractors) {
    return OutOfRange("max_distractors", max_distractors, "under",
                      absl::StrCat("min_distractors ", min_distractors));
  }
  const int needed = max_chain_length + 1 + max_distractors;
  if (num_variables < needed) {
    return OutOfRange("num_variables", num_variables, "under",
                      absl::StrCat("max_chain_length + 1 + max_distractors = ", needed));
  }
  if (eval_percent < 1) return OutOfRange("eval_percent", eval_percent, "under", "1");
  if (eval_percent > 99) return OutOfRange("eval_percent", eval_percent, "over", "99");
  return absl::OkStatus();
}

const char* ChainSplitName(ChainSplit split) {
  return split == ChainSplit::kEval ? "eval" : "train";
}

std::string ChainStatement::Text() const {
  std::vector<std::string> parts;
  parts.reserve(facts.size());
  for (const ChainFact& fact : facts) parts.push_back(fact.Text());
  return absl::StrCat("Given: ", absl::StrJoin(parts, ", "), ". Prove: ", goal.Text(), ".");
}

bool ChainStatement::IsGiven(const ChainFact& fact) const {
  return std::find(facts.begin(), facts.end(), fact) != facts.end();
}

std::vector<char> ChainStatement::Letters() const {
  std::vector<char> letters;
  for (const ChainFact& f : facts) {
    for (char c : {f.lhs, f.rhs}) {
      if (std::find(letters.begin(), letters.end(), c) == letters.end()) letters.push_back(c);
    }
  }
  return letters;
}

std::string ChainStatement::ContentKey() const {
  auto unordered = [](const ChainFact& f) {
    return f.lhs <= f.rhs ? f.Text() : f.Reversed().Text();
  };
  std::vector<std::string> parts;
  for (const ChainFact& fact : facts) parts.push_back(unordered(fact));
  std::sort(parts.begin(), parts.end());
  return absl::StrCat(unordered(goal), "|", absl::StrJoin(parts, ","));
}

absl::StatusOr<ChainStatement> ParseChainStatement(absl::string_view text) {
  ChainTextCursor cursor(text);
  auto error = [&cursor](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("statement: expected ", what, " at byte ", cursor.pos()));
  };
  ChainStatement statement;
  if (!cursor.Consume("Given:")) return error("'Given:'");
  do {
    auto fact = cursor.Fact();
    if (!fact) return error("a fact such as a=b");
    statement.facts.push_back(*fact);
  } while (cursor.Consume(","));
  if (!cursor.Consume(".")) return error("'.' after the facts");
  if (!cursor.Consume("Prove:")) return error("'Prove:'");
  auto goal = cursor.Fact();
  if (!goal) return error("a goal such as a=b");
  statement.goal = *goal;
  cursor.Consume(".");
  // Trailing newlines are harmless; anything else is not a statement of this domain.
  while (cursor.Consume("\n")) {
  }
  if (!cursor.AtEnd()) return error("the end of the statement");
  return statement;
}

ChainSplit ChainProblemSplit(const ChainStatement& statement, int eval_percent) {
  const uint64_t h = CombineSeeds(StableHash64(statement.ContentKey()), kSplitSalt);
  return static_cast<int>(h % 100) < eval_percent ? ChainSplit::kEval : ChainSplit::kTrain;
}

absl::StatusOr<ChainProblem> GenerateChainProblem(const ChainDomainOptions& options,
                                                  ChainSplit split, uint64_t seed) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  SeededRng rng(CombineSeeds(CombineSeeds(seed, kProblemSalt), static_cast<uint64_t>(split)));
  for (int draw = 0; draw < kMaxDrawsPerProblem; ++draw) {
    ChainProblem problem = DrawProblem(options, &rng);
    if (ChainProblemSplit(problem.statement, options.eval_percent) != split) continue;
    problem.split = split;
    problem.seed = seed;
    problem.id = absl::StrCat("chain-", ChainSplitName(split), "-", seed);
    return problem;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("options: no ", ChainSplitName(split), " problem in ", kMaxDrawsPerProblem,
                   " draws for seed ", seed, " (too few variables or too short chains?)"));
}

absl::StatusOr<std::vector<ChainProblem>> GenerateChainProblems(const ChainDomainOptions& options,
                                                                ChainSplit split,
                                                                uint64_t first_seed, int count) {
  if (count < 0) return OutOfRange("count", count, "under", "0");
  std::vector<ChainProblem> problems;
  absl::flat_hash_set<std::string> seen;
  const uint64_t max_seeds = 20 * static_cast<uint64_t>(count) + 100;
  for (uint64_t i = 0; static_cast<int>(problems.size()) < count; ++i) {
    if (i == max_seeds) {
      return absl::FailedPreconditionError(
          absl::StrCat("count: only ", problems.size(), " distinct ", ChainSplitName(split),
                       " problems in ", max_seeds, " seeds, ", count, " asked"));
    }
    auto problem = GenerateChainProblem(options, split, first_seed + i);
    if (!problem.ok()) return problem.status();
    if (!seen.insert(problem->statement.ContentKey()).second) continue;
    problems.push_back(*std::move(problem));
  }
  return problems;
}

std::string ChainProof::Text() const {
  std::string text;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (i > 0) text += "\n";
    absl::StrAppend(&text, i + 1, ". ", steps[i].cited.Text(), ", so ", steps[i].conclusion.Text());
  }
  if (final_claim) {
    if (!text.empty()) text += "\n";
    absl::StrAppend(&text, "Thus ", final_claim->Text(), ".");
  }
  return text;
}

ChainProof CanonicalChainProof(const ChainProblem& problem) {
  ChainProof proof;
  const char start = problem.statement.goal.lhs;
  char end = start;
  for (const ChainFact& fact : problem.chain) {
    end = fact.Across(end);
    proof.steps.push_back(ChainStep{fact, ChainFact{start, end}});
  }
  proof.final_claim = problem.statement.goal;
  return proof;
}

const std::vector<ChainFlaw>& AllChainFlaws() {
  static const std::vector<ChainFlaw>* const kAll =
      new std::vector<ChainFlaw>{ChainFlaw::kNone,
                                 ChainFlaw::kFactNotGiven,
                                 ChainFlaw::kGap,
                                 ChainFlaw::kWrongStepConclusion,
                                 ChainFlaw::kUnfinishedChain,
                                 ChainFlaw::kWrongFinalLine,
                                 ChainFlaw::kFactBackwards,
                                 ChainFlaw::kMissingFinalLine,
                                 ChainFlaw::kStepAfterGoal};
  return *kAll;
}

const char* ChainFlawName(ChainFlaw flaw) {
  switch (flaw) {
    case ChainFlaw::kNone:
      return "none";
    case ChainFlaw::kFactNotGiven:
      return "fact_not_given";
    case ChainFlaw::kGap:
      return "gap";
    case ChainFlaw::kWrongStepConclusion:
      return "wrong_step_conclusion";
    case ChainFlaw::kUnfinishedChain:
      return "unfinished_chain";
    case ChainFlaw::kWrongFinalLine:
      return "wrong_final_line";
    case ChainFlaw::kFactBackwards:
      return "fact_backwards";
    case ChainFlaw::kMissingFinalLine:
      return "missing_final_line";
    case ChainFlaw::kStepAfterGoal:
      return "step_after_goal";
  }
  return "unknown";
}

std::optional<ChainFlaw> ChainFlawNamed(absl::string_view name) {
  for (const ChainFlaw flaw : AllChainFlaws()) {
    if (name == ChainFlawName(flaw)) return flaw;
  }
  return std::nullopt;
}

double ChainFlawScore(ChainFlaw flaw) {
  switch (flaw) {
    case ChainFlaw::kNone:
      return 1.0;
    case ChainFlaw::kFactBackwards:
    case ChainFlaw::kMissingFinalLine:
      return 0.5;
    default:
      return 0.0;
  }
}

ChainFlaw SampleChainFlaw(uint64_t seed, double correct_fraction) {
  SeededRng rng(CombineSeeds(seed, kFlawSalt));
  if (rng.Chance(std::clamp(correct_fraction, 0.0, 1.0))) return ChainFlaw::kNone;
  const std::vector<ChainFlaw>& all = AllChainFlaws();
  return all[1 + rng.Uniform(static_cast<int>(all.size()) - 1)];
}

LabelledChainProof MakeLabelledChainProof(const ChainProblem& problem, ChainFlaw flaw,
                                          uint64_t seed) {
  SeededRng rng(CombineSeeds(CombineSeeds(seed, kFlawSalt), static_cast<uint64_t>(flaw)));
  const ChainStatement& statement = problem.statement;
  const ChainFact goal = statement.goal;
  ChainProof proof = CanonicalChainProof(problem);
  const int n = static_cast<int>(proof.steps.size());
  // path[i] = the variable the chain reaches after step i (path[0] = the goal's left side).
  std::vector<char> path{goal.lhs};
  for (const ChainStep& step : proof.steps) path.push_back(step.conclusion.rhs);
  // Letters of the problem other than `a` and `b`, for wrong conclusions.
  auto other_letter = [&](char a, char b) {
    std::vector<char> letters = statement.Letters();
    letters.erase(std::remove_if(letters.begin(), letters.end(), [&](char c) { return c == a || c == b; }),
                  letters.end());
    std::sort(letters.begin(), letters.end());
    return letters[rng.Uniform(static_cast<int>(letters.size()))];
  };

  LabelledChainProof out;
  out.flaw = flaw;
  out.score = ChainFlawScore(flaw);
  switch (flaw) {
    case ChainFlaw::kNone:
      break;
    case ChainFlaw::kFactNotGiven: {
      // Steps i and i+1 (0-based) merged into one made-up fact path[i] = path[i+2].
      const int i = rng.Uniform(n - 1);
      ChainFact made_up{path[i], path[i + 2]};
      if (rng.Chance(0.5)) made_up = made_up.Reversed();
      proof.steps[i] = ChainStep{made_up, ChainFact{goal.lhs, path[i + 2]}};
      proof.steps.erase(proof.steps.begin() + i + 1);
      out.faulty_line = i + 1;
      out.issue = ChainIssueNotGiven(i + 1, made_up);
      break;
    }
    case ChainFlaw::kGap: {
      // Step i (0-based, not the last) left out; the next one then misses path[i].
      const int i = rng.Uniform(n - 1);
      proof.steps.erase(proof.steps.begin() + i);
      out.faulty_line = i + 1;
      out.issue = ChainIssueGap(i + 1, proof.steps[i].cited, path[i]);
      break;
    }
    case ChainFlaw::kWrongStepConclusion: {
      const int i = rng.Uniform(n);
      const ChainFact follows = proof.steps[i].conclusion;
      // Half the time the side of the fact the chain came from, else another letter.
      const char wrong = (i > 0 && rng.Chance(0.5)) ? path[i] : other_letter(goal.lhs, path[i + 1]);
      proof.steps[i].conclusion = ChainFact{goal.lhs, wrong};
      out.faulty_line = i + 1;
      out.issue = ChainIssueWrongConclusion(i + 1, proof.steps[i].conclusion, follows);
      break;
    }
    case ChainFlaw::kUnfinishedChain: {
      const int keep = rng.Between(1, n - 1);
      proof.steps.resize(keep);
      out.faulty_line = keep + 1;
      out.issue = ChainIssueUnfinished(goal, proof.steps.back().conclusion);
      break;
    }
    case ChainFlaw::kWrongFinalLine: {
      const ChainFact stated{goal.lhs, other_letter(goal.lhs, goal.rhs)};
      proof.final_claim = stated;
      out.faulty_line = n + 1;
      out.issue = ChainIssueFinalNotGoal(stated, goal);
      break;
    }
    case ChainFlaw::kFactBackwards: {
      const int i = rng.Uniform(n);
      proof.steps[i].cited = proof.steps[i].cited.Reversed();
      out.faulty_line = i + 1;
      out.issue = ChainIssueBackwards(i + 1, proof.steps[i].cited);
      break;
    }
    case ChainFlaw::kMissingFinalLine:
      proof.final_claim.reset();
      out.faulty_line = n + 1;
      out.issue = ChainIssueMissingFinalLine();
      break;
    case ChainFlaw::kStepAfterGoal: {
      // The chain is at the goal's right side; one more step cites a given fact other than the
      // last step's and claims the goal again (what a generator that pads its proofs writes).
      std::vector<ChainFact> others;
      for (const ChainFact& f : statement.facts) {
        if (f != proof.steps.back().cited) others.push_back(f);
      }
      const ChainFact cited = others[rng.Uniform(static_cast<int>(others.size()))];
      proof.steps.push_back(ChainStep{cited, goal});
      out.faulty_line = n + 1;
      if (cited.lhs != goal.rhs && cited.rhs != goal.rhs) {
        out.issue = ChainIssueGap(n + 1, cited, goal.rhs);
      } else {
        const ChainFact follows{goal.lhs, cited.Across(goal.rhs)};
        out.issue = ChainIssueWrongConclusion(n + 1, goal, follows);
      }
      break;
    }
  }
  out.text = proof.Text();
  out.proof = std::move(proof);
  return out;
}

std::string ChainIssueNotGiven(int line, const ChainFact& cited) {
  return absl::StrCat("Step ", line, " cites ", cited.Text(), ", which is not given.");
}
std::string ChainIssueBackwards(int line, const ChainFact& cited) {
  return absl::StrCat("Step ", line, " cites ", cited.Text(), ", but the given fact is ",
                      cited.Reversed().Text(), ".");
}
std::string ChainIssueGap(int line, const ChainFact& cited, char chain_end) {
  return absl::StrCat("Step ", line, " has a gap: ", cited.Text(), " does not contain ",
                      std::string(1, chain_end), ".");
}
std::string ChainIssueWrongConclusion(int line, const ChainFact& stated, const ChainFact& follows) {
  return absl::StrCat("Step ", line, " concludes ", stated.Text(), ", but ", follows.Text(),
                      " follows.");
}
std::string ChainIssueMisnumbered(int line, absl::string_view number) {
  return absl::StrCat("Step ", line, " is numbered ", number, ".");
}
std::string ChainIssueUnreadable(int line) {
  return absl::StrCat("Line ", line, " cannot be read.");
}
std::string ChainIssueAfterFinalLine(int line) {
  return absl::StrCat("Line ", line, " comes after the conclusion.");
}
std::string ChainIssueFinalNotGoal(const ChainFact& stated, const ChainFact& goal) {
  return absl::StrCat("The final line states ", stated.Text(), ", not ", goal.Text(), ".");
}
std::string ChainIssueUnfinished(const ChainFact& goal, const std::optional<ChainFact>& reached) {
  if (!reached) return absl::StrCat("The final line claims ", goal.Text(), " with no steps.");
  return absl::StrCat("The final line claims ", goal.Text(), ", but the chain ends at ",
                      reached->Text(), ".");
}
std::string ChainIssueNotReached(const ChainFact& goal, const std::optional<ChainFact>& reached) {
  if (!reached)
    return absl::StrCat("The final line is missing and no step reaches ", goal.Text(), ".");
  return absl::StrCat("The final line is missing and the chain ends at ", reached->Text(), ".");
}
std::string ChainIssueMissingFinalLine() { return "The final line is missing."; }
std::string ChainIssueEmptyProof() { return "Step 1 is missing: the proof is empty."; }

}  // namespace dsm
