#include "services/coordinator/generator_phase.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/concurrent_calls.h"
#include "services/scoring/score_parser.h"
#include "spdlog/spdlog.h"

namespace dsm {

GeneratorPhase::GeneratorPhase(RunStore* store, LeaseDispatcher* dispatcher, ScoringClient* scoring,
                               PromptTemplate generator, OutputMarkers markers, GeneratorPhaseOptions options,
                               std::function<void()> on_group)
    : store_(store),
      dispatcher_(dispatcher),
      scoring_(scoring),
      generator_(std::move(generator)),
      markers_(std::move(markers)),
      options_(std::move(options)),
      on_group_(std::move(on_group)) {}

std::string GeneratorPhase::ProblemCursor() const {
  return RunStore::CursorName(v1::PHASE_GENERATOR_RL, options_.iteration, EpochDataset("problems", options_.epoch));
}

std::string GeneratorPhase::ResultCursor() const {
  return RunStore::CursorName(v1::PHASE_GENERATOR_RL, options_.iteration, "results");
}

absl::StatusOr<GeneratorPhaseProgress> GeneratorPhase::Enqueue(uint32_t problems) {
  GenerationWorkSpec spec{v1::PHASE_GENERATOR_RL, options_.iteration, options_.group_size, options_.params,
                          options_.min_adapter_version, options_.epoch, options_.seed};
  auto enqueued = EnqueueGenerationWork(store_, dispatcher_, generator_, spec, ProblemCursor(), problems);
  if (!enqueued.ok()) return enqueued.status();
  GeneratorPhaseProgress progress;
  progress.enqueued = *enqueued;
  return progress;
}

absl::StatusOr<GeneratorPhaseProgress> GeneratorPhase::ProcessResults() {
  GeneratorPhaseProgress progress;
  absl::StatusOr<int64_t> cursor = store_->GetCursor(ResultCursor());
  if (!cursor.ok()) return cursor.status();
  auto results = store_->queue().ResultsAfter(*cursor, 256);
  if (!results.ok()) return results.status();
  // Handled in the order the problems were enqueued (item_id), not the order the workers finished
  // them in, so the learner gets the groups of a set of results in the same order every run. The
  // cursor (finishing order) passes a result only once every result before it is handled: after
  // a restart the rest are handled again (RecordGroup ignores a group it holds).
  std::vector<const WorkItem*> in_order;
  for (const WorkItem& item : *results) in_order.push_back(&item);
  std::sort(in_order.begin(), in_order.end(),
            [](const WorkItem* a, const WorkItem* b) { return a->item_id < b->item_id; });
  std::set<int64_t> handled;
  size_t prefix = 0;  // results[0, prefix) are handled
  auto position_after = [&](const WorkItem& item) {
    handled.insert(item.result_seq);
    while (prefix < results->size() && handled.count((*results)[prefix].result_seq) > 0) ++prefix;
    return prefix == 0 ? *cursor : (*results)[prefix - 1].result_seq;
  };
  for (const WorkItem* next : in_order) {
    const WorkItem& item = *next;
    const bool ours = item.phase == v1::PHASE_GENERATOR_RL && item.iteration == options_.iteration &&
                      item.kind == WorkKind::kGenerate;
    if (!ours || item.state != WorkState::kDone) {
      if (ours) {
        ++progress.failed_items;
        ++progress.finished_items;
        spdlog::warn("coordinator: generation item {} failed: {}", item.item_id, item.error);
      }
      if (absl::Status s = store_->SetCursor(ResultCursor(), position_after(item), absl::Now()); !s.ok()) return s;
      continue;
    }
    absl::StatusOr<GeneratedItem> generated = ReadGeneratedItem(store_, item);
    if (!generated.ok()) return generated.status();
    const v1::GenerateResult& result = generated->result;
    const std::string& problem_id = generated->work.metadata().problem_id();
    const v1::ProblemRecord& problem = generated->problem;
    GroupRecord group = NewGroup(absl::StrCat("p5-i", options_.iteration, "-", problem_id, "-", item.item_id),
                                 v1::ADAPTER_ROLE_GENERATOR, v1::PHASE_GENERATOR_RL, options_.iteration, problem_id,
                                 "generator_rl", options_.params, result.prompt_token_ids());
    // Every well-formed completion's verification and meta-verification, requested side by side.
    const auto& completions = result.completions();
    const size_t n = static_cast<size_t>(completions.size());
    std::vector<GeneratorOutput> outs;
    std::vector<bool> well_formed;
    for (const v1::Completion& c : completions) {
      outs.push_back(SplitGeneratorOutput(c.text(), markers_, c.finish_reason()));
      const GeneratorOutput& out = outs.back();
      well_formed.push_back(out.has_solution_header && out.has_self_evaluation_header &&
                            out.self_score.format() == v1::FORMAT_STATUS_OK && !out.proof.empty());
    }
    auto verify_id = [&](size_t i) { return absl::StrCat(group.group_id, "-v", completions[static_cast<int>(i)].index()); };
    auto assess_id = [&](size_t i) { return absl::StrCat(group.group_id, "-m", completions[static_cast<int>(i)].index()); };
    std::vector<std::optional<absl::StatusOr<v1::VerifyResponse>>> verified(n);
    std::vector<std::optional<absl::StatusOr<v1::AssessResponse>>> assessed(n);
    RunConcurrently(2 * n, options_.max_concurrent_calls, [&](size_t task) {
      const size_t i = task / 2;
      if (!well_formed[i]) return;
      const GeneratorOutput& out = outs[i];
      if (task % 2 == 0) {
        v1::VerifyRequest verify;
        verify.set_problem(problem.statement());
        verify.set_proof(out.proof);
        verify.set_n(options_.verifications);
        *verify.mutable_params() = options_.scoring_params;
        verify.set_aggregation(v1::AGGREGATION_MEAN);
        verify.set_request_id(verify_id(i));
        verified[i] = scoring_->Verify(verify);
      } else {
        v1::AssessRequest assess;
        assess.set_problem(problem.statement());
        assess.set_proof(out.proof);
        assess.set_analysis(out.self_analysis);
        assess.set_n(options_.meta_verifications);
        *assess.mutable_params() = options_.scoring_params;
        assess.set_aggregation(v1::AGGREGATION_MEAN);
        assess.set_request_id(assess_id(i));
        assessed[i] = scoring_->Assess(assess);
      }
    });
    for (size_t i = 0; i < n; ++i) {
      const v1::Completion& c = completions[static_cast<int>(i)];
      const GeneratorOutput& out = outs[i];
      const bool format_ok = well_formed[i];
      std::optional<double> s, ms, self;
      if (format_ok) {
        self = out.self_score.value();
        const absl::StatusOr<v1::VerifyResponse>& v = *verified[i];
        if (!v.ok() && !LeftOutByScorer(v.status(), verify_id(i))) return v.status();
        if (v.ok() && v->has_aggregate_score()) s = v->aggregate_score();
        const absl::StatusOr<v1::AssessResponse>& m = *assessed[i];
        if (!m.ok() && !LeftOutByScorer(m.status(), assess_id(i))) return m.status();
        if (m.ok() && m->has_aggregate_meta_score()) ms = m->aggregate_meta_score();
      }
      absl::StatusOr<GeneratorReward> reward = ComputeGeneratorReward(format_ok, self, s, ms, options_.reward);
      if (!reward.ok()) {
        // No valid judgement of this sample: it is left out of training, never given a made-up reward.
        spdlog::warn("coordinator: {} completion {} left out: {}", group.group_id, c.index(),
                     std::string(reward.status().message()));
        continue;
      }
      SampleRecord sample = SampleOf(c, out.self_score, reward->total);
      sample.reward_parts["r_format"] = reward->r_format;
      sample.reward_parts["r_y"] = reward->r_y;
      sample.reward_parts["r_z"] = reward->r_z;
      progress.format_failures += !format_ok;
      progress.reward_sum += reward->total;
      if (format_ok) progress.verifier_score_sum += reward->r_y;
      ++progress.samples;
      group.samples.push_back(std::move(sample));
    }
    ScoringPhaseProgress counted;  // a group left with under 2 samples only moves the cursor
    if (absl::Status st = RecordAndAdvance(store_, group, ResultCursor(), position_after(item), &counted); !st.ok()) {
      return st;
    }
    progress.groups += counted.groups_recorded;
    ++progress.finished_items;
    if (on_group_) on_group_();
  }
  return progress;
}

}  // namespace dsm
