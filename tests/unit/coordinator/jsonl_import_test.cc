// JSONL import: good lines become records, each bad line one exact error
// with its line number, and the others still import.
#include "services/coordinator/jsonl_import.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "services/coordinator/run_store.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

std::vector<std::string> Errors(const JsonlParseResult& r) {
  std::vector<std::string> out;
  for (const v1::ImportError& e : r.errors) out.push_back(FormatImportError(e));
  return out;
}

JsonlParseResult Parse(const std::string& text, JsonlRecordKind kind = JsonlRecordKind::kAuto,
                       JsonlOptions options = {}) {
  options.kind = kind;
  std::istringstream in(text);
  return ParseJsonl(in, "d.jsonl", options);
}

TEST(JsonlImport, GoodLinesOfEveryKind) {
  const std::string text =
      "{\"problem_id\": \"p1\", \"statement\": \"Show a=c\", \"split\": \"DATASET_SPLIT_EVAL\", \"source\": \"x\"}\n"
      "\n"
      "{\"proofId\": \"pr1\", \"problemId\": \"p1\", \"proof\": \"a=b; b=c\", \"score\": 0.5, \"issue\": \"gap\"}\r\n"
      "{\"analysis_id\": \"a1\", \"proof_id\": \"pr1\", \"analysis\": \"ok \\\\boxed{1}\", \"meta_score\": 1, "
      "\"labeller\": null}\n";
  JsonlParseResult r = Parse(text);
  EXPECT_EQ(r.lines, 4u);
  EXPECT_EQ(r.error_count, 0u);
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0].problem().split(), v1::DATASET_SPLIT_EVAL);
  EXPECT_EQ(r.records[0].line(), 1u);
  EXPECT_EQ(r.records[0].source_file(), "d.jsonl");
  EXPECT_EQ(r.records[1].proof().problem_id(), "p1");
  EXPECT_EQ(r.records[1].proof().score(), 0.5);
  EXPECT_EQ(r.records[1].line(), 3u);
  EXPECT_EQ(r.records[2].analysis().analysis(), "ok \\boxed{1}");
  EXPECT_EQ(r.records[2].analysis().meta_score(), 1.0);
  EXPECT_EQ(r.records[2].line(), 4u);
}

TEST(JsonlImport, EachBadLineGivesOneExactError) {
  const std::string text =
      "{\"proof_id\": \"ok\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 1}\n"                     // 1 good
      "{\"proof_id\": \"a\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 0.7}\n"                    // 2
      "{\"proof_id\": \"b\", \"problem_id\": \"p\", \"proof\": \"x\"}\n"                                    // 3
      "{\"proof_id\": \"c\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 1,}\n"                     // 4
      "{\"proof_id\": \"d\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 1, \"grade\": 1}\n"        // 5
      "{\"proof_id\": 5, \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 1}\n"                          // 6
      "[1, 2]\n"                                                                                            // 7
      "{\"proof_id\": \"e\", \"problem_id\": \"p\", \"proof\": \"\", \"score\": 0}\n"                       // 8
      "{\"proof_id\": \"f\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": \"1\"}\n"                  // 9
      "{\"proof_id\": \"g\", \"proofId\": \"g\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 1}\n"  // 10
      "{\"proof_id\": \"h\", \"problem_id\": \"p\", \"proof\": \"x\", \"score\": 1, \"score\": 0}\n"        // 11
      "{\"proof_id\": \"z\", \"problem_id\": \"p\", \"proof\": \"y\", \"score\": 0}\n";                     // 12 good
  JsonlParseResult r = Parse(text, JsonlRecordKind::kProof);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].line(), 1u);
  EXPECT_EQ(r.records[1].line(), 12u);
  EXPECT_EQ(r.error_count, 10u);
  EXPECT_EQ(Errors(r), (std::vector<std::string>{
                           "d.jsonl:2: proof.score: 0.7 is not one of 0, 0.5, 1",
                           "d.jsonl:3: proof.score: required",
                           "d.jsonl:4: json: parse error at column 63: syntax error while parsing object key - "
                           "unexpected '}'; expected string literal",
                           "d.jsonl:5: proof.grade: unknown field",
                           "d.jsonl:6: proof.proof_id: expected a string, got a number",
                           "d.jsonl:7: json: expected an object, got an array",
                           "d.jsonl:8: proof.proof: required",
                           "d.jsonl:9: proof.score: expected a number, got a string",
                           "d.jsonl:10: proof.proof_id: given twice",
                           "d.jsonl:11: proof.score: given twice",
                       }));
}

