#include "services/adapters/adapter_bulk_protocol.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

constexpr char kMagic[4] = {'D', 'S', 'M', 'B'};

void PutLe(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t GetLe(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return value;
}

// Milliseconds left until `deadline` for poll(2), at least 0.
int MillisUntil(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 1 << 30));
}

// Waits for `events` on `fd`; false when the deadline passed first.
absl::Status Wait(int fd, short events, absl::Time deadline, const char* what) {
  for (;;) {
    const int left = MillisUntil(deadline);
    if (left == 0) return absl::DeadlineExceededError(absl::StrCat("bulk transfer: ", what, " timed out"));
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, left);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return absl::UnavailableError(absl::StrCat("bulk transfer: poll: ", std::strerror(errno)));
  }
}

}  // namespace

std::string EncodeBulkRequest(const BulkRequest& request) {
  std::string out(kMagic, sizeof(kMagic));
  PutLe(&out, request.role, 4);
  PutLe(&out, request.version, 8);
  out += request.ticket;
  out.resize(kBulkRequestBytes, '\0');
  return out;
}

absl::StatusOr<BulkRequest> DecodeBulkRequest(absl::string_view bytes) {
  if (bytes.size() != kBulkRequestBytes || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError("not a bulk adapter request");
  }
  BulkRequest request;
  request.role = static_cast<uint32_t>(GetLe(bytes.data() + 4, 4));
  request.version = GetLe(bytes.data() + 8, 8);
  request.ticket = std::string(bytes.substr(16, kBulkTicketBytes));
  return request;
}

std::string EncodeBulkHeader(const BulkHeader& header) {
  std::string out(kMagic, sizeof(kMagic));
  PutLe(&out, static_cast<uint32_t>(header.status), 4);
  PutLe(&out, header.length, 8);
  return out;
}

absl::StatusOr<BulkHeader> DecodeBulkHeader(absl::string_view bytes) {
  if (bytes.size() != kBulkHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError("not a bulk adapter answer");
  }
  BulkHeader header;
  header.status = static_cast<BulkStatus>(GetLe(bytes.data() + 4, 4));
  header.length = GetLe(bytes.data() + 8, 8);
  return header;
}

absl::Status PrepareBulkSocket(int fd) {
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("bulk socket: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status SendAll(int fd, absl::Span<const iovec> pieces, absl::Time deadline) {
  std::vector<iovec> left(pieces.begin(), pieces.end());
  std::size_t first = 0;
  while (first < left.size()) {
    msghdr message{};
    message.msg_iov = left.data() + first;
    message.msg_iovlen = std::min<std::size_t>(left.size() - first, IOV_MAX);
    const ssize_t sent = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return absl::UnavailableError(absl::StrCat("bulk transfer: send: ", std::strerror(errno)));
      }
      if (absl::Status s = Wait(fd, POLLOUT, deadline, "sending"); !s.ok()) return s;
      continue;
    }
    auto n = static_cast<std::size_t>(sent);
    while (first < left.size() && n >= left[first].iov_len) n -= left[first++].iov_len;
    if (n > 0) {
      left[first].iov_base = static_cast<char*>(left[first].iov_base) + n;
      left[first].iov_len -= n;
    }
  }
  return absl::OkStatus();
}

absl::Status RecvExact(int fd, char* to, std::size_t size, absl::Time deadline,
                       const std::function<void(const char*, std::size_t)>& on_piece) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::recv(fd, to + got, size - got, 0);
    if (n > 0) {
      if (on_piece) on_piece(to + got, static_cast<std::size_t>(n));
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return absl::UnavailableError("bulk transfer: the connection closed");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("bulk transfer: recv: ", std::strerror(errno)));
    }
    if (absl::Status s = Wait(fd, POLLIN, deadline, "receiving"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

bool WaitReadable(int fd, absl::Time deadline) { return Wait(fd, POLLIN, deadline, "waiting").ok(); }

}  // namespace dsm
