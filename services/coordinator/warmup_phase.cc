#include "services/coordinator/warmup_phase.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dsm {

WarmupPhase::WarmupPhase(RunStore* store, WarmupTemplates templates, WarmupPhaseOptions options)
    : store_(store), templates_(std::move(templates)), options_(std::move(options)) {}

absl::StatusOr<GroupRecord> WarmupPhase::SftGroup(std::string group_id, v1::AdapterRole role,
                                                  const std::string& problem_id, const std::string& prompt,
                                                  const std::string& completion) const {
  auto prompt_ids = options_.encode(prompt);
  if (!prompt_ids.ok()) return prompt_ids.status();
  auto completion_ids = options_.encode(completion);
  if (!completion_ids.ok()) return completion_ids.status();
  if (options_.eos_token_id >= 0) completion_ids->push_back(options_.eos_token_id);
  if (prompt_ids->empty() || completion_ids->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(group_id, ": empty prompt or completion"));
  }
  GroupRecord group;
  group.group_id = std::move(group_id);
  group.role = role;
  group.phase = v1::PHASE_WARMUP_SFT;
  group.iteration = 0;
  group.problem_id = problem_id;
  group.objective = v1::OBJECTIVE_SFT;
  group.source = "warmup_sft";
  group.prompt_token_ids = *std::move(prompt_ids);
  SampleRecord s;
  for (int32_t id : *completion_ids) s.sample.add_completion_token_ids(id);
  s.completion_text = completion;
  group.samples.push_back(std::move(s));
  return group;
}

absl::StatusOr<WarmupProgress> WarmupPhase::RunOnce() {
  if (!options_.encode) return absl::FailedPreconditionError("encode: the warm-up needs the model's tokenizer");
  WarmupProgress progress;
  // Verifier and meta-verifier examples from labelled analyses.
  const std::string analyses_cursor = RunStore::CursorName(v1::PHASE_WARMUP_SFT, 0, "analyses");
  auto position = store_->GetCursor(analyses_cursor);
  if (!position.ok()) return position.status();
  auto analyses = store_->Analyses(*position, options_.batch);
  if (!analyses.ok()) return analyses.status();
  for (const StoredAnalysis& a : *analyses) {
    auto proof = store_->GetProof(a.record.proof_id());
    if (!proof.ok()) return proof.status();
    if (!proof->has_value()) {
      if (absl::Status s = store_->SetCursor(analyses_cursor, a.seq, absl::Now()); !s.ok()) return s;
      continue;
    }
    auto problem = store_->GetProblem((*proof)->problem_id());
    if (!problem.ok()) return problem.status();
    if (!problem->has_value() || (*problem)->split() == v1::DATASET_SPLIT_EVAL) {  // held out
      if (absl::Status s = store_->SetCursor(analyses_cursor, a.seq, absl::Now()); !s.ok()) return s;
      continue;
    }
    const std::string& statement = (*problem)->statement();
    std::vector<GroupRecord> groups;
    if (a.record.meta_score() == 1.0) {  // only faithful analyses teach the verifier
      auto g = SftGroup(absl::StrCat("p1-i0-v-", a.record.analysis_id()), v1::ADAPTER_ROLE_VERIFIER,
                        (*proof)->problem_id(),
                        templates_.verifier.Render(PromptFields{statement, (*proof)->proof(), ""}),
                        a.record.analysis());
      if (!g.ok()) return g.status();
      groups.push_back(*std::move(g));
    }
    if (options_.meta_completion) {
      auto g = SftGroup(absl::StrCat("p1-i0-m-", a.record.analysis_id()), v1::ADAPTER_ROLE_META_VERIFIER,
                        (*proof)->problem_id(),
                        templates_.meta_verifier.Render(PromptFields{statement, (*proof)->proof(), a.record.analysis()}),
                        options_.meta_completion(a.record));
      if (!g.ok()) return g.status();
      groups.push_back(*std::move(g));
    }
    for (size_t i = 0; i < groups.size(); ++i) {
      // The cursor moves with the last group of this analysis.
      std::optional<CursorUpdate> cursor;
      if (i + 1 == groups.size()) cursor = CursorUpdate{analyses_cursor, a.seq};
      auto recorded = store_->RecordGroup(groups[i], cursor, absl::Now());
      if (!recorded.ok()) return recorded.status();
      if (groups[i].role == v1::ADAPTER_ROLE_VERIFIER) progress.verifier += *recorded;
      if (groups[i].role == v1::ADAPTER_ROLE_META_VERIFIER) progress.meta_verifier += *recorded;
    }
    if (groups.empty()) {
      if (absl::Status s = store_->SetCursor(analyses_cursor, a.seq, absl::Now()); !s.ok()) return s;
    }
  }
  // Generator examples from proofs scored 1.
  if (!options_.generator_completion) return progress;
  const std::string proofs_cursor = RunStore::CursorName(v1::PHASE_WARMUP_SFT, 0, "proofs");
  position = store_->GetCursor(proofs_cursor);
  if (!position.ok()) return position.status();
  auto proofs = store_->Proofs(*position, options_.batch);
  if (!proofs.ok()) return proofs.status();
  for (const StoredProof& p : *proofs) {
    auto problem = store_->GetProblem(p.record.problem_id());
    if (!problem.ok()) return problem.status();
    if (p.record.score() != 1.0 || !problem->has_value() || (*problem)->split() == v1::DATASET_SPLIT_EVAL) {
      if (absl::Status s = store_->SetCursor(proofs_cursor, p.seq, absl::Now()); !s.ok()) return s;
      continue;
    }
    auto g = SftGroup(absl::StrCat("p1-i0-g-", p.record.proof_id()), v1::ADAPTER_ROLE_GENERATOR,
                      p.record.problem_id(), templates_.generator.Render(PromptFields{(*problem)->statement(), "", ""}),
                      options_.generator_completion(**problem, p.record));
    if (!g.ok()) return g.status();
    auto recorded = store_->RecordGroup(*g, CursorUpdate{proofs_cursor, p.seq}, absl::Now());
    if (!recorded.ok()) return recorded.status();
    progress.generator += *recorded;
  }
  return progress;
}

}  // namespace dsm
