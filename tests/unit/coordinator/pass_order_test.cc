#include "services/coordinator/pass_order.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace dsm {
namespace {

std::vector<int64_t> Seqs(int n) {
  std::vector<int64_t> seqs(static_cast<size_t>(n));
  std::iota(seqs.begin(), seqs.end(), 1);
  return seqs;
}

uint64_t SeedOf(v1::Phase phase, uint32_t iteration, uint32_t epoch, const char* dataset) {
  return PassOrder::PassSeed(1234, phase, iteration, epoch, dataset);
}

TEST(PassOrder, UnshuffledIsImportOrder) {
  const PassOrder order;
  EXPECT_FALSE(order.shuffled());
  EXPECT_EQ(order.KeyOf(17), 17);
  EXPECT_EQ(order.After({3, 1, 2, 5}, 0), (std::vector<int64_t>{1, 2, 3, 5}));
  EXPECT_EQ(order.After({3, 1, 2, 5}, 2), (std::vector<int64_t>{3, 5}));
}

TEST(PassOrder, ShuffledIsARepeatablePermutationOfTheRecords) {
  const PassOrder order(SeedOf(v1::PHASE_VERIFIER_RL, 1, 1, "proofs"));
  const std::vector<int64_t> pass = order.After(Seqs(1000), 0);
  std::vector<int64_t> sorted = pass;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, Seqs(1000));   // every record once
  EXPECT_NE(pass, Seqs(1000));     // not import order
  EXPECT_EQ(PassOrder(SeedOf(v1::PHASE_VERIFIER_RL, 1, 1, "proofs")).After(Seqs(1000), 0), pass);  // a restart
  for (int64_t seq = 1; seq <= 1000; ++seq) EXPECT_GE(order.KeyOf(seq), 1);
  // The last tenth of the pass draws from the whole dataset, not from the last records imported.
  const auto late = std::count_if(pass.end() - 100, pass.end(), [](int64_t seq) { return seq <= 500; });
  EXPECT_GT(late, 30);
  EXPECT_LT(late, 70);
}

TEST(PassOrder, EveryPassHasItsOwnOrder) {
  const std::vector<int64_t> first = PassOrder(SeedOf(v1::PHASE_VERIFIER_RL, 1, 1, "proofs")).After(Seqs(200), 0);
  for (const uint64_t other : {SeedOf(v1::PHASE_VERIFIER_RL, 1, 2, "proofs"),
                               SeedOf(v1::PHASE_VERIFIER_RL, 2, 1, "proofs"),
                               SeedOf(v1::PHASE_ENHANCED_VERIFIER_RL, 1, 1, "proofs"),
                               SeedOf(v1::PHASE_VERIFIER_RL, 1, 1, "analyses"),
                               PassOrder::PassSeed(1235, v1::PHASE_VERIFIER_RL, 1, 1, "proofs")}) {
    EXPECT_NE(PassOrder(other).After(Seqs(200), 0), first) << other;
  }
}

TEST(PassOrder, AfterTheCursorsKeyIsTheRestOfThePass) {
  const PassOrder order(SeedOf(v1::PHASE_META_VERIFIER_RL, 1, 1, "analyses"));
  const std::vector<int64_t> pass = order.After(Seqs(50), 0);
  const std::vector<int64_t> rest = order.After(Seqs(50), order.KeyOf(pass[19]));
  EXPECT_EQ(rest, std::vector<int64_t>(pass.begin() + 20, pass.end()));
}

TEST(PassQueue, ListsTheDatasetOnceAndTakesItInPassOrderFromTheCursor) {
  PassQueue queue{PassOrder(SeedOf(v1::PHASE_VERIFIER_RL, 1, 1, "proofs"))};
  const std::vector<int64_t> pass = queue.order().After(Seqs(10), 0);
  int listed = 0;
  auto list = [&]() -> absl::StatusOr<std::vector<int64_t>> {
    ++listed;
    return Seqs(10);
  };
  auto first = queue.Next(0, 4, list);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, std::vector<int64_t>(pass.begin(), pass.begin() + 4));
  // The cursor moved past two of them: the next batch starts at the third.
  auto second = queue.Next(queue.order().KeyOf(pass[1]), 4, list);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, std::vector<int64_t>(pass.begin() + 2, pass.begin() + 6));
  auto last = queue.Next(queue.order().KeyOf(pass[7]), 4, list);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, std::vector<int64_t>(pass.begin() + 8, pass.end()));
  EXPECT_TRUE(queue.Next(queue.order().KeyOf(pass[9]), 4, list)->empty());
  EXPECT_EQ(listed, 1);
}

TEST(PassQueue, AListingErrorIsReturned) {
  PassQueue queue{PassOrder()};
  auto next = queue.Next(0, 4, [] { return absl::StatusOr<std::vector<int64_t>>(absl::UnavailableError("db")); });
  EXPECT_EQ(next.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dsm
