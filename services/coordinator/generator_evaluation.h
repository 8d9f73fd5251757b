// EvaluateGenerator: how well the current generator proves held-out
// problems and grades its own proofs, measured against an exact Grader
// (never used as a reward). For evaluation problems (split EVAL), up to
// max_problems, it enqueues one GenerateWork lease each (the generator
// template, one completion, the caller's sampling parameters, e.g. greedy,
// at least min_adapter_version; queue phase EVALUATE, so no training phase
// ever consumes the results), waits until every item is finished, and
// reports
//   generator_score        mean true score of the proofs (a completion
//                          without a proof scores 0)
//   self_score_agreement   share of problems whose self-evaluation score
//                          equals the proof's true score (format failures
//                          count as misses)
//   format_ok_rate         share of completions in the generator format
//   failed_items           work items that failed for good (not scored)
// as a v1::Evaluation of `phase`, `iteration` and `point`, stored in the run.
// Restart-safe: the items' keys name the evaluation, so a repeat after a
// coordinator restart finds the same items instead of enqueueing new ones.
#ifndef DSM_SERVICES_COORDINATOR_GENERATOR_EVALUATION_H_
#define DSM_SERVICES_COORDINATOR_GENERATOR_EVALUATION_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dsm/v1/coordinator.pb.h"
#include "services/coordinator/grader.h"
#include "services/coordinator/lease_dispatcher.h"
#include "services/coordinator/run_store.h"
#include "services/scoring/prompt_template.h"

namespace dsm {

struct GeneratorEvaluationOptions {
  v1::Phase phase = v1::PHASE_GENERATOR_RL;
  uint32_t iteration = 1;
  v1::EvaluationPoint point = v1::EVALUATION_POINT_AFTER;
  uint32_t max_problems = 64;
  v1::SamplingParams params;  // e.g. temperature 0 for greedy
  uint64_t min_adapter_version = 0;
  absl::Duration poll = absl::Milliseconds(100);
};

// `markers`: the verifier markers the self-evaluation uses. FAILED_PRECONDITION
// when the run has no evaluation problems; CANCELLED when `stop` is set.
absl::StatusOr<v1::Evaluation> EvaluateGenerator(RunStore* store, LeaseDispatcher* dispatcher,
                                                 const PromptTemplate& generator, const OutputMarkers& markers,
                                                 const Grader& grader, const GeneratorEvaluationOptions& options,
                                                 const std::atomic<bool>* stop);

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_GENERATOR_EVALUATION_H_
