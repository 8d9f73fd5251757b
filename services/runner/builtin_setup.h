// The steps that set up a run of the built-in default (builtin.domain:
// chain, e.g. configs/tiny.yaml) around the services, shared by `dsm run`
// (everything on one machine) and `dsm prepare` / `dsm start` (services
// started by others: docker-compose.yml, Kubernetes):
//   - phase 0: a fresh tiny Llama with the domain's tokenizer at model.path,
//     warmed up by full-parameter SFT (skipped when a model is there);
//   - the domain's data as JSONL (problems.jsonl, proofs.jsonl, analyses.jsonl);
//   - the pipeline switched on in a config, with the scorers' addresses;
//   - the data imported into a PENDING run, and the run started.
#ifndef DSM_SERVICES_RUNNER_BUILTIN_SETUP_H_
#define DSM_SERVICES_RUNNER_BUILTIN_SETUP_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "dsm/v1/coordinator.grpc.pb.h"
#include "tasks/jsonl_export.h"

namespace dsm {

// runs_dir/<run.name>: where a run keeps its state, data, logs and results.
std::string RunDirOf(const DsmConfig& config);

// The LibTorch threads for phase 0 and the built-in data: builtin.warmup_threads, or
// runtime.threads when that is 0.
int BuiltinThreads(const DsmConfig& config);

// Phase 0 for the built-in model: a fresh tiny Llama with the domain's
// tokenizer, warmed up (builtin.warmup_*), written to model.path; progress
// lines on stdout. When model.path already holds a model, nothing is trained
// and the numbers of the warm-up that made it (<run_dir>/warmup.json) are
// returned. Returns the held-out numbers as "warmup_<metric>" (also written
// to <run_dir>/warmup.json). A bad builtin option is INVALID_ARGUMENT.
absl::StatusOr<std::map<std::string, double>> PrepareBuiltinModel(const DsmConfig& config,
                                                                  const std::string& run_dir);

// The built-in domain's data (builtin.train_problems, ...; seed run.seed)
// written to `dir`. With builtin.own_proofs_per_problem > 0, the model of
// model.path (warmed up by PrepareBuiltinModel) also writes that many proofs
// of every problem at temperature 1, graded by the checker and added to
// proofs.jsonl after the made-up ones as "<problem_id>-own<j>" (an empty
// proof, or a text the problem already has, is left out): the paper's
// verifier learns from expert-graded proofs of its own
// generator, and one taught only made-up flaws calls this generator's
// mistakes correct. A bad builtin option is INVALID_ARGUMENT.
absl::StatusOr<ChainDatasetCounts> WriteBuiltinData(const DsmConfig& config, const std::string& dir);

// The data files of `dir` in the order they must be imported (problems
// before the proofs that cite them, proofs before their analyses).
std::vector<std::string> DataFilesIn(const std::string& dir);

// `config` with the pipeline on (coordinator.pipeline) and the learner and
// scorers at these addresses; the built-in domain's exact checker judges the
// evaluations (coordinator.grader) when builtin.domain is chain.
DsmConfig WithPipeline(DsmConfig config, const std::string& learner, const std::string& verifier,
                       const std::string& meta_verifier);

// Imports `files` (JSONL, every line checked first) into the coordinator's
// PENDING run `run_name` and starts it with `config_yaml`. Prints what was
// imported. A bad line is INVALID_ARGUMENT naming file, line and field.
absl::StatusOr<v1::RunStatus> ImportAndStartRun(v1::Coordinator::StubInterface* coordinator,
                                                const std::string& run_name, const std::vector<std::string>& files,
                                                const std::string& config_yaml);

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_BUILTIN_SETUP_H_
