#include "learner/micro_batcher.h"

#include <algorithm>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dsm {

absl::StatusOr<std::vector<MicroBatch>> PackMicroBatches(const std::vector<int64_t>& lengths,
                                                         const MicroBatchOptions& options) {
  if (options.token_budget <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_tokens: ", options.token_budget, " must be > 0"));
  }
  if (options.max_rows < 0) {
    return absl::InvalidArgumentError(absl::StrCat("micro_batch_max_rows: ", options.max_rows, " must be >= 0"));
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("sample ", i, ": length ", lengths[i], " must be > 0"));
    }
  }
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });

  std::vector<MicroBatch> batches;
  for (size_t i : order) {
    if (!batches.empty()) {
      MicroBatch& last = batches.back();
      const int64_t rows = static_cast<int64_t>(last.indices.size()) + 1;
      // Sorted longest first: adding a sample never raises `longest`.
      const bool fits = rows * last.longest <= options.token_budget &&
                        (options.max_rows == 0 || rows <= options.max_rows);
      if (fits) {
        last.indices.push_back(i);
        continue;
      }
    }
    MicroBatch batch;
    batch.indices.push_back(i);
    batch.longest = lengths[i];
    batches.push_back(std::move(batch));
  }
  return batches;
}

}  // namespace dsm
