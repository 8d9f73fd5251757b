#include "common/status_conversion.h"

#include <string>

#include <gtest/gtest.h>

namespace dsm {
namespace {

TEST(StatusConversion, OkMapsToOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusConversion, EveryCodeRoundTrips) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status in(static_cast<absl::StatusCode>(code), "boom");
    const grpc::Status wire = ToGrpcStatus(in);
    EXPECT_EQ(static_cast<int>(wire.error_code()), code);
    EXPECT_EQ(wire.error_message(), "boom");
    EXPECT_EQ(FromGrpcStatus(wire), in);
  }
}

TEST(StatusConversion, InvalidArgumentKeepsMessage) {
  const grpc::Status s = ToGrpcStatus(absl::InvalidArgumentError("n: 100 exceeds max_n 64"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "n: 100 exceeds max_n 64");
}

TEST(StatusConversion, LongMessagesAreTruncatedOnACharacterBoundary) {
  std::string message(kMaxStatusMessageBytes - 4, 'a');
  message += "\xc3\xa9\xc3\xa9\xc3\xa9";  // "ééé" straddles the limit
  const grpc::Status s = ToGrpcStatus(absl::InternalError(message));
  EXPECT_LE(s.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_EQ(s.error_message().substr(s.error_message().size() - 3), "...");
  const std::string body = s.error_message().substr(0, s.error_message().size() - 3);
  // No dangling UTF-8 lead byte before the ellipsis.
  EXPECT_NE(static_cast<unsigned char>(body.back()) & 0xC0, 0xC0);
}

}  // namespace
}  // namespace dsm
