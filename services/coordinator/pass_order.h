// PassOrder: the order in which one pass of phases 1-3 goes through a labelled dataset (proofs or
// analyses), as a trainer's data loader shuffles each epoch. Shuffled, each record's place is a
// key drawn from the pass's seed and the record's seq (its import number), so the order is the
// same after a restart and the dataset's cursor is the key of the last record done; unshuffled,
// the key is the seq: import order. A pass that trained on its records in import order ended on
// whatever was imported last (on the tiny default, the model's own proofs: the last third of
// phase 1's steps saw nothing else; BENCHMARKS.md).
#ifndef DSM_SERVICES_COORDINATOR_PASS_ORDER_H_
#define DSM_SERVICES_COORDINATOR_PASS_ORDER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dsm/v1/coordinator.pb.h"

namespace dsm {

class PassOrder {
 public:
  // Import order.
  PassOrder() = default;
  // Shuffled by `seed`.
  explicit PassOrder(uint64_t seed) : seed_(seed) {}

  // The seed of one pass: a pure function of the run's seed, the phase, the iteration, the pass
  // (epoch, from 1) and the dataset ("proofs", "analyses").
  static uint64_t PassSeed(uint64_t run_seed, v1::Phase phase, uint32_t iteration, uint32_t epoch,
                           absl::string_view dataset);

  // One pass's order: shuffled by PassSeed(*run_seed, ...), or import order without a seed.
  static PassOrder Of(std::optional<uint64_t> run_seed, v1::Phase phase, uint32_t iteration, uint32_t epoch,
                      absl::string_view dataset);

  bool shuffled() const { return seed_.has_value(); }

  // The record's place in the pass: >= 1 (a cursor of 0 is "nothing done yet").
  int64_t KeyOf(int64_t seq) const;

  // Of `seqs`, those whose key is above `after_key`, in key order (the rest of the pass).
  std::vector<int64_t> After(std::vector<int64_t> seqs, int64_t after_key) const;

 private:
  std::optional<uint64_t> seed_;
};

// The rest of one pass, as its phase works through it: the dataset's seqs are listed once (the
// records stored when the pass starts, or resumes after a restart), then taken in the pass's
// order from the dataset's cursor on.
class PassQueue {
 public:
  explicit PassQueue(PassOrder order) : order_(order) {}

  const PassOrder& order() const { return order_; }

  // The next at most `limit` seqs after `cursor_key` (the key of the last record done). `list`
  // gives every seq of the dataset; it is called on the first call only.
  absl::StatusOr<std::vector<int64_t>> Next(int64_t cursor_key, size_t limit,
                                            const std::function<absl::StatusOr<std::vector<int64_t>>()>& list);

 private:
  PassOrder order_;
  std::optional<std::vector<int64_t>> rest_;  // in pass order
  size_t next_ = 0;                           // rest_[..next_) are done
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_PASS_ORDER_H_
