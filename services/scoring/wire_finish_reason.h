// The sampler's FinishReason as the services report it on the wire (v1::FinishReason): one
// mapping for the rollout workers' responses and for in-process parsing of sampled text.
#ifndef DSM_SERVICES_SCORING_WIRE_FINISH_REASON_H_
#define DSM_SERVICES_SCORING_WIRE_FINISH_REASON_H_

#include "dsm/v1/common.pb.h"
#include "model/finish_reason.h"

namespace dsm {

v1::FinishReason WireFinishReason(FinishReason reason);

}  // namespace dsm

#endif  // DSM_SERVICES_SCORING_WIRE_FINISH_REASON_H_
