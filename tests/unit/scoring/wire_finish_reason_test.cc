// The sampler's finish reasons on the wire (services/scoring/wire_finish_reason.h): each one
// keeps its own wire value, so a stop string is never reported as a stop token.
#include "services/scoring/wire_finish_reason.h"

#include <set>

#include <gtest/gtest.h>

namespace dsm {
namespace {

TEST(WireFinishReasonTest, EachReasonHasItsOwnWireValue) {
  EXPECT_EQ(WireFinishReason(FinishReason::kStopToken), v1::FINISH_REASON_STOP_TOKEN);
  EXPECT_EQ(WireFinishReason(FinishReason::kStopString), v1::FINISH_REASON_STOP_STRING);
  EXPECT_EQ(WireFinishReason(FinishReason::kLength), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(WireFinishReason(FinishReason::kAborted), v1::FINISH_REASON_ABORTED);
  std::set<int> distinct;
  for (FinishReason r : {FinishReason::kStopToken, FinishReason::kStopString, FinishReason::kLength,
                         FinishReason::kAborted}) {
    distinct.insert(WireFinishReason(r));
  }
  EXPECT_EQ(distinct.size(), 4u);
}

TEST(WireFinishReasonTest, AnUnknownValueIsAnError) {
  EXPECT_EQ(WireFinishReason(static_cast<FinishReason>(99)), v1::FINISH_REASON_ERROR);
}

}  // namespace
}  // namespace dsm
