#include "services/coordinator/auto_label_phase.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/concurrent_calls.h"
#include "services/coordinator/phase_groups.h"
#include "spdlog/spdlog.h"

namespace dsm {

namespace {

// One debug line per proof: the label, and each analysis's score, meta-scores and issue lines,
// so a run's log shows why a proof got its label (e.g. issues reported but none confirmed).
void LogEvidence(const std::string& id, const v1::VerifyResponse& verified, const std::vector<LabelEvidence>& evidence,
                 const AutoLabelResult& label) {
  std::string analyses;
  for (size_t j = 0; j < evidence.size(); ++j) {
    const LabelEvidence& e = evidence[j];
    absl::StrAppend(&analyses, " | score ",
                    e.analysis.format() == v1::FORMAT_STATUS_OK ? absl::StrCat(e.analysis.value()) : "invalid",
                    " meta [", absl::StrJoin(e.meta_scores, ","), "]");
    if (e.analysis.format() == v1::FORMAT_STATUS_OK && e.analysis.value() < 1.0) {
      for (absl::string_view line : absl::StrSplit(verified.analyses(static_cast<int>(j)).completion().text(), '\n')) {
        if (absl::StartsWith(line, "Step ") || absl::StartsWith(line, "The final line")) {
          absl::StrAppend(&analyses, " \"", line, "\"");
        }
      }
    }
  }
  spdlog::debug("auto-label {}: {} ({}){}", id, label.label ? absl::StrCat(*label.label) : "dropped", label.reason,
                analyses);
}

// Whether some analysis is valid and none valid reports an issue: the proof would be labelled 1.
bool AllPass(const google::protobuf::RepeatedPtrField<v1::Analysis>& analyses) {
  auto valid = [](const v1::Analysis& a) { return a.score().format() == v1::FORMAT_STATUS_OK; };
  return std::any_of(analyses.begin(), analyses.end(), valid) &&
         std::none_of(analyses.begin(), analyses.end(),
                      [&](const v1::Analysis& a) { return valid(a) && a.score().value() < 1.0; });
}

// What one work item (a problem's proofs) comes to: its labels and its counts (items, proofs,
// dropped, duplicates, malformed), not yet stored.
struct ItemLabels {
  std::vector<v1::LabelledProof> labels;
  AutoLabelProgress counts;
};

// Verifies each new, well-formed proof of `item` n times (correct_n when all n pass it),
// meta-verifies the analyses that report an issue m times, and labels the proof by AutoLabel (or
// drops it). Reads the store, writes nothing.
absl::StatusOr<ItemLabels> LabelWorkItem(RunStore* store, ScoringClient* scoring, const OutputMarkers& markers,
                                         const AutoLabelPhaseOptions& options, const WorkItem& item) {
  ItemLabels done;
  const bool ours = item.phase == v1::PHASE_AUTO_LABEL && item.iteration == options.iteration &&
                    item.kind == WorkKind::kGenerate && item.state == WorkState::kDone;
  if (item.phase == v1::PHASE_AUTO_LABEL && item.iteration == options.iteration) ++done.counts.items;
  if (ours) {
    absl::StatusOr<GeneratedItem> generated = ReadGeneratedItem(store, item);
    if (!generated.ok()) return generated.status();
    const v1::GenerateResult& result = generated->result;
    const std::string& problem_id = generated->work.metadata().problem_id();
    const v1::ProblemRecord& problem = generated->problem;
    // The new, well-formed proofs of this item (a proof already in the run, or twice here, once).
    struct Candidate {
      const v1::Completion* completion = nullptr;
      std::string proof;
      std::string verify_id;
      std::optional<absl::StatusOr<v1::VerifyResponse>> verified;
      // Per analysis: the meta-verifications of one that reports an issue.
      std::vector<std::optional<absl::StatusOr<v1::AssessResponse>>> assessed;
    };
    std::vector<Candidate> candidates;
    for (const v1::Completion& c : result.completions()) {
      const GeneratorOutput out = SplitGeneratorOutput(c.text(), markers, c.finish_reason());
      if (!out.has_solution_header || out.proof.empty()) {
        ++done.counts.malformed;
        continue;
      }
      auto seen = store->HasProofText(problem_id, out.proof);
      if (!seen.ok()) return seen.status();
      bool duplicate = *seen;
      for (const Candidate& earlier : candidates) duplicate |= earlier.proof == out.proof;
      if (duplicate) {
        ++done.counts.duplicates;
        continue;
      }
      ++done.counts.proofs;
      Candidate& candidate = candidates.emplace_back();
      candidate.completion = &c;
      candidate.proof = out.proof;
      candidate.verify_id = absl::StrCat("p6-i", options.iteration, "-", item.item_id, "-", c.index());
    }
    auto assess_id = [](const Candidate& candidate, const v1::Analysis& a) {
      return absl::StrCat(candidate.verify_id, "-a", a.completion().index());
    };
    // n analyses of each proof, then m meta-verifications of each analysis that reports an
    // issue; the proofs side by side, and each proof's meta-verifications side by side.
    RunConcurrently(candidates.size(), options.max_concurrent_calls, [&](size_t i) {
      Candidate& candidate = candidates[i];
      v1::VerifyRequest verify;
      verify.set_problem(problem.statement());
      verify.set_proof(candidate.proof);
      verify.set_n(options.n);
      *verify.mutable_params() = options.scoring_params;
      verify.set_request_id(candidate.verify_id);
      candidate.verified = scoring->Verify(verify);
      if (!candidate.verified->ok()) return;
      if (options.correct_n > options.n && AllPass((*candidate.verified)->analyses())) {
        // A label of 1 needs correct_n analyses: the rest, in requests of at most
        // max_n_per_request ("-more", "-more-2", ...), numbered on from n.
        const uint32_t extra = options.correct_n - options.n;
        const uint32_t per = options.max_n_per_request == 0 ? extra : options.max_n_per_request;
        std::vector<absl::StatusOr<v1::VerifyResponse>> more((extra + per - 1) / per);
        RunConcurrently(more.size(), options.max_concurrent_calls, [&](size_t r) {
          v1::VerifyRequest part = verify;
          part.set_n(std::min(per, extra - static_cast<uint32_t>(r) * per));
          part.set_request_id(r == 0 ? absl::StrCat(candidate.verify_id, "-more")
                                     : absl::StrCat(candidate.verify_id, "-more-", r + 1));
          more[r] = scoring->Verify(part);
        });
        uint32_t index = options.n;
        for (absl::StatusOr<v1::VerifyResponse>& response : more) {
          if (!response.ok()) {
            candidate.verified = response.status();
            return;
          }
          for (v1::Analysis& a : *response->mutable_analyses()) {
            a.mutable_completion()->set_index(index++);
            *(*candidate.verified)->add_analyses() = std::move(a);
          }
        }
      }
      const auto& analyses = (*candidate.verified)->analyses();
      candidate.assessed.resize(static_cast<size_t>(analyses.size()));
      RunConcurrently(candidate.assessed.size(), options.max_concurrent_calls, [&](size_t j) {
        const v1::Analysis& a = analyses[static_cast<int>(j)];
        if (a.score().format() != v1::FORMAT_STATUS_OK || a.score().value() >= 1.0) return;
        v1::AssessRequest assess;
        assess.set_problem(problem.statement());
        assess.set_proof(candidate.proof);
        assess.set_analysis(a.completion().text());
        assess.set_n(options.m);
        *assess.mutable_params() = options.scoring_params;
        assess.set_request_id(assess_id(candidate, a));
        candidate.assessed[j] = scoring->Assess(assess);
      });
    });
    for (const Candidate& candidate : candidates) {
      const absl::StatusOr<v1::VerifyResponse>& verified = *candidate.verified;
      if (!verified.ok() && LeftOutByScorer(verified.status(), candidate.verify_id)) {
        ++done.counts.dropped;
        continue;
      }
      if (!verified.ok()) return verified.status();
      std::vector<LabelEvidence> evidence;
      for (int j = 0; j < verified->analyses().size(); ++j) {
        const v1::Analysis& a = verified->analyses(j);
        LabelEvidence e;
        e.analysis = a.score();
        if (const auto& assessed = candidate.assessed[static_cast<size_t>(j)]; assessed.has_value()) {
          if (!assessed->ok() && !LeftOutByScorer(assessed->status(), assess_id(candidate, a))) {
            return assessed->status();
          }
          for (const v1::Analysis& m : assessed->ok() ? (*assessed)->assessments()
                                                      : google::protobuf::RepeatedPtrField<v1::Analysis>()) {
            if (m.score().format() == v1::FORMAT_STATUS_OK) e.meta_scores.push_back(m.score().value());
          }
        }
        evidence.push_back(std::move(e));
      }
      const AutoLabelResult label = AutoLabel(evidence, options.rule);
      if (spdlog::should_log(spdlog::level::debug)) LogEvidence(candidate.verify_id, *verified, evidence, label);
      if (!label.label.has_value()) {
        ++done.counts.dropped;
        continue;
      }
      const v1::Completion& c = *candidate.completion;
      v1::LabelledProof& proof = done.labels.emplace_back();
      proof.set_proof_id(absl::StrCat("auto-i", options.iteration, "-", item.item_id, "-", c.index()));
      proof.set_problem_id(problem_id);
      proof.set_proof(candidate.proof);
      proof.set_score(*label.label);
      proof.set_labeller("auto");
      if (*label.label < 1.0) {
        // The text of a lowest-score analysis as the issue.
        for (const v1::Analysis& a : verified->analyses()) {
          if (a.score().format() == v1::FORMAT_STATUS_OK && a.score().value() == *label.label) {
            proof.set_issue(a.completion().text());
            break;
          }
        }
      }
    }
  }
  return done;
}

}  // namespace

AutoLabelPhase::AutoLabelPhase(RunStore* store, LeaseDispatcher* dispatcher, ScoringClient* scoring,
                               PromptTemplate generator, OutputMarkers markers, AutoLabelPhaseOptions options)
    : store_(store),
      dispatcher_(dispatcher),
      scoring_(scoring),
      generator_(std::move(generator)),
      markers_(std::move(markers)),
      options_(std::move(options)) {}

std::string AutoLabelPhase::ProblemCursor() const {
  return RunStore::CursorName(v1::PHASE_AUTO_LABEL, options_.iteration, "problems");
}

std::string AutoLabelPhase::LabelledProblemCursor() const {
  return RunStore::CursorName(v1::PHASE_AUTO_LABEL, options_.iteration, "labelled-problems");
}

std::string AutoLabelPhase::ResultCursor() const {
  return RunStore::CursorName(v1::PHASE_AUTO_LABEL, options_.iteration, "results");
}

absl::StatusOr<AutoLabelProgress> AutoLabelPhase::Enqueue(uint32_t problems) {
  GenerationWorkSpec spec{v1::PHASE_AUTO_LABEL, options_.iteration, options_.proofs_per_problem, options_.params,
                          options_.min_adapter_version, 1, options_.seed};
  auto unlabelled = EnqueueGenerationWork(store_, dispatcher_, generator_, spec, ProblemCursor(), problems,
                                         ProblemLabels::kUnlabelled);
  if (!unlabelled.ok()) return unlabelled.status();
  AutoLabelProgress progress;
  progress.enqueued = *unlabelled;
  if (progress.enqueued < problems) {
    auto labelled = EnqueueGenerationWork(store_, dispatcher_, generator_, spec, LabelledProblemCursor(),
                                          problems - progress.enqueued, ProblemLabels::kLabelled);
    if (!labelled.ok()) return labelled.status();
    progress.enqueued += *labelled;
  }
  return progress;
}

absl::StatusOr<AutoLabelProgress> AutoLabelPhase::ProcessResults(
    const std::function<void(const AutoLabelProgress&)>& on_stored) {
  AutoLabelProgress progress;
  absl::StatusOr<int64_t> cursor = store_->GetCursor(ResultCursor());
  if (!cursor.ok()) return cursor.status();
  auto results = store_->queue().ResultsAfter(*cursor, 256);
  if (!results.ok()) return results.status();
  // Up to items_at_once items are labelled side by side (so the verifier samples one item's proofs
  // while the meta-verifier checks another's analyses), and the next one starts as soon as any of
  // them is done: no wave waits for its slowest item. Each is stored, with the cursor, once every
  // item before it is: whoever finishes the oldest unstored item stores it and the done ones after
  // it. A failure stores the items before it and no later one, and starts no further item.
  const size_t n = results->size();
  absl::Mutex mu;
  std::vector<std::optional<absl::StatusOr<ItemLabels>>> labelled(n);
  size_t next_to_store = 0;
  absl::Status failed;
  RunConcurrently(n, std::max<size_t>(1, options_.items_at_once), [&](size_t k) {
    {
      absl::MutexLock lock(&mu);
      if (!failed.ok()) return;
    }
    absl::StatusOr<ItemLabels> item = LabelWorkItem(store_, scoring_, markers_, options_, (*results)[k]);
    absl::MutexLock lock(&mu);
    labelled[k] = std::move(item);
    for (; failed.ok() && next_to_store < n && labelled[next_to_store].has_value(); ++next_to_store) {
      const absl::StatusOr<ItemLabels>& done = *labelled[next_to_store];
      if (!done.ok()) {
        failed = done.status();
        break;
      }
      absl::Status stored = store_->AddAutoLabels(
          done->labels, options_.iteration, CursorUpdate{ResultCursor(), (*results)[next_to_store].result_seq},
          absl::Now());
      if (!stored.ok()) {
        failed = stored;
        break;
      }
      progress.items += done->counts.items;
      progress.proofs += done->counts.proofs;
      progress.dropped += done->counts.dropped;
      progress.duplicates += done->counts.duplicates;
      progress.malformed += done->counts.malformed;
      progress.labelled += static_cast<uint32_t>(done->labels.size());
      labelled[next_to_store].reset();
      if (on_stored) on_stored(progress);
    }
  });
  if (!failed.ok()) return failed;
  return progress;
}

}  // namespace dsm
