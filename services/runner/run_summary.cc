#include "services/runner/run_summary.h"

#include <cmath>

#include "nlohmann/json.hpp"

namespace dsm {
namespace {

// The metric of the first (or last) evaluation matching phase/point (iteration 0 = any).
std::optional<double> Find(const std::vector<v1::Evaluation>& evaluations, v1::Phase phase, uint32_t iteration,
                           v1::EvaluationPoint point, const std::string& metric, bool last) {
  std::optional<double> found;
  for (const v1::Evaluation& e : evaluations) {
    if (e.phase() != phase || e.point() != point) continue;
    if (iteration != 0 && e.iteration() != iteration) continue;
    auto it = e.metrics().find(metric);
    if (it == e.metrics().end() || !std::isfinite(it->second)) continue;
    found = it->second;
    if (!last) break;
  }
  return found;
}

SummaryClaim Rises(std::string name, std::string description, std::optional<double> before,
                   std::optional<double> after) {
  SummaryClaim c{std::move(name), std::move(description), before, after, false};
  c.held = before.has_value() && after.has_value() && *after > *before;
  return c;
}

}  // namespace

RunSummary SummarizeRun(const std::vector<v1::Evaluation>& evaluations, double wall_seconds,
                        const std::map<std::string, double>& extra) {
  using P = v1::Phase;
  constexpr auto kBefore = v1::EVALUATION_POINT_BEFORE;
  constexpr auto kAfter = v1::EVALUATION_POINT_AFTER;
  RunSummary s;
  auto& f = s.fields;
  f["verifier_agreement_before"] = Find(evaluations, P::PHASE_VERIFIER_RL, 1, kBefore, "verifier_agreement", false);
  f["verifier_agreement_after"] = Find(evaluations, P::PHASE_VERIFIER_RL, 1, kAfter, "verifier_agreement", false);
  f["hallucinated_issue_rate_phase1"] =
      Find(evaluations, P::PHASE_VERIFIER_RL, 1, kAfter, "hallucinated_issue_rate", false);
  f["hallucinated_issue_rate_phase3"] =
      Find(evaluations, P::PHASE_ENHANCED_VERIFIER_RL, 0, kAfter, "hallucinated_issue_rate", true);
  f["generator_score_before"] = Find(evaluations, P::PHASE_GENERATOR_RL, 1, kBefore, "generator_score", false);
  f["generator_score_after"] = Find(evaluations, P::PHASE_GENERATOR_RL, 0, kAfter, "generator_score", true);
  f["self_score_agreement_before"] =
      Find(evaluations, P::PHASE_GENERATOR_RL, 1, kBefore, "self_score_agreement", false);
  f["self_score_agreement_after"] =
      Find(evaluations, P::PHASE_GENERATOR_RL, 0, kAfter, "self_score_agreement", true);
  f["autolabel_agreement"] = Find(evaluations, P::PHASE_AUTO_LABEL, 0, kAfter, "autolabel_agreement", true);
  f["autolabel_kept_fraction"] = Find(evaluations, P::PHASE_AUTO_LABEL, 0, kAfter, "autolabel_kept_fraction", true);
  for (const char* kind :
       {"autolabel_missed_issue_rate", "autolabel_false_issue_rate", "autolabel_wrong_severity_rate"}) {
    f[kind] = Find(evaluations, P::PHASE_AUTO_LABEL, 0, kAfter, kind, true);
  }
  f["wall_seconds"] = wall_seconds;
  for (const auto& [key, value] : extra) f[key] = value;

  s.claims.push_back(Rises("verifier_agreement_rises", "Phase 1 raises the verifier's agreement with the checker",
                           f["verifier_agreement_before"], f["verifier_agreement_after"]));
  SummaryClaim hallucination{"hallucination_does_not_rise",
                             "Phase 3 (meta-verifier in the reward) does not raise the hallucinated-issue rate",
                             f["hallucinated_issue_rate_phase1"], f["hallucinated_issue_rate_phase3"], false};
  hallucination.held = hallucination.before.has_value() && hallucination.after.has_value() &&
                       *hallucination.after <= *hallucination.before;
  s.claims.push_back(hallucination);
  s.claims.push_back(Rises("generator_score_rises", "Phase 4 raises the generator's proof score",
                           f["generator_score_before"], f["generator_score_after"]));
  s.claims.push_back(Rises("self_score_agreement_rises",
                           "Phase 4 raises the agreement of the generator's self-evaluation with the checker",
                           f["self_score_agreement_before"], f["self_score_agreement_after"]));
  SummaryClaim labels{"autolabel_agreement_at_least_0_9", "Phase 5's kept labels agree with the checker (>= 0.9)",
                      std::nullopt, f["autolabel_agreement"], false};
  labels.held = labels.after.has_value() && *labels.after >= 0.9;
  s.claims.push_back(labels);
  return s;
}

std::string RunSummaryJson(const RunSummary& summary, const std::string& run_name, const std::string& state) {
  nlohmann::ordered_json j;
  j["run"] = run_name;
  j["state"] = state;
  for (const auto& [key, value] : summary.fields) {
    if (value.has_value()) {
      j[key] = *value;
    } else {
      j[key] = nullptr;
    }
  }
  nlohmann::ordered_json claims = nlohmann::ordered_json::array();
  for (const SummaryClaim& c : summary.claims) {
    nlohmann::ordered_json o;
    o["name"] = c.name;
    o["description"] = c.description;
    o["before"] = c.before.has_value() ? nlohmann::ordered_json(*c.before) : nlohmann::ordered_json(nullptr);
    o["after"] = c.after.has_value() ? nlohmann::ordered_json(*c.after) : nlohmann::ordered_json(nullptr);
    o["held"] = c.held;
    claims.push_back(std::move(o));
  }
  j["claims"] = std::move(claims);
  return j.dump(2) + "\n";
}

}  // namespace dsm
