#include "tasks/jsonl_export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tasks/chain_checker.h"
#include "tasks/seeded_rng.h"

namespace dsm {
namespace {

using nlohmann::ordered_json;

constexpr uint64_t kDatasetSalt = 0x6461746173657431ULL;  // "dataset1"

absl::Status OutsideRange(const char* field, double value, const char* range) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is outside ", range));
}

}  // namespace

std::string ChainProblemJsonl(const ChainProblem& problem) {
  ordered_json line = {
      {"problem_id", problem.id},
      {"statement", problem.statement.Text()},
      {"split", problem.split == ChainSplit::kEval ? "DATASET_SPLIT_EVAL" : "DATASET_SPLIT_TRAIN"},
      {"source", "chain"}};
  return line.dump();
}

std::string ChainProofJsonl(const std::string& proof_id, const std::string& problem_id,
                            const LabelledChainProof& proof) {
  ordered_json line = {{"proof_id", proof_id},
                       {"problem_id", problem_id},
                       {"proof", proof.text},
                       {"score", proof.score}};
  if (proof.score < 1.0) line["issue"] = proof.issue;
  line["labeller"] = "checker";
  return line.dump();
}

std::string ChainAnalysisJsonl(const std::string& analysis_id, const std::string& proof_id,
                               const LabelledChainAnalysis& analysis) {
  ordered_json line = {{"analysis_id", analysis_id},
                       {"proof_id", proof_id},
                       {"analysis", analysis.text},
                       {"meta_score", analysis.assessment.meta_score}};
  if (analysis.assessment.meta_score < 1.0) line["issue"] = analysis.assessment.reason;
  line["labeller"] = "checker";
  return line.dump();
}

absl::Status ChainDatasetOptions::Validate() const {
  if (train_problems < 0 || train_problems > 1000000) {
    return OutsideRange("train_problems", train_problems, "0..1000000");
  }
  if (eval_problems < 0 || eval_problems > 1000000) {
    return OutsideRange("eval_problems", eval_problems, "0..1000000");
  }
  if (unlabelled_problems < 0 || unlabelled_problems > 1000000) {
    return OutsideRange("unlabelled_problems", unlabelled_problems, "0..1000000");
  }
  if (proofs_per_problem < 0 || proofs_per_problem > 64) {
    return OutsideRange("proofs_per_problem", proofs_per_problem, "0..64");
  }
  if (!(correct_fraction >= 0.0 && correct_fraction <= 1.0)) {
    return OutsideRange("correct_fraction", correct_fraction, "0..1");
  }
  if (analyses_per_proof < 0 || analyses_per_proof > 64) {
    return OutsideRange("analyses_per_proof", analyses_per_proof, "0..64");
  }
  return domain.Validate();
}

absl::StatusOr<std::vector<ChainProblem>> ChainDatasetProblems(const ChainDatasetOptions& options, ChainSplit split) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  const int count = split == ChainSplit::kTrain ? options.train_problems : options.eval_problems;
  return GenerateChainProblems(options.domain, split, options.seed, count);
}

absl::StatusOr<std::vector<ChainProblem>> ChainDatasetUnlabelledProblems(const ChainDatasetOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  // The labelled ones are the first train_problems of the same draw, so none is shared.
  auto all = GenerateChainProblems(options.domain, ChainSplit::kTrain, options.seed,
                                   options.train_problems + options.unlabelled_problems);
  if (!all.ok()) return all.status();
  all->erase(all->begin(), all->begin() + options.train_problems);
  return all;
}

std::string ChainCheckedProofJsonl(const std::string& proof_id, const ChainProblem& problem,
                                   const std::string& proof) {
  const ChainVerdict verdict = CheckChainProof(problem.statement, proof);
  LabelledChainProof labelled;
  labelled.text = proof;
  labelled.score = verdict.score;
  labelled.faulty_line = verdict.first_faulty_line();
  if (const ChainFault* fault = verdict.first_fault(); fault != nullptr) labelled.issue = fault->reason;
  return ChainProofJsonl(proof_id, problem.id, labelled);
}

absl::StatusOr<ChainDatasetCounts> WriteChainDataset(const ChainDatasetOptions& options,
                                                     std::ostream* problems, std::ostream* proofs,
                                                     std::ostream* analyses) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  ChainDatasetCounts counts;
  auto unlabelled = ChainDatasetUnlabelledProblems(options);
  if (!unlabelled.ok()) return unlabelled.status();
  for (const ChainProblem& problem : *unlabelled) {
    *problems << ChainProblemJsonl(problem) << "\n";
    ++counts.problems;
  }
  for (const ChainSplit split : {ChainSplit::kTrain, ChainSplit::kEval}) {
    auto generated = ChainDatasetProblems(options, split);
    if (!generated.ok()) return generated.status();
    for (const ChainProblem& problem : *generated) {
      *problems << ChainProblemJsonl(problem) << "\n";
      ++counts.problems;
      const uint64_t problem_seed =
          CombineSeeds(CombineSeeds(options.seed, kDatasetSalt), StableHash64(problem.id));
      for (int j = 0; j < options.proofs_per_problem; ++j) {
        const uint64_t proof_seed = CombineSeeds(problem_seed, static_cast<uint64_t>(j));
        const ChainFlaw flaw = SampleChainFlaw(proof_seed, options.correct_fraction);
        const LabelledChainProof proof = MakeLabelledChainProof(problem, flaw, proof_seed);
        const std::string proof_id = absl::StrCat(problem.id, "-p", j);
        *proofs << ChainProofJsonl(proof_id, problem.id, proof) << "\n";
        ++counts.proofs;
        SeededRng rng(proof_seed);
        const std::vector<ChainAnalysisKind>& kinds = AllChainAnalysisKinds();
        for (int m = 0; m < options.analyses_per_proof; ++m) {
          const int start = rng.Uniform(static_cast<int>(kinds.size()));
          for (std::size_t t = 0; t < kinds.size(); ++t) {
            const ChainAnalysisKind kind = kinds[(start + t) % kinds.size()];
            auto analysis = MakeLabelledChainAnalysis(problem.statement, proof, kind,
                                                      CombineSeeds(proof_seed, 1000 + m));
            if (!analysis) continue;
            *analyses << ChainAnalysisJsonl(absl::StrCat(proof_id, "-a", m), proof_id, *analysis)
                      << "\n";
            ++counts.analyses;
            break;
          }
        }
      }
    }
  }
  if (!*problems || !*proofs || !*analyses) return absl::InternalError("write failed");
  return counts;
}

absl::StatusOr<ChainDatasetCounts> WriteChainDatasetFiles(const ChainDatasetOptions& options,
                                                          const std::string& dir) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const std::filesystem::path base(dir);
  std::ofstream problems(base / "problems.jsonl", std::ios::trunc);
  std::ofstream proofs(base / "proofs.jsonl", std::ios::trunc);
  std::ofstream analyses(base / "analyses.jsonl", std::ios::trunc);
  if (!problems || !proofs || !analyses) {
    return absl::InternalError(absl::StrCat(dir, ": cannot open the .jsonl files for writing"));
  }
  auto counts = WriteChainDataset(options, &problems, &proofs, &analyses);
  if (!counts.ok()) return counts.status();
  for (std::ofstream* out : {&problems, &proofs, &analyses}) {
    out->close();
    if (!*out) return absl::InternalError(absl::StrCat(dir, ": cannot write the .jsonl files"));
  }
  return counts;
}

}  // namespace dsm
