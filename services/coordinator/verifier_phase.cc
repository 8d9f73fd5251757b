#include "services/coordinator/verifier_phase.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/concurrent_calls.h"
#include "spdlog/spdlog.h"
#include "services/coordinator/phase_groups.h"
#include "services/coordinator/rewards.h"

namespace dsm {

VerifierPhase::VerifierPhase(RunStore* store, ScoringClient* scoring, VerifierPhaseOptions options,
                             std::function<void()> on_group)
    : store_(store),
      scoring_(scoring),
      options_(std::move(options)),
      pass_(PassOrder::Of(options_.shuffle_seed, options_.phase, options_.iteration, options_.epoch, "proofs")),
      on_group_(std::move(on_group)) {}

std::string VerifierPhase::CursorName() const {
  return RunStore::CursorName(options_.phase, options_.iteration, EpochDataset("proofs", options_.epoch));
}

absl::StatusOr<ScoringPhaseProgress> VerifierPhase::RunOnce() {
  const bool enhanced = options_.phase == v1::PHASE_ENHANCED_VERIFIER_RL;
  ScoringPhaseProgress progress;
  absl::StatusOr<int64_t> cursor = store_->GetCursor(CursorName());
  if (!cursor.ok()) return cursor.status();
  const uint32_t limit = options_.max_proofs == 0 ? 1024 : options_.max_proofs;
  absl::StatusOr<std::vector<int64_t>> next = pass_.Next(*cursor, limit, [this] { return store_->ProofSeqs(); });
  if (!next.ok()) return next.status();
  absl::StatusOr<std::vector<StoredProof>> proofs = store_->ProofsAt(*next);
  if (!proofs.ok()) return proofs.status();
  // Every training proof's request, verified side by side (the verifier batches them); then the
  // results are handled in order, so the cursor only ever moves forward.
  std::vector<std::optional<v1::VerifyRequest>> requests(proofs->size());
  for (size_t i = 0; i < proofs->size(); ++i) {
    const v1::LabelledProof& proof = (*proofs)[i].record;
    absl::StatusOr<std::optional<v1::ProblemRecord>> problem = store_->GetProblem(proof.problem_id());
    if (!problem.ok()) return problem.status();
    if (!problem->has_value()) {
      return absl::FailedPreconditionError(absl::StrCat("proof ", proof.proof_id(), ": problem ",
                                                        proof.problem_id(), " is not in the run"));
    }
    if ((*problem)->split() == v1::DATASET_SPLIT_EVAL) continue;  // held out: evaluation only
    v1::VerifyRequest& request = requests[i].emplace();
    request.set_problem((*problem)->statement());
    request.set_proof(proof.proof());
    request.set_n(options_.group_size);
    *request.mutable_params() = options_.params;
    request.mutable_params()->set_return_logprobs(true);
    request.set_adapter_role(v1::ADAPTER_ROLE_VERIFIER);
    request.set_request_id(absl::StrCat("p", static_cast<int>(options_.phase), "-i", options_.iteration, "-",
                                        proof.proof_id(), EpochSuffix(options_.epoch)));
  }
  std::vector<std::optional<absl::StatusOr<v1::VerifyResponse>>> responses(proofs->size());
  RunConcurrently(proofs->size(), options_.max_concurrent_calls, [&](size_t i) {
    if (requests[i].has_value()) responses[i] = scoring_->Verify(*requests[i]);
  });
  auto assess_id = [](const v1::VerifyRequest& request, const v1::Analysis& a) {
    return absl::StrCat(request.request_id(), "-a", a.completion().index());
  };
  // Enhanced: the meta-verification of every well-formed analysis of every proof, all requested
  // side by side (the meta-verifier batches them), before any result is handled.
  // assessed[proof][analysis]; empty where there is nothing to assess.
  std::vector<std::vector<std::optional<absl::StatusOr<v1::AssessResponse>>>> assessed(proofs->size());
  if (enhanced) {
    std::vector<std::pair<size_t, int>> wanted;  // (proof, analysis)
    for (size_t i = 0; i < proofs->size(); ++i) {
      if (!responses[i].has_value() || !responses[i]->ok()) continue;
      const auto& analyses = (*responses[i])->analyses();
      assessed[i].resize(static_cast<size_t>(analyses.size()));
      for (int j = 0; j < analyses.size(); ++j) {
        if (analyses[j].score().format() == v1::FORMAT_STATUS_OK) wanted.emplace_back(i, j);
      }
    }
    RunConcurrently(wanted.size(), options_.max_concurrent_calls, [&](size_t w) {
      const auto [i, j] = wanted[w];
      const v1::VerifyRequest& request = *requests[i];
      const v1::Analysis& a = (*responses[i])->analyses(j);
      v1::AssessRequest assess;
      assess.set_problem(request.problem());
      assess.set_proof(request.proof());
      assess.set_analysis(a.completion().text());
      assess.set_n(options_.meta_samples);
      *assess.mutable_params() = options_.meta_params;
      assess.set_aggregation(v1::AGGREGATION_MEAN);
      assess.set_request_id(assess_id(request, a));
      assessed[i][static_cast<size_t>(j)] = scoring_->Assess(assess);
    });
  }
  for (size_t index = 0; index < proofs->size(); ++index) {
    const StoredProof& stored = (*proofs)[index];
    const v1::LabelledProof& proof = stored.record;
    if (!requests[index].has_value()) {  // held out: evaluation only, never trained on
      if (absl::Status s = store_->SetCursor(CursorName(), pass_.order().KeyOf(stored.seq), absl::Now()); !s.ok()) return s;
      ++progress.skipped;
      continue;
    }
    const v1::VerifyRequest& request = *requests[index];
    const absl::StatusOr<v1::VerifyResponse>& verified = *responses[index];
    if (!verified.ok() && LeftOutByScorer(verified.status(), absl::StrCat("proof ", proof.proof_id()))) {
      if (absl::Status s = store_->SetCursor(CursorName(), pass_.order().KeyOf(stored.seq), absl::Now()); !s.ok()) return s;
      ++progress.skipped;
      continue;
    }
    if (!verified.ok()) return verified.status();

    GroupRecord group = NewGroup(request.request_id(), v1::ADAPTER_ROLE_VERIFIER, options_.phase,
                                 options_.iteration, proof.problem_id(),
                                 enhanced ? "enhanced_verifier_rl" : "verifier_rl", options_.params,
                                 verified->prompt_token_ids());
    const auto& analyses = verified->analyses();
    for (int i = 0; i < analyses.size(); ++i) {
      const v1::Analysis& a = analyses[i];
      std::optional<double> meta;
      if (enhanced && assessed[index][static_cast<size_t>(i)].has_value()) {
        const absl::StatusOr<v1::AssessResponse>& result = *assessed[index][static_cast<size_t>(i)];
        if (!result.ok() && LeftOutByScorer(result.status(), assess_id(request, a))) continue;
        if (!result.ok()) return result.status();
        if (result->has_aggregate_meta_score()) meta = result->aggregate_meta_score();
        if (!meta.has_value()) {
          // No valid meta-judgement: the sample is left out, never given a made-up R_meta.
          spdlog::warn("coordinator: {} left out: the meta-verifier gave no valid score", assess_id(request, a));
          ++progress.unjudged;
          continue;
        }
      }
      absl::StatusOr<double> reward = enhanced ? EnhancedVerifierReward(a.score(), proof.score(), meta)
                                               : VerifierReward(a.score(), proof.score());
      if (!reward.ok()) {
        return absl::Status(reward.status().code(), absl::StrCat("proof ", proof.proof_id(), ", analysis ",
                                                                 a.completion().index(), ": ",
                                                                 reward.status().message()));
      }
      SampleRecord s = SampleOf(a.completion(), a.score(), *reward);
      if (meta.has_value()) s.reward_parts["r_meta"] = *meta;
      progress.format_failures += a.score().format() != v1::FORMAT_STATUS_OK;
      progress.reward_sum += *reward;
      ++progress.analyses;
      group.samples.push_back(std::move(s));
    }
    if (absl::Status s = RecordAndAdvance(store_, group, CursorName(), pass_.order().KeyOf(stored.seq), &progress); !s.ok()) return s;
    if (on_group_) on_group_();
  }
  return progress;
}

}  // namespace dsm
