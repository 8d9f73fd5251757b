#include "services/coordinator/phase_groups.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/seed_mix.h"
#include "spdlog/spdlog.h"

namespace dsm {

std::string EpochDataset(absl::string_view dataset, uint32_t epoch) {
  return epoch <= 1 ? std::string(dataset) : absl::StrCat(dataset, "-e", epoch);
}

std::string EpochSuffix(uint32_t epoch) { return epoch <= 1 ? std::string() : absl::StrCat("-e", epoch); }

bool LeftOutByScorer(const absl::Status& status, const std::string& what) {
  if (!absl::IsInvalidArgument(status)) return false;
  spdlog::warn("coordinator: {} left out: {}", what, std::string(status.message()));
  return true;
}

GroupRecord NewGroup(std::string group_id, v1::AdapterRole role, v1::Phase phase, uint32_t iteration,
                     std::string problem_id, std::string source, const v1::SamplingParams& params,
                     const google::protobuf::RepeatedField<int32_t>& prompt_token_ids) {
  GroupRecord group;
  group.group_id = std::move(group_id);
  group.role = role;
  group.phase = phase;
  group.iteration = iteration;
  group.problem_id = std::move(problem_id);
  group.objective = v1::OBJECTIVE_GRPO;
  group.source = std::move(source);
  if (params.has_temperature()) group.logprob_temperature = params.temperature();
  group.prompt_token_ids.assign(prompt_token_ids.begin(), prompt_token_ids.end());
  return group;
}

SampleRecord SampleOf(const v1::Completion& completion, const v1::Score& score, double reward) {
  SampleRecord s;
  s.sample.mutable_completion_token_ids()->CopyFrom(completion.token_ids());
  s.sample.mutable_behaviour_logprobs()->CopyFrom(completion.logprobs());
  s.sample.set_adapter_version(completion.adapter_version());
  s.sample.set_finish_reason(completion.finish_reason());
  s.sample.set_reward(reward);
  s.completion_text = completion.text();
  s.reward_parts["r_format"] = score.format() == v1::FORMAT_STATUS_OK ? 1.0 : 0.0;
  if (score.has_value()) s.reward_parts["score"] = score.value();
  return s;
}

absl::Status RecordAndAdvance(RunStore* store, const GroupRecord& group, const std::string& cursor, int64_t position,
                              ScoringPhaseProgress* progress) {
  if (group.samples.size() < 2) {
    if (absl::Status s = store->SetCursor(cursor, position, absl::Now()); !s.ok()) return s;
    ++progress->items;
    ++progress->too_few_samples;
    return absl::OkStatus();
  }
  absl::StatusOr<bool> recorded = store->RecordGroup(group, CursorUpdate{cursor, position}, absl::Now());
  if (!recorded.ok()) return recorded.status();
  ++progress->items;
  progress->groups_recorded += *recorded;
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> EnqueueGenerationWork(RunStore* store, LeaseDispatcher* dispatcher,
                                               const PromptTemplate& generator, const GenerationWorkSpec& spec,
                                               const std::string& cursor, uint32_t problems,
                                               ProblemLabels labels) {
  absl::StatusOr<int64_t> position = store->GetCursor(cursor);
  if (!position.ok()) return position.status();
  auto batch = store->Problems(v1::DATASET_SPLIT_TRAIN, *position, problems, labels);
  if (!batch.ok()) return batch.status();
  if (batch->empty()) return 0u;
  std::vector<WorkItemSpec> items;
  for (const StoredProblem& p : *batch) {
    v1::GenerateWork work;
    work.mutable_prompt()->set_text(generator.Render(PromptFields{p.record.statement(), "", ""}));
    work.set_n(spec.n);
    *work.mutable_params() = spec.params;
    generator.AddStopsTo(work.mutable_params());
    work.mutable_params()->set_return_logprobs(true);
    work.set_adapter_role(v1::ADAPTER_ROLE_GENERATOR);
    work.set_min_adapter_version(spec.min_adapter_version);
    const std::string key = absl::StrCat("p", static_cast<int>(spec.phase), "-i", spec.iteration, "-",
                                         p.record.problem_id(), EpochSuffix(spec.epoch));
    if (spec.seed.has_value() && !work.params().has_seed()) {
      work.mutable_params()->set_seed(NamedSeed(*spec.seed, key));
    }
    work.mutable_metadata()->set_phase(spec.phase);
    work.mutable_metadata()->set_iteration(spec.iteration);
    work.mutable_metadata()->set_problem_id(p.record.problem_id());
    WorkItemSpec item;
    item.kind = WorkKind::kGenerate;
    item.payload = work.SerializeAsString();
    item.role = v1::ADAPTER_ROLE_GENERATOR;
    item.phase = spec.phase;
    item.iteration = spec.iteration;
    item.key = key;
    items.push_back(std::move(item));
  }
  auto ids = dispatcher->Enqueue(items);
  if (!ids.ok()) return ids.status();
  if (absl::Status s = store->SetCursor(cursor, batch->back().seq, absl::Now()); !s.ok()) return s;
  return static_cast<uint32_t>(items.size());
}

absl::StatusOr<GeneratedItem> ReadGeneratedItem(RunStore* store, const WorkItem& item) {
  GeneratedItem out;
  if (!out.work.ParseFromString(item.payload) || !out.result.ParseFromString(item.result)) {
    return absl::DataLossError(absl::StrCat("work item ", item.item_id, ": stored payload or result does not parse"));
  }
  const std::string& problem_id = out.work.metadata().problem_id();
  auto problem = store->GetProblem(problem_id);
  if (!problem.ok()) return problem.status();
  if (!problem->has_value()) return absl::FailedPreconditionError(absl::StrCat("problem ", problem_id, " is gone"));
  out.problem = **std::move(problem);
  return out;
}

}  // namespace dsm
