// The chain domain (tasks/chain_domain.h): seeded generation, splits, statements, the
// canonical proof, and the corrupter's labels against the exact checker.
#include "tasks/chain_domain.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "tasks/chain_checker.h"

namespace dsm {
namespace {

ChainProblem Problem(ChainSplit split, uint64_t seed, const ChainDomainOptions& options = {}) {
  auto problem = GenerateChainProblem(options, split, seed);
  EXPECT_TRUE(problem.ok()) << problem.status();
  return *problem;
}

TEST(ChainDomain, SameSeedSameProblemDifferentSeedsDiffer) {
  for (uint64_t seed : {0u, 1u, 77u, 123456u}) {
    const ChainProblem a = Problem(ChainSplit::kTrain, seed);
    const ChainProblem b = Problem(ChainSplit::kTrain, seed);
    EXPECT_EQ(a.statement.Text(), b.statement.Text());
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(CanonicalChainProof(a).Text(), CanonicalChainProof(b).Text());
    for (ChainFlaw flaw : AllChainFlaws()) {
      EXPECT_EQ(MakeLabelledChainProof(a, flaw, 9).text, MakeLabelledChainProof(b, flaw, 9).text);
    }
  }
  std::set<std::string> texts;
  for (uint64_t seed = 0; seed < 200; ++seed)
    texts.insert(Problem(ChainSplit::kTrain, seed).statement.Text());
  EXPECT_GT(texts.size(), 190u);
}

// A golden value: the generator must not drift silently (every stored dataset and every
// tokenizer trained on the domain would change).
TEST(ChainDomain, GoldenProblemForSeedZero) {
  const ChainProblem p = Problem(ChainSplit::kTrain, 0);
  EXPECT_EQ(p.id, "chain-train-0");
  EXPECT_EQ(p.statement.Text(), "Given: j=f, f=g, b=h, b=j. Prove: b=f.");
  EXPECT_EQ(CanonicalChainProof(p).Text(), "1. b=j, so b=j\n2. j=f, so b=f\nThus b=f.");
}

TEST(ChainDomain, TrainAndEvalNeverShareAProblem) {
  const ChainDomainOptions options;
  auto train = GenerateChainProblems(options, ChainSplit::kTrain, 0, 3000);
  auto eval = GenerateChainProblems(options, ChainSplit::kEval, 0, 300);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(eval.ok()) << eval.status();
  std::set<std::string> train_keys;
  for (const ChainProblem& p : *train) {
    EXPECT_EQ(p.split, ChainSplit::kTrain);
    EXPECT_EQ(ChainProblemSplit(p.statement, options.eval_percent), ChainSplit::kTrain);
    train_keys.insert(p.statement.ContentKey());
  }
  EXPECT_EQ(train_keys.size(), 3000u);  // distinct within the split
  for (const ChainProblem& p : *eval) {
    EXPECT_EQ(p.split, ChainSplit::kEval);
    EXPECT_EQ(train_keys.count(p.statement.ContentKey()), 0u) << p.statement.Text();
  }
}

TEST(ChainDomain, ContentKeyIgnoresOrderAndOrientation) {
  auto a = ParseChainStatement("Given: a=b, c=b. Prove: a=c.");
  auto b = ParseChainStatement("Given: b=c, b=a. Prove: c=a.");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ContentKey(), b->ContentKey());
  EXPECT_EQ(ChainProblemSplit(*a, 10), ChainProblemSplit(*b, 10));
}

TEST(ChainDomain, LettersInOrderOfFirstAppearance) {
  auto s = ParseChainStatement("Given: d=b, a=d, c=e. Prove: a=e.");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->Letters(), (std::vector<char>{'d', 'b', 'a', 'c', 'e'}));
}

TEST(ChainDomain, ProblemsRespectTheOptions) {
  ChainDomainOptions options;
  options.num_variables = 12;
  options.min_chain_length = 3;
  options.max_chain_length = 5;
  options.min_distractors = 2;
  options.max_distractors = 4;
  std::map<int, int> lengths;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    const ChainProblem p = Problem(ChainSplit::kTrain, seed, options);
    const int length = static_cast<int>(p.chain.size());
    const int distractors = static_cast<int>(p.statement.facts.size()) - length;
    ++lengths[length];
    EXPECT_GE(distractors, 2);
    EXPECT_LE(distractors, 4);
    for (const ChainFact& f : p.statement.facts) {
      EXPECT_LT(f.lhs, 'a' + 12);
      EXPECT_LT(f.rhs, 'a' + 12);
    }
    auto parsed = ParseChainStatement(p.statement.Text());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->Text(), p.statement.Text());
  }
  EXPECT_EQ(lengths.size(), 3u);
  EXPECT_EQ(lengths.begin()->first, 3);
  EXPECT_EQ(lengths.rbegin()->first, 5);
}

TEST(ChainDomain, InvalidOptionsNameTheFieldAndTheLimit) {
  ChainDomainOptions o;
  o.num_variables = 27;
  EXPECT_EQ(o.Validate().message(), "num_variables: 27 is over 26");
  o = {};
  o.min_chain_length = 1;
  EXPECT_EQ(o.Validate().message(), "min_chain_length: 1 is under 2");
  o = {};
  o.max_chain_length = 6;
  o.max_distractors = 4;
  EXPECT_EQ(o.Validate().message(),
            "num_variables: 10 is under max_chain_length + 1 + max_distractors = 11");
  o = {};
  o.eval_percent = 0;
  EXPECT_EQ(o.Validate().message(), "eval_percent: 0 is under 1");
  o = {};
  o.max_distractors = 0;
  EXPECT_EQ(o.Validate().message(), "max_distractors: 0 is under min_distractors 1");
  EXPECT_EQ(GenerateChainProblem(o, ChainSplit::kTrain, 1).status().message(),
            "max_distractors: 0 is under min_distractors 1");
}

TEST(ChainDomain, BadStatementsGiveOneLineErrors) {
  EXPECT_EQ(ParseChainStatement("Given a=b. Prove: a=b.").status().message(),
            "statement: expected 'Given:' at byte 0");
  EXPECT_EQ(ParseChainStatement("Given: a=b, . Prove: a=b.").status().message(),
            "statement: expected a fact such as a=b at byte 11");
  EXPECT_EQ(ParseChainStatement("Given: a=b. Prove: a=b. extra").status().message(),
            "statement: expected the end of the statement at byte 24");
}

TEST(ChainDomain, CanonicalProofsScoreOne) {
  for (ChainSplit split : {ChainSplit::kTrain, ChainSplit::kEval}) {
    for (uint64_t seed = 0; seed < 1000; ++seed) {
      const ChainProblem p = Problem(split, seed);
      const ChainVerdict v = CheckChainProof(p.statement, CanonicalChainProof(p).Text());
      ASSERT_EQ(v.score, 1.0) << p.statement.Text() << "\n" << CanonicalChainProof(p).Text();
      EXPECT_TRUE(v.faults.empty());
    }
  }
}

// The corrupter's label (score, first faulty line, issue) is what the checker finds, on 10k
// samples covering every flaw.
TEST(ChainDomain, CheckerAgreesWithGeneratorLabelsOn10kSamples) {
  ChainDomainOptions hard;
  hard.num_variables = 20;
  hard.max_chain_length = 8;
  hard.max_distractors = 6;
  std::map<ChainFlaw, int> seen;
  for (int i = 0; i < 10000; ++i) {
    const ChainDomainOptions& options = i % 4 == 3 ? hard : ChainDomainOptions{};
    const ChainProblem p =
        Problem(i % 10 == 0 ? ChainSplit::kEval : ChainSplit::kTrain, i, options);
    const ChainFlaw flaw = SampleChainFlaw(i, 0.3);
    ++seen[flaw];
    const LabelledChainProof proof = MakeLabelledChainProof(p, flaw, i);
    EXPECT_EQ(proof.score, ChainFlawScore(flaw));
    const ChainVerdict v = CheckChainProof(p.statement, proof.text);
    ASSERT_EQ(v.score, proof.score) << ChainFlawName(flaw) << "\n"
                                    << p.statement.Text() << "\n"
                                    << proof.text;
    ASSERT_EQ(v.first_faulty_line(), proof.faulty_line) << ChainFlawName(flaw) << "\n"
                                                        << proof.text;
    if (flaw != ChainFlaw::kNone) {
      ASSERT_EQ(v.first_fault()->reason, proof.issue) << proof.text;
      EXPECT_EQ(v.first_fault()->fatal, proof.score == 0.0);
    }
  }
  EXPECT_EQ(seen.size(), AllChainFlaws().size());
  for (const auto& [flaw, n] : seen) EXPECT_GT(n, 500) << ChainFlawName(flaw);
}

