// Converting between absl::Status (used everywhere inside dsm) and grpc::Status
// (used only at the gRPC edge). This is the one place where the two meet.
#ifndef DSM_COMMON_STATUS_CONVERSION_H_
#define DSM_COMMON_STATUS_CONVERSION_H_

#include <cstddef>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace dsm {

// Longest message sent to a peer; longer messages are cut and end in "...".
inline constexpr std::size_t kMaxStatusMessageBytes = 1024;

// Maps the code one to one (both follow google.rpc.Code) and keeps the message,
// truncated to kMaxStatusMessageBytes.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse of ToGrpcStatus. Unknown numeric codes become UNKNOWN.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace dsm

#endif  // DSM_COMMON_STATUS_CONVERSION_H_
