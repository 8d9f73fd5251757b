#include "services/coordinator/warmup_phase.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/scoring/score_parser.h"

namespace dsm {

WarmupPhase::WarmupPhase(RunStore* store, WarmupTemplates templates, WarmupPhaseOptions options)
    : store_(store),
      templates_(std::move(templates)),
      options_(std::move(options)),
      analyses_(PassOrder::Of(options_.shuffle_seed, v1::PHASE_WARMUP_SFT, 0, options_.epoch, "analyses")),
      proofs_(PassOrder::Of(options_.shuffle_seed, v1::PHASE_WARMUP_SFT, 0, options_.epoch, "proofs")) {}

absl::StatusOr<GroupRecord> WarmupPhase::SftGroup(std::string group_id, v1::AdapterRole role,
                                                  const std::string& problem_id, const std::string& prompt,
                                                  const std::string& completion) const {
  auto prompt_ids = options_.encode(prompt, /*add_special_tokens=*/true);
  if (!prompt_ids.ok()) return prompt_ids.status();
  auto completion_ids = options_.encode(completion, /*add_special_tokens=*/false);
  if (!completion_ids.ok()) return completion_ids.status();
  if (options_.eos_token_id >= 0) completion_ids->push_back(options_.eos_token_id);
  if (prompt_ids->empty() || completion_ids->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(group_id, ": empty prompt or completion"));
  }
  GroupRecord group;
  group.group_id = absl::StrCat(group_id, EpochSuffix(options_.epoch));
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

absl::StatusOr<std::optional<v1::ProblemRecord>> WarmupPhase::TrainingProblem(const std::string& problem_id) {
  auto problem = store_->GetProblem(problem_id);
  if (!problem.ok()) return problem.status();
  if (!problem->has_value() || (*problem)->split() == v1::DATASET_SPLIT_EVAL) return std::nullopt;  // held out
  return *problem;
}

absl::StatusOr<std::vector<GroupRecord>> WarmupPhase::AnalysisGroups(const v1::LabelledAnalysis& a) {
  std::vector<GroupRecord> groups;
  auto proof = store_->GetProof(a.proof_id());
  if (!proof.ok()) return proof.status();
  if (!proof->has_value()) return groups;
  auto problem = TrainingProblem((*proof)->problem_id());
  if (!problem.ok()) return problem.status();
  if (!problem->has_value()) return groups;
  const std::string& statement = (*problem)->statement();
  // The verifier imitates an analysis only when it is faithful (meta-score 1) and gives the
  // proof its label: the meta-rubric calls an analysis that names no issue reasonable whatever
  // the proof (METHOD.md), and such an analysis of a faulty proof would teach it to miss issues.
  const v1::Score score = ParseScore(a.analysis(), templates_.verifier.markers());
  if (a.meta_score() == 1.0 && score.format() == v1::FORMAT_STATUS_OK && score.value() == (*proof)->score()) {
    auto g = SftGroup(absl::StrCat("p1-i0-v-", a.analysis_id()), v1::ADAPTER_ROLE_VERIFIER, (*proof)->problem_id(),
                      templates_.verifier.Render(PromptFields{statement, (*proof)->proof(), ""}), a.analysis());
    if (!g.ok()) return g.status();
    groups.push_back(*std::move(g));
  }
  if (options_.meta_completion) {
    auto g = SftGroup(absl::StrCat("p1-i0-m-", a.analysis_id()), v1::ADAPTER_ROLE_META_VERIFIER,
                      (*proof)->problem_id(),
                      templates_.meta_verifier.Render(PromptFields{statement, (*proof)->proof(), a.analysis()}),
                      options_.meta_completion(a));
    if (!g.ok()) return g.status();
    groups.push_back(*std::move(g));
  }
  return groups;
}

absl::StatusOr<std::vector<GroupRecord>> WarmupPhase::ProofGroups(const v1::LabelledProof& p) {
  std::vector<GroupRecord> groups;
  if (!options_.generator_completion || p.score() != 1.0) return groups;  // the generator imitates proofs scored 1
  auto problem = TrainingProblem(p.problem_id());
  if (!problem.ok()) return problem.status();
  if (!problem->has_value()) return groups;
  auto g = SftGroup(absl::StrCat("p1-i0-g-", p.proof_id()), v1::ADAPTER_ROLE_GENERATOR, p.problem_id(),
                    templates_.generator.Render(PromptFields{(*problem)->statement(), "", ""}),
                    options_.generator_completion(**problem, p));
  if (!g.ok()) return g.status();
  groups.push_back(*std::move(g));
  return groups;
}

absl::Status WarmupPhase::Record(const std::vector<GroupRecord>& groups, const std::string& cursor, int64_t key,
                                 WarmupProgress* progress) {
  if (groups.empty()) return store_->SetCursor(cursor, key, absl::Now());
  for (size_t i = 0; i < groups.size(); ++i) {
    std::optional<CursorUpdate> update;
    if (i + 1 == groups.size()) update = CursorUpdate{cursor, key};  // the cursor moves with the last group
    auto recorded = store_->RecordGroup(groups[i], update, absl::Now());
    if (!recorded.ok()) return recorded.status();
    switch (groups[i].role) {
      case v1::ADAPTER_ROLE_VERIFIER: progress->verifier += *recorded; break;
      case v1::ADAPTER_ROLE_META_VERIFIER: progress->meta_verifier += *recorded; break;
      case v1::ADAPTER_ROLE_GENERATOR: progress->generator += *recorded; break;
      default: break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<WarmupProgress> WarmupPhase::RunOnce() {
  if (!options_.encode) return absl::FailedPreconditionError("encode: the warm-up needs the model's tokenizer");
  WarmupProgress progress;
  // Verifier and meta-verifier examples from the labelled analyses first.
  const std::string analyses_cursor =
      RunStore::CursorName(v1::PHASE_WARMUP_SFT, 0, EpochDataset("analyses", options_.epoch));
  absl::StatusOr<int64_t> position = store_->GetCursor(analyses_cursor);
  if (!position.ok()) return position.status();
  absl::StatusOr<std::vector<int64_t>> seqs =
      analyses_.Next(*position, options_.batch, [this] { return store_->AnalysisSeqs(); });
  if (!seqs.ok()) return seqs.status();
  if (!seqs->empty()) {
    auto analyses = store_->AnalysesAt(*seqs);
    if (!analyses.ok()) return analyses.status();
    for (const StoredAnalysis& a : *analyses) {
      auto groups = AnalysisGroups(a.record);
      if (!groups.ok()) return groups.status();
      if (absl::Status s = Record(*groups, analyses_cursor, analyses_.order().KeyOf(a.seq), &progress); !s.ok()) {
        return s;
      }
      ++progress.records;
    }
    return progress;
  }
  // Then generator examples from the labelled proofs.
  const std::string proofs_cursor = RunStore::CursorName(v1::PHASE_WARMUP_SFT, 0, EpochDataset("proofs", options_.epoch));
  position = store_->GetCursor(proofs_cursor);
  if (!position.ok()) return position.status();
  seqs = proofs_.Next(*position, options_.batch, [this] { return store_->ProofSeqs(); });
  if (!seqs.ok()) return seqs.status();
  if (seqs->empty()) return progress;
  auto proofs = store_->ProofsAt(*seqs);
  if (!proofs.ok()) return proofs.status();
  for (const StoredProof& p : *proofs) {
    auto groups = ProofGroups(p.record);
    if (!groups.ok()) return groups.status();
    if (absl::Status s = Record(*groups, proofs_cursor, proofs_.order().KeyOf(p.seq), &progress); !s.ok()) return s;
    ++progress.records;
  }
  return progress;
}

}  // namespace dsm
