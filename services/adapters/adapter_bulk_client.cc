#include "services/adapters/adapter_bulk_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "google/protobuf/util/time_util.h"
#include "services/adapters/adapter_bulk_protocol.h"

namespace dsm {
namespace {

constexpr std::size_t kAlign = 64;  // each tensor starts on a cache line of the buffer

std::size_t AlignUp(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Splits "host:port" ("[v6]:port" too).
absl::Status SplitEndpoint(const std::string& endpoint, std::string* host, std::string* port) {
  const std::size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size()) {
    return absl::InvalidArgumentError(absl::StrCat("bulk endpoint \"", endpoint, "\" is not host:port"));
  }
  *host = endpoint.substr(0, colon);
  *port = endpoint.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return absl::OkStatus();
}

// Checks that `offer`'s tensors tile [0, total_bytes) in order and that each
// size fits its shape and dtype.
absl::Status CheckOffer(const v1::AdapterChunk& offer) {
  const v1::AdapterBulkOffer& bulk = offer.bulk();
  if (bulk.tensors_size() == 0 || static_cast<uint32_t>(bulk.tensors_size()) != offer.tensor_count()) {
    return absl::InvalidArgumentError(absl::StrCat("bulk offer of version ", offer.version(), ": ",
                                                   bulk.tensors_size(), " tensors, tensor_count ",
                                                   offer.tensor_count()));
  }
  if (bulk.ticket().size() != kBulkTicketBytes) {
    return absl::InvalidArgumentError(absl::StrCat("bulk offer: ticket of ", bulk.ticket().size(), " bytes"));
  }
  uint64_t offset = 0;
  for (const v1::AdapterBulkTensor& t : bulk.tensors()) {
    absl::StatusOr<torch::ScalarType> dtype = TorchDtypeFromWire(t.dtype());
    if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat(t.name(), ": ", dtype.status().message()));
    int64_t bytes = static_cast<int64_t>(c10::elementSize(*dtype));
    bool overflow = false;
    for (int64_t d : t.shape()) overflow = overflow || d < 0 || __builtin_mul_overflow(bytes, d, &bytes);
    if (overflow || static_cast<uint64_t>(bytes) != t.size() || t.offset() != offset) {
      return absl::InvalidArgumentError(absl::StrCat("bulk offer: tensor ", t.name(), " (offset ", t.offset(),
                                                     ", ", t.size(), " bytes) does not fit its shape or place"));
    }
    offset += t.size();
  }
  if (offset != bulk.total_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bulk offer: tensors of ", offset, " bytes, total_bytes ", bulk.total_bytes()));
  }
  return absl::OkStatus();
}

}  // namespace

AdapterBulkClient::AdapterBulkClient(AdapterBulkClientOptions options) : options_(options) {}

AdapterBulkClient::~AdapterBulkClient() { Close(); }

