// Aggregation of the n scores of one item (proto/dsm/v1/common.proto
// Aggregation): MEAN, MIN, or MAJORITY (ties go to the lower score). Scores
// whose format is not FORMAT_STATUS_OK are left out; with none left the
// aggregate is absent, never 0.
//
// Thread-safe (pure functions).
#ifndef DSM_SERVICES_SCORING_AGGREGATION_H_
#define DSM_SERVICES_SCORING_AGGREGATION_H_

#include <optional>

#include "absl/types/span.h"
#include "dsm/v1/common.pb.h"

namespace dsm {

// The aggregation actually applied: UNSPECIFIED means MEAN.
v1::Aggregation EffectiveAggregation(v1::Aggregation aggregation);

// Precondition: `aggregation` is a known enum value (requests are validated
// first); an unknown value is a bug and aborts.
std::optional<double> Aggregate(absl::Span<const v1::Score> scores, v1::Aggregation aggregation);

}  // namespace dsm

#endif  // DSM_SERVICES_SCORING_AGGREGATION_H_
