#include "common/status_conversion.h"

#include <string>

namespace dsm {
namespace {

std::string Truncate(std::string message) {
  if (message.size() <= kMaxStatusMessageBytes) return message;
  std::size_t cut = kMaxStatusMessageBytes - 3;
  // Never cut a UTF-8 sequence in half: back up to a lead byte.
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  message.resize(cut);
  message += "...";
  return message;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  const auto grpc_code = (code >= 0 && code <= 16) ? static_cast<grpc::StatusCode>(code)
                                                   : grpc::StatusCode::UNKNOWN;
  return grpc::Status(grpc_code, Truncate(std::string(status.message())));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int code = static_cast<int>(status.error_code());
  const auto absl_code = (code >= 0 && code <= 16) ? static_cast<absl::StatusCode>(code)
                                                   : absl::StatusCode::kUnknown;
  return absl::Status(absl_code, status.error_message());
}

}  // namespace dsm
