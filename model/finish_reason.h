// FinishReason: why a sampled sequence stopped. Header only and free of LibTorch, so code that
// only reports it (services/scoring's wire mapping) needs no model runtime.
#ifndef DSM_MODEL_FINISH_REASON_H_
#define DSM_MODEL_FINISH_REASON_H_

namespace dsm {

enum class FinishReason { kStopToken, kStopString, kLength, kAborted };

}  // namespace dsm

#endif  // DSM_MODEL_FINISH_REASON_H_
