// The wire of the learner's bulk endpoint (learner.proto, AdapterBulkOffer):
// plain TCP, one request after the other on a connection. A request is 32
// bytes: "DSMB", uint32 role, uint64 version, the 16-byte ticket; the answer
// a 16-byte header ("DSMB", uint32 status, uint64 length) and `length` bytes
// (the tensors' bytes with status 0, an error text otherwise). Integers are
// little-endian.
//
// Also the socket loops both ends share: sending and receiving everything
// by a deadline on a non-blocking socket. Thread-safe (no state).
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_BULK_PROTOCOL_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_BULK_PROTOCOL_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace dsm {

inline constexpr std::size_t kBulkRequestBytes = 32;
inline constexpr std::size_t kBulkHeaderBytes = 16;
inline constexpr std::size_t kBulkTicketBytes = 16;
inline constexpr std::size_t kMaxBulkErrorBytes = 1024;

enum class BulkStatus : uint32_t {
  kOk = 0,
  kNotFound = 1,    // no such version (superseded, or an unknown ticket)
  kBusy = 2,        // too many connections
  kBadRequest = 3,  // not a request
};

struct BulkRequest {
  uint32_t role = 0;
  uint64_t version = 0;
  std::string ticket;  // kBulkTicketBytes
};

struct BulkHeader {
  BulkStatus status = BulkStatus::kOk;
  uint64_t length = 0;
};

std::string EncodeBulkRequest(const BulkRequest& request);
// InvalidArgument when the bytes are not a request.
absl::StatusOr<BulkRequest> DecodeBulkRequest(absl::string_view bytes);
std::string EncodeBulkHeader(const BulkHeader& header);
absl::StatusOr<BulkHeader> DecodeBulkHeader(absl::string_view bytes);

// Makes `fd` non-blocking (the loops below need it) with TCP_NODELAY.
absl::Status PrepareBulkSocket(int fd);

// Sends every byte of `pieces` on non-blocking `fd` by `deadline`.
// DeadlineExceeded when it is not done in time, Unavailable when the
// connection fails.
absl::Status SendAll(int fd, absl::Span<const iovec> pieces, absl::Time deadline);

// Receives exactly `size` bytes into `to` from non-blocking `fd` by
// `deadline`; `on_piece(data, n)` (may be empty) runs on each piece as it
// arrives. Unavailable when the peer closes first.
absl::Status RecvExact(int fd, char* to, std::size_t size, absl::Time deadline,
                       const std::function<void(const char*, std::size_t)>& on_piece = nullptr);

// Waits until `fd` is readable (or closed) by `deadline`; false when the time
// ran out.
bool WaitReadable(int fd, absl::Time deadline);

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_BULK_PROTOCOL_H_
