// Phase 4's bounded staleness: how many problems the pipeline enqueues as groups come back.
#include "services/coordinator/generation_window.h"

#include <gtest/gtest.h>

namespace dsm {
namespace {

TEST(GenerationWindow, KeepsAtMostTheWindowInFlight) {
  GenerationWindow w(/*planned=*/10, /*window=*/4);
  EXPECT_EQ(w.ToEnqueue(), 4u);
  EXPECT_EQ(w.Enqueued(4, 4), 0u);
  EXPECT_EQ(w.ToEnqueue(), 0u);  // full
  w.Finished(1);
  EXPECT_EQ(w.ToEnqueue(), 1u);
  EXPECT_EQ(w.Enqueued(1, 1), 0u);
  w.Finished(4);
  EXPECT_EQ(w.in_flight(), 0u);
  EXPECT_EQ(w.ToEnqueue(), 4u);
  EXPECT_EQ(w.Enqueued(4, 4), 0u);
  w.Finished(2);
  EXPECT_EQ(w.ToEnqueue(), 1u);  // the last of the 10, though the window has room for 2
  EXPECT_EQ(w.Enqueued(1, 1), 0u);
  EXPECT_EQ(w.ToEnqueue(), 0u);
  EXPECT_FALSE(w.Done());
  w.Finished(3);
  EXPECT_TRUE(w.Done());
}

TEST(GenerationWindow, ZeroWindowEnqueuesEverythingAtOnce) {
  GenerationWindow w(64, 0);
  EXPECT_EQ(w.ToEnqueue(), 64u);
  EXPECT_EQ(w.Enqueued(64, 64), 0u);
  EXPECT_EQ(w.ToEnqueue(), 0u);
  w.Finished(64);
  EXPECT_TRUE(w.Done());
}

TEST(GenerationWindow, RunningOutOfProblemsEndsThePassAndSaysHowManyNeverCame) {
  GenerationWindow w(10, 4);
  EXPECT_EQ(w.Enqueued(4, 4), 0u);
  w.Finished(4);
  EXPECT_EQ(w.Enqueued(4, 1), 5u);  // 5 of the 10 are left unenqueued for good
  EXPECT_EQ(w.ToEnqueue(), 0u);
  EXPECT_FALSE(w.Done());
  w.Finished(1);
  EXPECT_TRUE(w.Done());
  GenerationWindow none(8, 4);
  EXPECT_EQ(none.Enqueued(4, 0), 8u);
  EXPECT_TRUE(none.Done());
}

// After a restart, results of problems the previous process enqueued come back too.
TEST(GenerationWindow, ResultsItDidNotEnqueueNeverTakeItBelowZero) {
  GenerationWindow w(8, 4);
  w.Finished(3);
  EXPECT_EQ(w.in_flight(), 0u);
  EXPECT_EQ(w.ToEnqueue(), 4u);
}

}  // namespace
}  // namespace dsm
