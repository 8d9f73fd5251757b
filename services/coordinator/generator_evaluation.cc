#include "services/coordinator/generator_evaluation.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/scoring/score_parser.h"

namespace dsm {

absl::StatusOr<v1::Evaluation> EvaluateGenerator(RunStore* store, LeaseDispatcher* dispatcher,
                                                 const PromptTemplate& generator, const OutputMarkers& markers,
                                                 const Grader& grader, const GeneratorEvaluationOptions& options,
                                                 const std::atomic<bool>* stop) {
  absl::StatusOr<std::vector<StoredProblem>> problems =
      store->Problems(v1::DATASET_SPLIT_EVAL, 0, options.max_problems);
  if (!problems.ok()) return problems.status();
  if (problems->empty()) {
    return absl::FailedPreconditionError("evaluation: the run has no evaluation problems");
  }
  const std::string name = absl::StrCat("eval-gen-p", static_cast<int>(options.phase), "-i", options.iteration, "-",
                                        v1::EvaluationPoint_Name(options.point));
  std::vector<WorkItemSpec> items;
  for (const StoredProblem& p : *problems) {
    v1::GenerateWork work;
    work.mutable_prompt()->set_text(generator.Render(PromptFields{p.record.statement(), "", ""}));
    work.set_n(1);
    *work.mutable_params() = options.params;
    generator.AddStopsTo(work.mutable_params());
    work.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
    work.set_min_adapter_version(options.min_adapter_version);
    work.mutable_metadata()->set_phase(v1::PHASE_EVALUATE);
    work.mutable_metadata()->set_iteration(options.iteration);
    work.mutable_metadata()->set_problem_id(p.record.problem_id());
    (*work.mutable_metadata()->mutable_tags())["evaluation"] = name;
    WorkItemSpec item;
    item.kind = WorkKind::kGenerate;
    item.payload = work.SerializeAsString();
    item.role = v1::ADAPTER_ROLE_GENERATOR;
    item.priority = 1;  // ahead of training work enqueued meanwhile
    item.phase = v1::PHASE_EVALUATE;
    item.iteration = options.iteration;
    item.key = absl::StrCat(name, "-", p.record.problem_id());
    items.push_back(std::move(item));
  }
  absl::StatusOr<std::vector<int64_t>> ids = dispatcher->Enqueue(items);
  if (!ids.ok()) return ids.status();

  uint32_t scored = 0, failed = 0, well_formed = 0, agree = 0;
  double score_sum = 0;
  for (size_t i = 0; i < ids->size(); ++i) {
    absl::StatusOr<WorkItem> item;
    while (true) {
      item = store->queue().GetItem((*ids)[i]);
      if (!item.ok()) return item.status();
      if (item->state != WorkState::kQueued && item->state != WorkState::kLeased) break;
      if (stop != nullptr && stop->load()) return absl::CancelledError("the run was stopped");
      absl::SleepFor(options.poll);
    }
    if (item->state != WorkState::kDone) {
      ++failed;
      continue;
    }
    v1::GenerateResult result;
    if (!result.ParseFromString(item->result)) {
      return absl::DataLossError(absl::StrCat("work item ", item->item_id, ": stored result does not parse"));
    }
    const std::string& statement = (*problems)[i].record.statement();
    ++scored;
    if (result.completions_size() == 0) continue;
    const v1::Completion& c = result.completions(0);
    const GeneratorOutput out = SplitGeneratorOutput(c.text(), markers, c.finish_reason());
    if (out.proof.empty()) continue;
    absl::StatusOr<GradedProof> truth = grader.GradeProof(statement, out.proof);
    if (!truth.ok()) return truth.status();
    score_sum += truth->score;
    const bool format_ok = out.has_solution_header && out.has_self_evaluation_header &&
                           out.self_score.format() == v1::FORMAT_STATUS_OK;
    if (!format_ok) continue;
    ++well_formed;
    agree += out.self_score.value() == truth->score;
  }
  if (scored == 0) {
    return absl::UnavailableError(absl::StrCat("evaluation: all ", failed, " generation items failed"));
  }
  v1::Evaluation e;
  e.set_phase(options.phase);
  e.set_iteration(options.iteration);
  e.set_point(options.point);
  e.set_items(scored);
  (*e.mutable_metrics())["generator_score"] = score_sum / scored;
  (*e.mutable_metrics())["self_score_agreement"] = static_cast<double>(agree) / scored;
  (*e.mutable_metrics())["format_ok_rate"] = static_cast<double>(well_formed) / scored;
  (*e.mutable_metrics())["failed_items"] = failed;
  *e.mutable_time() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  if (absl::Status s = store->RecordEvaluation(e, absl::Now()); !s.ok()) return s;
  return e;
}

}  // namespace dsm
