// common/concurrent_calls: every index once, never more than the limit at a time, and calls that
// block really overlap (what makes the pipeline's scoring calls batch on the scorers).
#include "common/concurrent_calls.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace dsm {
namespace {

TEST(RunConcurrently, CallsEveryIndexOnceAndNeverMoreThanTheLimitAtATime) {
  for (std::size_t limit : {1u, 3u, 16u}) {
    std::vector<std::atomic<int>> calls(10);
    std::atomic<int> running{0};
    std::atomic<int> most{0};
    RunConcurrently(calls.size(), limit, [&](std::size_t i) {
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ++calls[i];
      --running;
    });
    for (const auto& c : calls) EXPECT_EQ(c.load(), 1);
    EXPECT_LE(most.load(), static_cast<int>(limit));
  }
}

// Four calls that each wait until all four have started: finishes only if they overlap.
TEST(RunConcurrently, BlockingCallsOverlap) {
  std::mutex mu;
  std::condition_variable cv;
  int started = 0;
  bool all_met = true;
  RunConcurrently(4, 4, [&](std::size_t) {
    std::unique_lock<std::mutex> lock(mu);
    ++started;
    cv.notify_all();
    all_met &= cv.wait_for(lock, std::chrono::seconds(10), [&] { return started == 4; });
  });
  EXPECT_TRUE(all_met);
}

TEST(RunConcurrently, NothingToDoAndALimitOfZero) {
  int calls = 0;
  RunConcurrently(0, 4, [&](std::size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  RunConcurrently(3, 0, [&](std::size_t) { ++calls; });  // taken as 1: one after another
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace dsm
