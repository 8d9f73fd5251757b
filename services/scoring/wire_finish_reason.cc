#include "services/scoring/wire_finish_reason.h"

namespace dsm {

v1::FinishReason WireFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStopToken: return v1::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kStopString: return v1::FINISH_REASON_STOP_STRING;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAborted: return v1::FINISH_REASON_ABORTED;
  }
  return v1::FINISH_REASON_ERROR;
}

}  // namespace dsm