void AdapterBulkClient::Interrupt() {
  absl::MutexLock lock(&mu_);
  interrupted_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void AdapterBulkClient::Close() {
  absl::MutexLock lock(&mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  endpoint_.clear();
}

absl::Status AdapterBulkClient::Connect(const std::string& endpoint, absl::Time deadline) {
  std::string host, port;
  if (absl::Status s = SplitEndpoint(endpoint, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); e != 0) {
    return absl::UnavailableError(absl::StrCat("bulk endpoint ", endpoint, ": ", ::gai_strerror(e)));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    const int s = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (s < 0) continue;
    int rc = ::connect(s, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      const int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
      int so_error = ETIMEDOUT;
      if (::poll(&p, 1, static_cast<int>(ms)) > 0) {
        socklen_t len = sizeof(so_error);
        ::getsockopt(s, SOL_SOCKET, SO_ERROR, &so_error, &len);
      }
      rc = so_error == 0 ? 0 : -1;
      errno = so_error;
    }
    if (rc == 0 && PrepareBulkSocket(s).ok()) {
      fd = s;
    } else {
      error = std::strerror(errno);
      ::close(s);
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("bulk endpoint ", endpoint, ": connect: ", error));
  absl::MutexLock lock(&mu_);
  if (interrupted_) {
    ::close(fd);
    return absl::CancelledError("bulk transfer interrupted");
  }
  fd_ = fd;
  endpoint_ = endpoint;
  return absl::OkStatus();
}

torch::Tensor AdapterBulkClient::Buffer(std::size_t bytes) {
  for (const torch::Tensor& b : buffers_) {
    // Only this list holds it: no tensor of an earlier version is alive.
    if (b.use_count() == 1 && static_cast<std::size_t>(b.numel()) >= bytes) return b;
  }
  torch::Tensor fresh = torch::empty({static_cast<int64_t>(bytes)}, torch::TensorOptions().dtype(torch::kUInt8));
  if (static_cast<int>(buffers_.size()) < options_.keep_buffers) {
    buffers_.push_back(fresh);
  } else {
    for (torch::Tensor& b : buffers_) {
      if (b.use_count() == 1) {  // free but too small: replace it
        b = fresh;
        break;
      }
    }
  }
  return fresh;
}

absl::StatusOr<AdapterVersionData> AdapterBulkClient::Fetch(const v1::AdapterChunk& offer) {
  if (absl::Status s = CheckOffer(offer); !s.ok()) return s;
  const v1::AdapterBulkOffer& bulk = offer.bulk();
  const absl::Time deadline = absl::Now() + options_.transfer_timeout;
  int fd;
  {
    absl::MutexLock lock(&mu_);
    if (interrupted_) return absl::CancelledError("bulk transfer interrupted");
    fd = fd_;
  }
  if (fd >= 0) {
    // A kept connection the endpoint has closed meanwhile (idle timeout, a
    // restart) reads as ready: take a new one rather than fail the transfer.
    pollfd p{fd, POLLIN, 0};
    if (endpoint_ != bulk.endpoint() || ::poll(&p, 1, 0) != 0) {
      Close();
      fd = -1;
    }
  }
  if (fd < 0) {
    if (bulk.endpoint() == unreachable_ && absl::Now() < retry_connect_at_) {
      return absl::UnavailableError(absl::StrCat("bulk endpoint ", unreachable_, " was unreachable moments ago"));
    }
    if (absl::Status s = Connect(bulk.endpoint(), std::min(deadline, absl::Now() + options_.connect_timeout));
        !s.ok()) {
      unreachable_ = bulk.endpoint();
      retry_connect_at_ = absl::Now() + options_.reconnect_backoff;
      return s;
    }
    unreachable_.clear();
    absl::MutexLock lock(&mu_);
    fd = fd_;
  }
  auto fail = [this](absl::Status status) {
    Close();
    return status;
  };
  const std::string request = EncodeBulkRequest({static_cast<uint32_t>(offer.role()), offer.version(), bulk.ticket()});
  const iovec piece = {const_cast<char*>(request.data()), request.size()};
  if (absl::Status s = SendAll(fd, absl::MakeConstSpan(&piece, 1), deadline); !s.ok()) return fail(s);
  char raw[kBulkHeaderBytes];
  if (absl::Status s = RecvExact(fd, raw, sizeof(raw), deadline); !s.ok()) return fail(s);
  absl::StatusOr<BulkHeader> header = DecodeBulkHeader(absl::string_view(raw, sizeof(raw)));
  if (!header.ok()) return fail(absl::UnavailableError(header.status().message()));
  if (header->status != BulkStatus::kOk) {
    std::string text(std::min<uint64_t>(header->length, kMaxBulkErrorBytes), '\0');
    (void)RecvExact(fd, text.data(), text.size(), deadline);
    const absl::Status status = header->status == BulkStatus::kNotFound
                                    ? absl::NotFoundError(absl::StrCat("bulk endpoint: ", text))
                                    : absl::UnavailableError(absl::StrCat("bulk endpoint: ", text));
    if (header->length > kMaxBulkErrorBytes || header->status != BulkStatus::kNotFound) return fail(status);
    return status;  // the connection stays in step
  }
  if (header->length != bulk.total_bytes()) {
    return fail(absl::UnavailableError(absl::StrCat("bulk endpoint sends ", header->length, " bytes, the offer says ",
                                                    bulk.total_bytes())));
  }

  std::size_t buffer_bytes = 0;
  for (const v1::AdapterBulkTensor& t : bulk.tensors()) buffer_bytes += AlignUp(t.size());
  torch::Tensor buffer;
  try {
    buffer = Buffer(buffer_bytes);
  } catch (const std::exception& e) {
    return fail(absl::ResourceExhaustedError(absl::StrCat("allocating ", buffer_bytes, " bytes: ", e.what())));
  }
  char* const base = static_cast<char*>(buffer.data_ptr());
  AdapterVersionData data;
  data.role = offer.role();
  data.version = offer.version();
  data.learner_step = offer.learner_step();
  data.adapter_config_json = offer.adapter_config_json();
  data.published_at =
      absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(offer.published_at()));
  std::size_t place = 0;
  for (const v1::AdapterBulkTensor& t : bulk.tensors()) {
    char* const to = base + place;
    uint32_t crc = 0;
    if (absl::Status s = RecvExact(fd, to, t.size(), deadline,
                                   [&crc](const char* p, std::size_t n) { crc = Crc32cExtend(crc, p, n); });
        !s.ok()) {
      return fail(s);
    }
    if (crc != t.crc32c()) {
      return fail(absl::DataLossError(
          absl::StrCat("adapter version ", offer.version(), " tensor ", t.name(), ": CRC-32C mismatch (bulk)")));
    }
    const std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
    // The tensor keeps the whole buffer alive; the buffer is reused once no
    // tensor of it is left.
    data.tensors.emplace(t.name(), torch::from_blob(to, shape, [buffer](void*) {},
                                                    torch::TensorOptions().dtype(*TorchDtypeFromWire(t.dtype()))));
    place += AlignUp(t.size());
  }
  if (data.tensors.size() != static_cast<std::size_t>(bulk.tensors_size())) {
    return absl::InvalidArgumentError(absl::StrCat("bulk offer of version ", offer.version(), ": a tensor name twice"));
  }
  return data;
}

}  // namespace dsm
