#include "learner/micro_batcher.h"

#include <algorithm>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MicroBatchOptions Opt(int64_t budget, int64_t max_rows = 0) {
  MicroBatchOptions o;
  o.token_budget = budget;
  o.max_rows = max_rows;
  return o;
}

std::vector<std::vector<size_t>> Indices(const std::vector<MicroBatch>& batches) {
  std::vector<std::vector<size_t>> out;
  for (const MicroBatch& b : batches) out.push_back(b.indices);
  return out;
}

TEST(PackMicroBatches, FillsTheBudgetLongestFirst) {
  // Sorted: 5(10) 1(8) 3(8) 0(4) 2(3) 4(2).
  auto batches = PackMicroBatches({4, 8, 3, 8, 2, 10}, Opt(24));
  ASSERT_TRUE(batches.ok()) << batches.status();
  EXPECT_THAT(Indices(*batches), ElementsAre(ElementsAre(5, 1), ElementsAre(3, 0, 2), ElementsAre(4)));
  EXPECT_EQ((*batches)[0].longest, 10);
  EXPECT_EQ((*batches)[0].padded_tokens(), 20);
  EXPECT_EQ((*batches)[1].padded_tokens(), 24);
  for (const MicroBatch& b : *batches) EXPECT_LE(b.padded_tokens(), 24);
}

TEST(PackMicroBatches, OversizedSampleGetsAMicroBatchOfItsOwn) {
  auto batches = PackMicroBatches({3, 50, 3}, Opt(8));
  ASSERT_TRUE(batches.ok());
  EXPECT_THAT(Indices(*batches), ElementsAre(ElementsAre(1), ElementsAre(0, 2)));
  EXPECT_EQ((*batches)[0].padded_tokens(), 50);
}

TEST(PackMicroBatches, MaxRowsLimitsRows) {
  auto batches = PackMicroBatches({1, 1, 1, 1, 1}, Opt(100, 2));
  ASSERT_TRUE(batches.ok());
  EXPECT_THAT(Indices(*batches), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3), ElementsAre(4)));
}

TEST(PackMicroBatches, EveryIndexOnceAndDeterministic) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> len(1, 300);
  std::vector<int64_t> lengths(200);
  for (auto& l : lengths) l = len(rng);
  auto a = PackMicroBatches(lengths, Opt(1024));
  auto b = PackMicroBatches(lengths, Opt(1024));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Indices(*a), Indices(*b));
  std::vector<size_t> seen;
  for (const MicroBatch& m : *a) {
    EXPECT_LE(m.padded_tokens(), 1024);
    for (size_t i : m.indices) {
      seen.push_back(i);
      EXPECT_LE(lengths[i], m.longest);
    }
  }
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), lengths.size());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
}

TEST(PackMicroBatches, EmptyInputGivesNoMicroBatches) {
  auto batches = PackMicroBatches({}, Opt(16));
  ASSERT_TRUE(batches.ok());
  EXPECT_TRUE(batches->empty());
}

TEST(PackMicroBatches, RejectsBadOptionsAndLengthsNamingThem) {
  auto zero_budget = PackMicroBatches({1}, Opt(0));
  EXPECT_EQ(zero_budget.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero_budget.status().message()), HasSubstr("micro_batch_tokens"));
  auto rows = PackMicroBatches({1}, Opt(4, -1));
  EXPECT_THAT(std::string(rows.status().message()), HasSubstr("max_rows"));
  auto empty_sample = PackMicroBatches({3, 0}, Opt(4));
  EXPECT_THAT(std::string(empty_sample.status().message()), HasSubstr("sample 1"));
}

}  // namespace
}  // namespace dsm
