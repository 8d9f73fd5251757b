// JSONL export of the chain domain (tasks/jsonl_export.h), read back with the coordinator's
// own JSONL reader: every line is valid, kinds and labels survive.
#include "tasks/jsonl_export.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "services/coordinator/jsonl_import.h"
#include "tasks/chain_checker.h"

namespace dsm {
namespace {

TEST(JsonlExport, OneLineInTheDocumentedFormat) {
  auto problem = GenerateChainProblem({}, ChainSplit::kEval, 3);
  ASSERT_TRUE(problem.ok());
  EXPECT_EQ(ChainProblemJsonl(*problem),
            "{\"problem_id\":\"chain-eval-3\",\"statement\":\"" + problem->statement.Text() +
                "\",\"split\":\"DATASET_SPLIT_EVAL\",\"source\":\"chain\"}");
  const LabelledChainProof proof =
      MakeLabelledChainProof(*problem, ChainFlaw::kMissingFinalLine, 1);
  const std::string line = ChainProofJsonl("p1", problem->id, proof);
  EXPECT_NE(
      line.find("\"score\":0.5,\"issue\":\"The final line is missing.\",\"labeller\":\"checker\"}"),
      std::string::npos)
      << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const LabelledChainProof correct = MakeLabelledChainProof(*problem, ChainFlaw::kNone, 1);
  EXPECT_EQ(ChainProofJsonl("p2", problem->id, correct).find("issue"), std::string::npos);
}

TEST(JsonlExport, TheCoordinatorReaderAcceptsEveryLine) {
  ChainDatasetOptions options;
  options.train_problems = 60;
  options.eval_problems = 10;
  options.proofs_per_problem = 3;
  options.analyses_per_proof = 2;
  std::stringstream problems, proofs, analyses;
  auto counts = WriteChainDataset(options, &problems, &proofs, &analyses);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->problems, 70);
  EXPECT_EQ(counts->proofs, 210);
  EXPECT_EQ(counts->analyses, 420);

  const JsonlOptions reader;
  const JsonlParseResult p = ParseJsonl(problems, "problems.jsonl", reader);
  const JsonlParseResult q = ParseJsonl(proofs, "proofs.jsonl", reader);
  const JsonlParseResult a = ParseJsonl(analyses, "analyses.jsonl", reader);
  for (const JsonlParseResult* r : {&p, &q, &a}) {
    EXPECT_EQ(r->error_count, 0u);
    for (const auto& e : r->errors) ADD_FAILURE() << e.DebugString();
  }
  ASSERT_EQ(p.records.size(), 70u);
  ASSERT_EQ(q.records.size(), 210u);
  ASSERT_EQ(a.records.size(), 420u);
  int eval = 0;
  std::set<std::string> ids;
  for (const auto& r : p.records) {
    ASSERT_TRUE(r.has_problem());
    eval += r.problem().split() == v1::DATASET_SPLIT_EVAL;
    ids.insert(r.problem().problem_id());
  }
  EXPECT_EQ(eval, 10);
  EXPECT_EQ(ids.size(), 70u);
  // Proof labels are the checker's.
  std::map<std::string, std::string> statements;
  for (const auto& r : p.records) statements[r.problem().problem_id()] = r.problem().statement();
  for (const auto& r : q.records) {
    ASSERT_TRUE(r.has_proof());
    auto verdict = CheckChainProof(statements.at(r.proof().problem_id()), r.proof().proof());
    ASSERT_TRUE(verdict.ok());
    EXPECT_EQ(verdict->score, r.proof().score()) << r.proof().proof();
    EXPECT_EQ(r.proof().labeller(), "checker");
  }
  for (const auto& r : a.records) ASSERT_TRUE(r.has_analysis());

  // Same options, same bytes.
  std::stringstream problems2, proofs2, analyses2;
  ASSERT_TRUE(WriteChainDataset(options, &problems2, &proofs2, &analyses2).ok());
  EXPECT_EQ(problems2.str(), problems.str());
  EXPECT_EQ(analyses2.str(), analyses.str());
}

// Unlabelled problems: training problems written first (phases 4 and 5 take training problems in
// order), distinct from the labelled ones, with no proof; the labelled problems do not change.
TEST(JsonlExport, UnlabelledProblemsComeFirstAndHaveNoProof) {
  ChainDatasetOptions options;
  options.train_problems = 20;
  options.eval_problems = 4;
  options.proofs_per_problem = 2;
  options.analyses_per_proof = 0;
  std::stringstream plain_problems, plain_proofs, plain_analyses;
  ASSERT_TRUE(WriteChainDataset(options, &plain_problems, &plain_proofs, &plain_analyses).ok());
  options.unlabelled_problems = 7;
  std::stringstream problems, proofs, analyses;
  auto counts = WriteChainDataset(options, &problems, &proofs, &analyses);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->problems, 31);
  EXPECT_EQ(counts->proofs, 48);  // (20 + 4) problems x 2, as without them
  EXPECT_EQ(proofs.str(), plain_proofs.str());

  const JsonlParseResult p = ParseJsonl(problems, "problems.jsonl", JsonlOptions{});
  ASSERT_EQ(p.records.size(), 31u);
  const JsonlParseResult q = ParseJsonl(proofs, "proofs.jsonl", JsonlOptions{});
  std::set<std::string> proved;
  for (const auto& r : q.records) proved.insert(r.proof().problem_id());
  std::set<std::string> statements;
  for (size_t i = 0; i < p.records.size(); ++i) {
    const v1::ProblemRecord& problem = p.records[i].problem();
    statements.insert(problem.statement());
    if (i < 7) {
      EXPECT_EQ(problem.split(), v1::DATASET_SPLIT_TRAIN);
      EXPECT_EQ(proved.count(problem.problem_id()), 0u) << problem.problem_id();
    } else if (problem.split() == v1::DATASET_SPLIT_TRAIN) {
      EXPECT_EQ(proved.count(problem.problem_id()), 1u) << problem.problem_id();
    }
  }
  EXPECT_EQ(statements.size(), 31u);  // none shared

  auto unlabelled = ChainDatasetUnlabelledProblems(options);
  ASSERT_TRUE(unlabelled.ok()) << unlabelled.status();
  ASSERT_EQ(unlabelled->size(), 7u);
  EXPECT_EQ((*unlabelled)[0].id, p.records[0].problem().problem_id());
  options.unlabelled_problems = -1;
  EXPECT_EQ(ChainDatasetUnlabelledProblems(options).status().message(),
            "unlabelled_problems: -1 is outside 0..1000000");
}

TEST(JsonlExport, WritesFilesAndValidatesOptions) {
  ChainDatasetOptions options;
  options.train_problems = 5;
  options.eval_problems = 2;
  const std::string dir = testing::TempDir() + "/chain_jsonl";
  auto counts = WriteChainDatasetFiles(options, dir);
  ASSERT_TRUE(counts.ok()) << counts.status();
  for (const char* name : {"problems.jsonl", "proofs.jsonl", "analyses.jsonl"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + name)) << name;
  }
  options.proofs_per_problem = 65;
  EXPECT_EQ(WriteChainDatasetFiles(options, dir).status().message(),
            "proofs_per_problem: 65 is outside 0..64");
  options = {};
  options.correct_fraction = 1.5;
  EXPECT_EQ(WriteChainDatasetFiles(options, dir).status().message(),
            "correct_fraction: 1.5 is outside 0..1");
}

}  // namespace
}  // namespace dsm
