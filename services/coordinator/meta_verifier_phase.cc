#include "services/coordinator/meta_verifier_phase.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/concurrent_calls.h"
#include "services/coordinator/phase_groups.h"
#include "services/coordinator/rewards.h"

namespace dsm {

MetaVerifierPhase::MetaVerifierPhase(RunStore* store, ScoringClient* scoring, MetaVerifierPhaseOptions options,
                                     std::function<void()> on_group)
    : store_(store),
      scoring_(scoring),
      options_(std::move(options)),
      pass_(PassOrder::Of(options_.shuffle_seed, options_.phase, options_.iteration, options_.epoch, "analyses")),
      on_group_(std::move(on_group)) {}

std::string MetaVerifierPhase::CursorName() const {
  return RunStore::CursorName(options_.phase, options_.iteration, EpochDataset("analyses", options_.epoch));
}

absl::StatusOr<ScoringPhaseProgress> MetaVerifierPhase::RunOnce() {
  ScoringPhaseProgress progress;
  absl::StatusOr<int64_t> cursor = store_->GetCursor(CursorName());
  if (!cursor.ok()) return cursor.status();
  const uint32_t limit = options_.max_analyses == 0 ? 1024 : options_.max_analyses;
  absl::StatusOr<std::vector<int64_t>> next =
      pass_.Next(*cursor, limit, [this] { return store_->AnalysisSeqs(); });
  if (!next.ok()) return next.status();
  absl::StatusOr<std::vector<StoredAnalysis>> analyses = store_->AnalysesAt(*next);
  if (!analyses.ok()) return analyses.status();
  // Every training analysis's request, assessed side by side (the meta-verifier batches them, and
  // the whole batch is sampled before any of its groups reaches the learner); then the results are
  // handled in order, so the cursor only ever moves forward.
  struct Item {
    std::optional<v1::AssessRequest> request;  // none: held out
    std::string problem_id;
    std::optional<absl::StatusOr<v1::AssessResponse>> response;
  };
  std::vector<Item> items(analyses->size());
  for (size_t i = 0; i < analyses->size(); ++i) {
    const v1::LabelledAnalysis& labelled = (*analyses)[i].record;
    absl::StatusOr<std::optional<v1::LabelledProof>> proof = store_->GetProof(labelled.proof_id());
    if (!proof.ok()) return proof.status();
    if (!proof->has_value()) {
      return absl::FailedPreconditionError(absl::StrCat("analysis ", labelled.analysis_id(), ": proof ",
                                                        labelled.proof_id(), " is not in the run"));
    }
    absl::StatusOr<std::optional<v1::ProblemRecord>> problem = store_->GetProblem((*proof)->problem_id());
    if (!problem.ok()) return problem.status();
    if (!problem->has_value()) {
      return absl::FailedPreconditionError(absl::StrCat("proof ", (*proof)->proof_id(), ": problem ",
                                                        (*proof)->problem_id(), " is not in the run"));
    }
    if ((*problem)->split() == v1::DATASET_SPLIT_EVAL) continue;  // held out: evaluation only
    v1::AssessRequest& request = items[i].request.emplace();
    items[i].problem_id = (*proof)->problem_id();
    request.set_problem((*problem)->statement());
    request.set_proof((*proof)->proof());
    request.set_analysis(labelled.analysis());
    request.set_n(options_.group_size);
    *request.mutable_params() = options_.params;
    request.mutable_params()->set_return_logprobs(true);
    request.set_adapter_role(options_.role);
    request.set_request_id(absl::StrCat("p", static_cast<int>(options_.phase), "-i", options_.iteration, "-",
                                        labelled.analysis_id(), EpochSuffix(options_.epoch)));
  }
  RunConcurrently(items.size(), options_.max_concurrent_calls, [&](size_t i) {
    if (items[i].request.has_value()) items[i].response = scoring_->Assess(*items[i].request);
  });
  for (size_t i = 0; i < items.size(); ++i) {
    const StoredAnalysis& stored = (*analyses)[i];
    const v1::LabelledAnalysis& labelled = stored.record;
    if (!items[i].request.has_value()) {  // held out: evaluation only, never trained on
      if (absl::Status s = store_->SetCursor(CursorName(), pass_.order().KeyOf(stored.seq), absl::Now()); !s.ok()) return s;
      ++progress.skipped;
      continue;
    }
    const v1::AssessRequest& request = *items[i].request;
    const absl::StatusOr<v1::AssessResponse>& assessed = *items[i].response;
    if (!assessed.ok() && LeftOutByScorer(assessed.status(), absl::StrCat("analysis ", labelled.analysis_id()))) {
      if (absl::Status s = store_->SetCursor(CursorName(), pass_.order().KeyOf(stored.seq), absl::Now()); !s.ok()) return s;
      ++progress.skipped;
      continue;
    }
    if (!assessed.ok()) return assessed.status();
    GroupRecord group = NewGroup(request.request_id(), options_.role, options_.phase, options_.iteration,
                                 items[i].problem_id, "meta_verifier_rl", options_.params,
                                 assessed->prompt_token_ids());
    for (const v1::Analysis& a : assessed->assessments()) {
      absl::StatusOr<double> reward = MetaVerifierReward(a.score(), labelled.meta_score());
      if (!reward.ok()) {
        return absl::Status(reward.status().code(), absl::StrCat("analysis ", labelled.analysis_id(), ": ",
                                                                 reward.status().message()));
      }
      progress.format_failures += a.score().format() != v1::FORMAT_STATUS_OK;
      progress.reward_sum += *reward;
      ++progress.analyses;
      group.samples.push_back(SampleOf(a.completion(), a.score(), *reward));
    }
    if (absl::Status s = RecordAndAdvance(store_, group, CursorName(), pass_.order().KeyOf(stored.seq), &progress); !s.ok()) return s;
    if (on_group_) on_group_();
  }
  return progress;
}

}  // namespace dsm
