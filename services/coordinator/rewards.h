// The rewards of DeepSeekMath-V2 (../shared/METHOD.md), exactly:
//
//   verifier         R = R_format · R_score,  R_score = 1 − |s' − s|
//   meta-verifier    R = R_format · (1 − |ms' − ms|)
//   enhanced (ph. 3) R_V = R_format · R_score · R_meta,  R_meta = the
//                    meta-verifier's score of the analysis
//   generator        R = R_format(Y, Z) · (α·R_Y + β·R_Z),  R_Y = s,
//                    R_Z = (1 − |s' − s|) · ms,  α = 0.76, β = 0.24
//
// R_format is 1 only when the output's format is FORMAT_STATUS_OK (both
// markers and a valid boxed score; for the generator also the "## Solution"
// and "## Self Evaluation" sections). A format failure is a reward of 0 for
// the sample that failed — the model wrote the wrong thing — but a missing
// *judgement* (the verifier or meta-verifier that grades a sample produced
// no valid score) is not the sample's fault: those are errors
// (FAILED_PRECONDITION naming what is missing), never a silent 0.
//
// Also the auto-labelling rule of phase 5 (AutoLabel). Pure functions.
#ifndef DSM_SERVICES_COORDINATOR_REWARDS_H_
#define DSM_SERVICES_COORDINATOR_REWARDS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dsm/v1/common.pb.h"

namespace dsm {

// 1 − |predicted − label| for scores in {0, 0.5, 1}.
double ScoreAgreement(double predicted, double label);

// True when `score` is one of 0, 0.5, 1.
bool IsRubricScore(double score);

// R_format · R_score of one verifier analysis against the expert label.
// INVALID_ARGUMENT if `expert_score` is not a rubric score.
absl::StatusOr<double> VerifierReward(const v1::Score& analysis, double expert_score);

// R_format · (1 − |ms' − ms|) of one meta-analysis against the expert meta-label.
absl::StatusOr<double> MetaVerifierReward(const v1::Score& meta_analysis, double expert_meta_score);

// R_format · R_score · R_meta. `meta_score` is the meta-verifier's
// (aggregate) score of the analysis; absent = the meta-verifier gave no
// valid score: FAILED_PRECONDITION unless the analysis already failed its
// format (then the reward is 0 whatever the meta-verifier says).
absl::StatusOr<double> EnhancedVerifierReward(const v1::Score& analysis, double expert_score,
                                              std::optional<double> meta_score);

struct GeneratorRewardOptions {
  double alpha = 0.76;  // weight of the proof's score
  double beta = 0.24;   // weight of the self-evaluation's honesty
};

struct GeneratorReward {
  double r_format = 0;
  double r_y = 0;  // s: the verifier's score of the proof
  double r_z = 0;  // (1 − |s' − s|) · ms
  double total = 0;
};

// `format_ok`: both sections present and the self-analysis parsed
// (FORMAT_STATUS_OK, so `self_score` is set). `verifier_score` s: the
// verifiers' aggregate of the proof (required unless the format failed);
// `meta_score` ms: the meta-verification of the self-analysis (required
// unless the format failed).
absl::StatusOr<GeneratorReward> ComputeGeneratorReward(bool format_ok, std::optional<double> self_score,
                                                       std::optional<double> verifier_score,
                                                       std::optional<double> meta_score,
                                                       const GeneratorRewardOptions& options = {});

// Phase 5: one verifier analysis of a new proof, and the meta-scores of its
// meta-verifications (only analyses with score < 1 are meta-verified).
struct LabelEvidence {
  v1::Score analysis;
  std::vector<double> meta_scores;  // valid meta-scores (format OK) of its m meta-verifications
};

struct AutoLabelOptions {
  int k = 2;  // confirmed lowest-score analyses needed to label with that score
  // A meta-verification confirms an analysis (its issues are real and justify
  // its score, so the score may become the label) when its meta-score is at
  // least this: 1, the meta-verifier's "the analysis is right".
  double confirm_threshold = 1.0;
  // A meta-verification finds an analysis's issue real (so the proof is not
  // labelled 1) when its meta-score is at least this: 0.5, "a named issue is
  // real but the score is wrong" (or a real issue named next to a made-up one).
  double real_issue_threshold = 0.5;
  // Drop a proof whose confirmed analyses give different scores (e.g. one confirmed analysis
  // calls a step's fact "not given" (0), another "cited backwards" (0.5)): the meta-verifier
  // endorsed two readings of the proof, so neither is a confident label. Off: METHOD.md's rule
  // (the lowest score wins).
  bool drop_conflicts = false;
  // Label a proof 1 only when every valid analysis scores it 1: a proof that some analysis
  // reports an issue in, which the meta-verifier neither confirms nor finds real, is dropped
  // instead of passing as correct (on the tiny model most wrong labels of 1 were such proofs,
  // the meta-verifier calling a real issue made up; BENCHMARKS.md). Off: METHOD.md's rule.
  bool unanimous_correct = false;
};

struct AutoLabelResult {
  std::optional<double> label;  // absent: dropped (no confident label)
  std::string reason;           // why, for the report
  int valid_analyses = 0;       // analyses with a valid format
  int confirmed_lowest = 0;     // lowest-score analyses the majority of meta-verifications confirmed
};

// METHOD.md: take the analyses with the lowest score; if at least k of them
// are confirmed (the majority of their meta-verifications reach
// confirm_threshold), label = that score; if no analysis reports an issue
// the majority of its meta-verifications find real (real_issue_threshold),
// label = 1; otherwise drop. So an analysis whose issue is real but whose
// score the meta-verifier calls wrong neither sets the label nor lets the
// proof pass as correct. Analyses with a format failure are left out; with no
// valid analysis at all the proof is dropped. Two stricter options: with
// unanimous_correct, a label of 1 needs every valid analysis to say 1; with
// drop_conflicts, a proof whose confirmed analyses disagree on the score is
// dropped.
AutoLabelResult AutoLabel(const std::vector<LabelEvidence>& evidence, const AutoLabelOptions& options = {});

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_REWARDS_H_
