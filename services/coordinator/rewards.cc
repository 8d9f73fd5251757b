#include "services/coordinator/rewards.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

bool FormatOk(const v1::Score& s) { return s.format() == v1::FORMAT_STATUS_OK && s.has_value(); }

absl::Status CheckLabel(const char* field, double label) {
  if (!IsRubricScore(label)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", label, " is not one of 0, 0.5, 1"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsRubricScore(double score) { return score == 0.0 || score == 0.5 || score == 1.0; }

double ScoreAgreement(double predicted, double label) { return 1.0 - std::fabs(predicted - label); }

absl::StatusOr<double> VerifierReward(const v1::Score& analysis, double expert_score) {
  if (absl::Status s = CheckLabel("expert_score", expert_score); !s.ok()) return s;
  if (!FormatOk(analysis)) return 0.0;
  return ScoreAgreement(analysis.value(), expert_score);
}

absl::StatusOr<double> MetaVerifierReward(const v1::Score& meta_analysis, double expert_meta_score) {
  if (absl::Status s = CheckLabel("expert_meta_score", expert_meta_score); !s.ok()) return s;
  if (!FormatOk(meta_analysis)) return 0.0;
  return ScoreAgreement(meta_analysis.value(), expert_meta_score);
}

absl::StatusOr<double> EnhancedVerifierReward(const v1::Score& analysis, double expert_score,
                                              std::optional<double> meta_score) {
  absl::StatusOr<double> base = VerifierReward(analysis, expert_score);
  if (!base.ok()) return base;
  if (!FormatOk(analysis)) return 0.0;  // R_format = 0, whatever the meta-verifier says
  if (!meta_score.has_value()) {
    return absl::FailedPreconditionError("meta_score: the meta-verifier gave no valid score for this analysis");
  }
  if (*meta_score < 0.0 || *meta_score > 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("meta_score: ", *meta_score, " is not in [0, 1]"));
  }
  return *base * *meta_score;
}

absl::StatusOr<GeneratorReward> ComputeGeneratorReward(bool format_ok, std::optional<double> self_score,
                                                       std::optional<double> verifier_score,
                                                       std::optional<double> meta_score,
                                                       const GeneratorRewardOptions& options) {
  GeneratorReward r;
  if (!format_ok) return r;  // R_format = 0
  if (!self_score.has_value()) {
    return absl::InvalidArgumentError("self_score: required when the format is OK");
  }
  if (!verifier_score.has_value()) {
    return absl::FailedPreconditionError("verifier_score: the verifiers gave no valid score for this proof");
  }
  if (!meta_score.has_value()) {
    return absl::FailedPreconditionError("meta_score: the meta-verifier gave no valid score for the self-evaluation");
  }
  for (auto [name, v] : {std::pair<const char*, double>{"verifier_score", *verifier_score},
                         {"meta_score", *meta_score}, {"self_score", *self_score}}) {
    if (v < 0.0 || v > 1.0) return absl::InvalidArgumentError(absl::StrCat(name, ": ", v, " is not in [0, 1]"));
  }
  r.r_format = 1;
  r.r_y = *verifier_score;
  r.r_z = ScoreAgreement(*self_score, *verifier_score) * *meta_score;
  r.total = options.alpha * r.r_y + options.beta * r.r_z;
  return r;
}

AutoLabelResult AutoLabel(const std::vector<LabelEvidence>& evidence, const AutoLabelOptions& options) {
  AutoLabelResult out;
  std::optional<double> lowest;
  for (const LabelEvidence& e : evidence) {
    if (!FormatOk(e.analysis)) continue;
    ++out.valid_analyses;
    lowest = lowest.has_value() ? std::min(*lowest, e.analysis.value()) : e.analysis.value();
  }
  if (out.valid_analyses == 0) {
    out.reason = "no analysis with a valid format";
    return out;
  }
  // Whether the majority of e's meta-verifications reach `threshold`.
  auto majority = [](const LabelEvidence& e, double threshold) {
    int yes = 0;
    for (double ms : e.meta_scores) yes += ms >= threshold;
    return !e.meta_scores.empty() && 2 * yes > static_cast<int>(e.meta_scores.size());
  };
  bool any_real_issue = false;  // any analysis with an issue the meta-verifier finds real
  std::optional<double> confirmed_above;  // a confirmed analysis's score above the lowest
  for (const LabelEvidence& e : evidence) {
    if (!FormatOk(e.analysis) || e.analysis.value() >= 1.0) continue;
    any_real_issue |= majority(e, options.real_issue_threshold);
    if (!majority(e, options.confirm_threshold)) continue;
    if (e.analysis.value() == *lowest) {
      ++out.confirmed_lowest;
    } else {
      confirmed_above = e.analysis.value();
    }
  }
  if (*lowest < 1.0 && out.confirmed_lowest >= options.k) {
    if (options.drop_conflicts && confirmed_above.has_value()) {
      out.reason = absl::StrCat("confirmed analyses disagree: ", out.confirmed_lowest, " give ", *lowest,
                                ", another gives ", *confirmed_above);
    } else {
      out.label = *lowest;
      out.reason = absl::StrCat(out.confirmed_lowest, " confirmed analyses give ", *lowest);
    }
  } else if (!any_real_issue && options.unanimous_correct && *lowest < 1.0) {
    out.reason = absl::StrCat("an analysis gives ", *lowest, " and 1 needs every analysis to give 1");
  } else if (!any_real_issue) {
    out.label = 1.0;
    out.reason = "no analysis found a confirmed issue";
  } else {
    out.reason = absl::StrCat("only ", out.confirmed_lowest, " of the lowest-score analyses confirmed (k = ",
                              options.k, ")");
  }
  return out;
}

}  // namespace dsm