TEST(ChainDomain, FlawedProofsLookLikeThis) {
  auto statement = ParseChainStatement("Given: c=d, a=b, e=b, c=b. Prove: a=d.");
  ASSERT_TRUE(statement.ok());
  ChainProblem p;
  p.statement = *statement;
  p.chain = {{'a', 'b'}, {'c', 'b'}, {'c', 'd'}};
  EXPECT_EQ(CanonicalChainProof(p).Text(),
            "1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d\nThus a=d.");
  EXPECT_EQ(MakeLabelledChainProof(p, ChainFlaw::kMissingFinalLine, 1).text,
            "1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d");
  const LabelledChainProof backwards = MakeLabelledChainProof(p, ChainFlaw::kFactBackwards, 1);
  EXPECT_EQ(backwards.score, 0.5);
  EXPECT_NE(backwards.issue.find("but the given fact is"), std::string::npos);
  const LabelledChainProof gap = MakeLabelledChainProof(p, ChainFlaw::kGap, 2);
  EXPECT_EQ(gap.proof.steps.size(), 2u);
  EXPECT_EQ(gap.score, 0.0);
  // One step too many: the goal is reached at step 3, step 4 cites another given fact and
  // claims the goal again (the padding a generator rewarded for long proofs learns).
  const LabelledChainProof padded = MakeLabelledChainProof(p, ChainFlaw::kStepAfterGoal, 1);
  ASSERT_EQ(padded.proof.steps.size(), 4u);
  EXPECT_EQ(padded.text.substr(0, 47), "1. a=b, so a=b\n2. c=b, so a=c\n3. c=d, so a=d\n4.");
  EXPECT_EQ(padded.proof.steps[3].conclusion.Text(), "a=d");
  EXPECT_NE(padded.proof.steps[3].cited.Text(), "c=d");
  EXPECT_EQ(padded.faulty_line, 4);
  EXPECT_EQ(padded.score, 0.0);
}

TEST(ChainDomain, EveryFlawIsFoundByItsName) {
  for (const ChainFlaw flaw : AllChainFlaws()) EXPECT_EQ(ChainFlawNamed(ChainFlawName(flaw)), flaw);
  EXPECT_EQ(ChainFlawNamed("missing_final_line"), ChainFlaw::kMissingFinalLine);
  EXPECT_FALSE(ChainFlawNamed("missing final line").has_value());
  EXPECT_FALSE(ChainFlawNamed("").has_value());
}

// builtin.warmup_generator_flaw lists these names itself (common/ does not depend on tasks/):
// every flaw's name is a value the config accepts.
TEST(ChainDomain, TheConfigAcceptsEveryFlawName) {
  for (const ChainFlaw flaw : AllChainFlaws()) {
    const absl::StatusOr<DsmConfig> config = ParseConfig(
        absl::StrCat("run: {name: demo}\nbuiltin: {warmup_generator_flaw: ", ChainFlawName(flaw), "}\n"), "test.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->builtin.warmup_generator_flaw, ChainFlawName(flaw));
  }
}

TEST(ChainDomain, SampleChainFlawHonoursTheCorrectFraction) {
  int correct = 0;
  for (int i = 0; i < 10000; ++i) correct += SampleChainFlaw(i, 0.4) == ChainFlaw::kNone;
  EXPECT_NEAR(correct / 10000.0, 0.4, 0.03);
  EXPECT_EQ(SampleChainFlaw(5, 1.0), ChainFlaw::kNone);
  EXPECT_NE(SampleChainFlaw(5, 0.0), ChainFlaw::kNone);
}

}  // namespace
}  // namespace dsm
