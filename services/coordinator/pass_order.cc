#include "services/coordinator/pass_order.h"

#include <algorithm>
#include <utility>

#include "common/seed_mix.h"

namespace dsm {

uint64_t PassOrder::PassSeed(uint64_t run_seed, v1::Phase phase, uint32_t iteration, uint32_t epoch,
                             absl::string_view dataset) {
  uint64_t s = CombineSeeds(run_seed, static_cast<uint64_t>(phase));
  s = CombineSeeds(s, iteration);
  s = CombineSeeds(s, epoch);
  return NamedSeed(s, dataset);
}

PassOrder PassOrder::Of(std::optional<uint64_t> run_seed, v1::Phase phase, uint32_t iteration, uint32_t epoch,
                        absl::string_view dataset) {
  if (!run_seed.has_value()) return PassOrder();
  return PassOrder(PassSeed(*run_seed, phase, iteration, epoch, dataset));
}

int64_t PassOrder::KeyOf(int64_t seq) const {
  if (!seed_.has_value()) return seq;
  // 63 bits, so it is a positive int64 like a seq; two records of one pass share a key with
  // probability about n^2 / 2^64 (the second would then wait for the next pass).
  return std::max<int64_t>(1, static_cast<int64_t>(CombineSeeds(*seed_, static_cast<uint64_t>(seq)) >> 1));
}

std::vector<int64_t> PassOrder::After(std::vector<int64_t> seqs, int64_t after_key) const {
  std::vector<std::pair<int64_t, int64_t>> keyed;  // (key, seq)
  keyed.reserve(seqs.size());
  for (const int64_t seq : seqs) {
    if (const int64_t key = KeyOf(seq); key > after_key) keyed.emplace_back(key, seq);
  }
  std::sort(keyed.begin(), keyed.end());
  seqs.clear();
  for (const auto& [key, seq] : keyed) seqs.push_back(seq);
  return seqs;
}

absl::StatusOr<std::vector<int64_t>> PassQueue::Next(
    int64_t cursor_key, size_t limit, const std::function<absl::StatusOr<std::vector<int64_t>>()>& list) {
  if (!rest_.has_value()) {
    absl::StatusOr<std::vector<int64_t>> seqs = list();
    if (!seqs.ok()) return seqs.status();
    rest_ = order_.After(*std::move(seqs), cursor_key);
  }
  while (next_ < rest_->size() && order_.KeyOf((*rest_)[next_]) <= cursor_key) ++next_;
  const size_t end = std::min(rest_->size(), next_ + limit);
  return std::vector<int64_t>(rest_->begin() + static_cast<std::ptrdiff_t>(next_),
                              rest_->begin() + static_cast<std::ptrdiff_t>(end));
}

}  // namespace dsm
