// `dsm eval CONFIG`: test-time scaling of a trained run (../shared/METHOD.md,
// "Test-time scaling"), in this process: the base model (model.path) with the
// run's newest generator and verifier checkpoints (or the adapters named by
// --generator / --verifier), on the run's held-out problems (or a problems
// JSONL file), measured with the domain's exact grader when the config names
// one (coordinator.grader: chain, or the built-in default builtin.domain: chain).
//
//   --strategy refine      sequential refinement: up to --max-iterations
//                          attempts, each after the first given the previous
//                          proof and its self-evaluation (configs/prompts/
//                          refiner.txt); stops when the proof gives itself 1
//   --strategy best-of-n   --n proofs, each verified --verifications times;
//                          the best mean verification score is kept
//   --strategy both        (default) both
//
// Prints a table and writes the whole report as JSON (--out, default
// runs/<name>/eval.json). Bad flags or inputs: exit 2 with one line.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter_roles.h"
#include "common/config.h"
#include "learner/checkpoint.h"
#include "services/cli/app.h"
#include "services/coordinator/dataset_import.h"
#include "services/coordinator/jsonl_import.h"
#include "services/coordinator/run_store.h"
#include "services/eval/local_proof_backend.h"
#include "services/eval/proof_eval.h"
#include "tasks/chain_grader.h"