TEST(JsonlImport, SizeLimitsAndEnumErrors) {
  JsonlOptions options;
  options.limits.max_id_bytes = 4;
  options.limits.max_text_bytes = 10;
  options.max_line_bytes = 120;
  const std::string text =
      "{\"problem_id\": \"p12345\", \"statement\": \"s\"}\n"
      "{\"problem_id\": \"p1\", \"statement\": \"01234567890\"}\n"
      "{\"problem_id\": \"p1\", \"statement\": \"s\", \"split\": \"TEST\"}\n"
      "{\"problem_id\": \"p1\", \"statement\": \"s\", \"split\": 9}\n"
      "{\"problem_id\": \"p1\", \"statement\": \"" +
      std::string(100, 'x') +
      "\"}\n"
      "{\"problem_id\": \"p1\", \"statement\": \"s\", \"split\": 2}\n";
  JsonlParseResult r = Parse(text, JsonlRecordKind::kProblem, options);
  EXPECT_EQ(Errors(r), (std::vector<std::string>{
                           "d.jsonl:1: problem.problem_id: 6 bytes > max_id_bytes 4",
                           "d.jsonl:2: problem.statement: 11 bytes > max_text_bytes 10",
                           "d.jsonl:3: problem.split: \"TEST\" is not DATASET_SPLIT_TRAIN or DATASET_SPLIT_EVAL",
                           "d.jsonl:4: problem.split: 9 is not a DatasetSplit (0, 1, 2)",
                           "d.jsonl:5: line: 137 bytes > max_line_bytes 120",
                       }));
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].problem().split(), v1::DATASET_SPLIT_EVAL);
}

TEST(JsonlImport, ErrorListIsCappedButCounted) {
  JsonlOptions options;
  options.limits.max_import_errors = 2;
  JsonlParseResult r = Parse("x\ny\nz\n", JsonlRecordKind::kProblem, options);
  EXPECT_EQ(r.error_count, 3u);
  EXPECT_EQ(r.errors.size(), 2u);
}

TEST(JsonlImport, FileIntoStoreReportsStoreErrorsWithLines) {
  TestDir dir;
  const std::string problems = dir.File("problems.jsonl");
  const std::string proofs = dir.File("proofs.jsonl");
  std::ofstream(problems) << "{\"problem_id\": \"p1\", \"statement\": \"S1\"}\n"
                          << "{\"problem_id\": \"p2\", \"statement\": \"S2\", \"split\": \"DATASET_SPLIT_EVAL\"}\n";
  std::ofstream(proofs) << "{\"proof_id\": \"q1\", \"problem_id\": \"p1\", \"proof\": \"P\", \"score\": 1}\n"
                        << "{\"proof_id\": \"q2\", \"problem_id\": \"p7\", \"proof\": \"P\", \"score\": 0}\n"
                        << "{\"proof_id\": \"q3\", \"problem_id\": \"p2\", \"proof\": \"P\", \"score\": 5}\n";
  RunStoreOptions o;
  o.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), o).value();
  JsonlParseResult a = ParseJsonlFile(problems, {}).value();
  JsonlParseResult b = ParseJsonlFile(proofs, {}).value();
  EXPECT_EQ(Errors(b), std::vector<std::string>{proofs + ":3: proof.score: 5 is not one of 0, 0.5, 1"});
  std::vector<v1::ImportRecordsRequest> all = a.records;
  all.insert(all.end(), b.records.begin(), b.records.end());
  v1::ImportRecordsResponse r = store->ImportRecords(all, /*atomic=*/false).value();
  EXPECT_EQ(r.imported(), 3u);
  ASSERT_EQ(r.errors_size(), 1);
  EXPECT_EQ(FormatImportError(r.errors(0)), proofs + ":2: proof.problem_id: \"p7\" is not an imported problem");
  EXPECT_EQ(ParseJsonlFile(dir.File("missing.jsonl"), {}).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsm
