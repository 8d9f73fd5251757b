// Packs the samples of one optimizer step into micro-batches by a token
// budget, for gradient accumulation: each micro-batch is one padded
// [rows, longest] forward/backward, so its cost is rows × longest tokens.
//
// Deterministic: the same lengths and budget always give the same packing
// (this is what makes resumed training bit-identical).
#ifndef DSM_LEARNER_MICRO_BATCHER_H_
#define DSM_LEARNER_MICRO_BATCHER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace dsm {

struct MicroBatch {
  std::vector<size_t> indices;  // into the step's samples, longest first
  int64_t longest = 0;          // the longest sequence (prompt + completion tokens)
  int64_t padded_tokens() const { return static_cast<int64_t>(indices.size()) * longest; }
};

struct MicroBatchOptions {
  int64_t token_budget = 4096;  // rows × longest per micro-batch, > 0
  int64_t max_rows = 0;         // rows per micro-batch; 0 = no limit
};

// First-fit decreasing on the padded size: samples are sorted by length
// (longest first, ties by index), and each micro-batch takes the next samples
// while rows × longest ≤ token_budget (and rows ≤ max_rows). A sample longer
// than the budget gets a micro-batch of its own (never dropped: the budget is
// about throughput, the caller caps sequence lengths). Every index appears
// exactly once. Empty input: no micro-batches.
// Errors: InvalidArgument for a budget ≤ 0, max_rows < 0, or a length ≤ 0.
absl::StatusOr<std::vector<MicroBatch>> PackMicroBatches(const std::vector<int64_t>& lengths,
                                                         const MicroBatchOptions& options);

}  // namespace dsm

#endif  // DSM_LEARNER_MICRO_BATCHER_H_