namespace dsm::cli {
namespace {

namespace fs = std::filesystem;

struct EvalFlags {
  std::string config;
  std::string strategy = "both";
  std::string generator;
  std::string verifier;
  std::string problems_file;
  uint32_t problems = 64;
  uint32_t max_iterations = 4;
  uint32_t n = 8;
  uint32_t verifications = 4;
  double temperature = 1.0;
  double top_p = 1.0;
  uint32_t max_tokens = 0;  // 0: what the model's context leaves after the prompt
  uint64_t seed = 0;
  uint32_t concurrency = 16;
  std::string out;
};

// The newest checkpoint's adapter folder of `role` under the run's checkpoint root.
absl::StatusOr<std::string> NewestAdapter(const DsmConfig& config, v1::AdapterRole role, const ModelConfig& model) {
  const std::string root =
      absl::StrCat(config.learner.checkpoint_dir.empty()
                       ? absl::StrCat(config.run.runs_dir, "/", config.run.name, "/checkpoints")
                       : config.learner.checkpoint_dir,
                   "/", AdapterRoleName(role));
  absl::StatusOr<std::optional<Checkpoint>> newest = LatestValidCheckpoint(root, model);
  if (!newest.ok()) return newest.status();
  if (!newest->has_value()) {
    return absl::NotFoundError(absl::StrCat("no ", AdapterRoleName(role), " checkpoint under ", root,
                                            " (train the run first, or name an adapter with --",
                                            AdapterRoleName(role), ")"));
  }
  return absl::StrCat((*newest)->path, "/adapter");
}

absl::StatusOr<std::vector<EvalProblem>> LoadProblems(const DsmConfig& config, const EvalFlags& flags) {
  std::vector<EvalProblem> out;
  if (!flags.problems_file.empty()) {
    JsonlOptions options;
    options.kind = JsonlRecordKind::kProblem;
    absl::StatusOr<JsonlParseResult> parsed = ParseJsonlFile(flags.problems_file, options);
    if (!parsed.ok()) return parsed.status();
    if (parsed->error_count > 0) {
      return absl::InvalidArgumentError(FormatImportError(parsed->errors.front()));
    }
    for (const v1::ImportRecordsRequest& r : parsed->records) {
      if (out.size() >= flags.problems) break;
      out.push_back(EvalProblem{r.problem().problem_id(), r.problem().statement()});
    }
    if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(flags.problems_file, ": no problems"));
    return out;
  }
  const std::string path = RunStore::StatePath(config.run.runs_dir, config.run.name);
  if (!fs::exists(path)) {
    return absl::NotFoundError(absl::StrCat(path, " not found: run the config first (dsm run), or give --problems-file"));
  }
  absl::StatusOr<std::unique_ptr<RunStore>> store = RunStore::Open(path, RunStoreOptions{});
  if (!store.ok()) return store.status();
  absl::StatusOr<std::vector<StoredProblem>> problems = (*store)->Problems(v1::DATASET_SPLIT_EVAL, 0, flags.problems);
  if (!problems.ok()) return problems.status();
  for (const StoredProblem& p : *problems) out.push_back(EvalProblem{p.record.problem_id(), p.record.statement()});
  if (out.empty()) return absl::FailedPreconditionError(absl::StrCat(path, ": the run has no evaluation problems"));
  return out;
}

void PrintReport(const ProofEvalReport& report, const EvalFlags& flags, std::ostream& out) {
  out << absl::StrFormat("dsm eval: %d problems%s\n", report.problems.size(),
                         report.graded ? ", graded by the exact checker" : " (no grader: the model's own scores only)");
  if (report.refine.has_value()) {
    out << "sequential refinement (score after t attempts):\n";
    out << "  t   " << (report.graded ? "true score  " : "") << "self score\n";
    for (size_t t = 0; t < report.refine->self_score_at.size(); ++t) {
      out << absl::StrFormat("  %-3d ", t + 1);
      if (report.graded) out << absl::StrFormat("%-11.3f ", report.refine->score_at[t]);
      out << absl::StrFormat("%.3f\n", report.refine->self_score_at[t]);
    }
    out << absl::StrFormat("  mean attempts %.2f, proofs that end self-confirmed %.3f\n", report.refine->mean_attempts,
                           report.refine->self_confirmed_rate);
  }
  if (report.best_of_n.has_value()) {
    const BestOfNSummary& b = *report.best_of_n;
    out << absl::StrFormat("best-of-%d (%d verifications each):\n", flags.n, flags.verifications);
    if (report.graded) {
      out << absl::StrFormat("  true score: one sample %.3f, first %.3f, selected %.3f, best of the %d %.3f\n",
                             b.sample_score, b.first_score, b.selected_score, flags.n, b.oracle_score);
    }
    out << absl::StrFormat("  selected proofs' mean verification score %.3f\n", b.selected_verification);
  }
}

int Eval(const EvalFlags& flags) {
  absl::StatusOr<DsmConfig> config = LoadConfig(flags.config);
  if (!config.ok()) return UsageError(absl::StrCat("eval: ", config.status().message()));
  ProofEvalOptions options;
  v1::SamplingParams params;
  params.set_temperature(flags.temperature);
  params.set_top_p(flags.top_p);
  if (flags.max_tokens > 0) params.set_max_tokens(flags.max_tokens);  // else what the context leaves
  if (flags.seed != 0) params.set_seed(flags.seed);
  if (flags.strategy == "refine" || flags.strategy == "both") {
    options.refine = RefineOptions{flags.max_iterations, params};
  }
  if (flags.strategy == "best-of-n" || flags.strategy == "both") {
    options.best_of_n = BestOfNOptions{flags.n, flags.verifications, params, params};
  }
  if (!options.refine.has_value() && !options.best_of_n.has_value()) {
    return UsageError("eval: --strategy: \"" + flags.strategy + "\" is not one of refine, best-of-n, both");
  }
  if (flags.n > static_cast<uint32_t>(config->limits.max_n) ||
      flags.verifications > static_cast<uint32_t>(config->limits.max_n)) {
    return UsageError(absl::StrCat("eval: --n and --verifications must be at most limits.max_n (",
                                   config->limits.max_n, ")"));
  }
  options.max_concurrent_problems = flags.concurrency;

  absl::StatusOr<std::vector<EvalProblem>> problems = LoadProblems(*config, flags);
  if (!problems.ok()) return UsageError(absl::StrCat("eval: ", problems.status().message()));

  const std::string prompts_dir = config->coordinator.prompts_dir;
  absl::StatusOr<PromptTemplate> generator = PromptTemplate::LoadRole(prompts_dir, PromptRole::kGenerator);
  if (!generator.ok()) return UsageError(absl::StrCat("eval: ", generator.status().message()));
  std::optional<PromptTemplate> refiner;
  if (options.refine.has_value()) {
    absl::StatusOr<PromptTemplate> loaded = PromptTemplate::LoadRole(prompts_dir, PromptRole::kRefiner);
    if (!loaded.ok()) return UsageError(absl::StrCat("eval: ", loaded.status().message()));
    refiner = *std::move(loaded);
  }

  LocalProofBackendOptions backend_options;
  backend_options.prompts_dir = prompts_dir;
  backend_options.generator_adapter = flags.generator;
  backend_options.verifier_adapter = flags.verifier;
  if (flags.generator.empty() || flags.verifier.empty()) {
    absl::StatusOr<ModelConfig> model = LoadModelConfig(config->model.path);
    if (!model.ok()) return UsageError(absl::StrCat("eval: model.path: ", model.status().message()));
    for (auto [role, dir] : {std::pair{v1::ADAPTER_ROLE_GENERATOR, &backend_options.generator_adapter},
                             std::pair{v1::ADAPTER_ROLE_VERIFIER, &backend_options.verifier_adapter}}) {
      if (!dir->empty()) continue;
      absl::StatusOr<std::string> newest = NewestAdapter(*config, role, *model);
      if (!newest.ok()) return UsageError(absl::StrCat("eval: ", newest.status().message()));
      *dir = *newest;
    }
  }
  std::cerr << "dsm eval: generator " << backend_options.generator_adapter << ", verifier "
            << backend_options.verifier_adapter << ", " << problems->size() << " problems\n";
  absl::StatusOr<std::unique_ptr<LocalProofBackend>> backend = LocalProofBackend::Create(*config, backend_options);
  if (!backend.ok()) return UsageError(absl::StrCat("eval: ", backend.status().message()));

  static const ChainGrader chain_grader;
  const bool chain = config->coordinator.grader == "chain" || config->builtin.domain == "chain";
  const Grader* grader = chain ? &chain_grader : nullptr;
  const size_t total = problems->size();
  absl::StatusOr<ProofEvalReport> report = EvaluateProofs(
      **backend, *generator, refiner ? &*refiner : nullptr, *problems, grader, options,
      [total](size_t done) { std::cerr << absl::StrFormat("\rdsm eval: %d/%d problems", done, total) << std::flush; });
  std::cerr << "\n";
  if (!report.ok()) {
    std::cerr << "dsm: eval: " << report.status().message() << "\n";
    return 1;
  }
  PrintReport(*report, flags, std::cout);
  const std::string out_path =
      flags.out.empty() ? absl::StrCat(config->run.runs_dir, "/", config->run.name, "/eval.json") : flags.out;
  std::error_code ec;
  if (fs::path parent = fs::path(out_path).parent_path(); !parent.empty()) fs::create_directories(parent, ec);
  std::ofstream file(out_path, std::ios::trunc);
  file << ProofEvalReportJson(*report).dump(2) << "\n";
  if (!file) {
    std::cerr << "dsm: eval: " << out_path << ": cannot write\n";
    return 1;
  }
  std::cout << "report: " << out_path << "\n";
  return 0;
}

}  // namespace

void AddEvalCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Test-time scaling of a trained run: sequential refinement and best-of-n selection of proofs");
  cmd->add_option("config", flags->config, "The run's YAML config (e.g. configs/tiny.yaml)")->required();
  cmd->add_option("--strategy", flags->strategy, "refine, best-of-n or both");
  cmd->add_option("--generator", flags->generator, "Generator adapter folder (default: the run's newest checkpoint)");
  cmd->add_option("--verifier", flags->verifier, "Verifier adapter folder (default: the run's newest checkpoint)");
  cmd->add_option("--problems-file", flags->problems_file, "Problems JSONL (default: the run's evaluation problems)");
  cmd->add_option("--problems", flags->problems, "Problems at most")->check(CLI::Range(1u, 100000u));
  cmd->add_option("--max-iterations", flags->max_iterations, "Refinement attempts at most")->check(CLI::Range(1u, 64u));
  cmd->add_option("--n", flags->n, "Best-of-n: proofs per problem")->check(CLI::Range(1u, 1024u));
  cmd->add_option("--verifications", flags->verifications, "Best-of-n: verifications per proof")
      ->check(CLI::Range(1u, 1024u));
  cmd->add_option("--temperature", flags->temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", flags->top_p, "Nucleus sampling mass")->check(CLI::Range(1e-6, 1.0));
  cmd->add_option("--max-tokens", flags->max_tokens, "New tokens per answer (default: what the context leaves after the prompt)");
  cmd->add_option("--seed", flags->seed, "Sampling seed (0 = random)");
  cmd->add_option("--concurrency", flags->concurrency, "Problems in flight at once")->check(CLI::Range(1u, 1024u));
  cmd->add_option("--out", flags->out, "JSON report (default: runs/<name>/eval.json)");
  cmd->callback([action, flags] { *action = [flags] { return Eval(*flags); }; });
}

}  // namespace dsm::cli
