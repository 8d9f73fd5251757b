#include "services/adapters/adapter_bulk_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/adapters/adapter_bulk_protocol.h"

namespace dsm {
namespace {

// Sends a header with `status` and `text` (best effort: the connection is
// closed after it anyway, or the client reads on).
absl::Status SendError(int fd, BulkStatus status, const std::string& text, absl::Time deadline) {
  const std::string header = EncodeBulkHeader({status, text.size()});
  const iovec pieces[] = {{const_cast<char*>(header.data()), header.size()},
                          {const_cast<char*>(text.data()), text.size()}};
  return SendAll(fd, pieces, deadline);
}

}  // namespace

AdapterBulkServer::AdapterBulkServer(const AdapterPublisher* publisher, AdapterBulkServerOptions options,
                                     std::function<void(const EncodedAdapterVersion&)> on_version_sent)
    : publisher_(publisher), options_(std::move(options)), on_version_sent_(std::move(on_version_sent)) {}

AdapterBulkServer::~AdapterBulkServer() { Stop(); }

absl::Status AdapterBulkServer::Start() {
  const std::string address = absl::StrCat(options_.host, ":", options_.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(options_.port);
  if (const int e = ::getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found); e != 0) {
    return absl::UnavailableError(absl::StrCat("adapter bulk endpoint ", address, ": ", ::gai_strerror(e)));
  }
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && listener_ < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      listener_ = fd;
    } else {
      error = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (listener_ < 0) return absl::UnavailableError(absl::StrCat("adapter bulk endpoint ", address, ": ", error));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void AdapterBulkServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (listener_ >= 0) ::shutdown(listener_, SHUT_RDWR);  // wakes accept(2)
    for (Connection& c : connections_) {
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
    }
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Connection> connections;
  {
    absl::MutexLock lock(&mu_);
    connections.swap(connections_);
  }
  for (Connection& c : connections) {
    if (c.thread.joinable()) c.thread.join();
  }
  if (listener_ >= 0) ::close(listener_);
  listener_ = -1;
}

void AdapterBulkServer::ReapDone() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    if (it->thread.joinable()) it->thread.join();  // it has set `done` and is returning
    it = connections_.erase(it);
  }
}

void AdapterBulkServer::AcceptLoop() {
  for (;;) {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
      spdlog::error("adapter bulk endpoint: accept: {}", std::strerror(errno));
      return;
    }
    ReapDone();
    if (!PrepareBulkSocket(fd).ok()) {
      ::close(fd);
      continue;
    }
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      (void)SendError(fd, BulkStatus::kBusy, "too many bulk connections", absl::Now() + absl::Seconds(1));
      ::close(fd);
      continue;
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, &c] { Serve(&c); });
  }
}

void AdapterBulkServer::Serve(Connection* connection) {
  const int fd = connection->fd;  // only this thread closes it
  while (WaitReadable(fd, absl::Now() + options_.idle_timeout) && Answer(fd)) {
  }
  absl::MutexLock lock(&mu_);
  ::close(fd);
  connection->fd = -1;
  connection->done = true;
}

bool AdapterBulkServer::Answer(int fd) {
  const absl::Time deadline = absl::Now() + options_.transfer_timeout;
  char raw[kBulkRequestBytes];
  if (!RecvExact(fd, raw, sizeof(raw), deadline).ok()) return false;  // closed, or not a client
  absl::StatusOr<BulkRequest> request = DecodeBulkRequest(absl::string_view(raw, sizeof(raw)));
  if (!request.ok()) {
    (void)SendError(fd, BulkStatus::kBadRequest, std::string(request.status().message()), deadline);
    return false;
  }
  std::shared_ptr<const EncodedAdapterVersion> version =
      publisher_->FindForBulk(static_cast<v1::AdapterRole>(request->role), request->version, request->ticket);
  if (!version) {
    return SendError(fd, BulkStatus::kNotFound,
                     absl::StrCat("adapter version ", request->version, " is not held (superseded or unknown)"),
                     deadline)
        .ok();
  }
  const std::string header = EncodeBulkHeader({BulkStatus::kOk, version->bytes});
  std::vector<iovec> pieces;
  pieces.reserve(version->payload.size() + 1);
  pieces.push_back({const_cast<char*>(header.data()), header.size()});
  for (absl::string_view piece : version->payload) pieces.push_back({const_cast<char*>(piece.data()), piece.size()});
  std::string corrupted;
  if (corrupt_.load() > 0 && corrupt_.fetch_sub(1) > 0 && !version->payload.empty() &&
      !version->payload.front().empty()) {
    corrupted = std::string(version->payload.front());
    corrupted[corrupted.size() / 2] ^= 0x01;
    pieces[1] = {corrupted.data(), corrupted.size()};
  }
  if (absl::Status s = SendAll(fd, pieces, deadline); !s.ok()) {
    spdlog::warn("adapter bulk endpoint: sending version {}: {}", version->version, std::string(s.message()));
    return false;
  }
  ++versions_sent_;
  if (on_version_sent_) on_version_sent_(*version);
  return true;
}

absl::StatusOr<std::unique_ptr<AdapterBulkServer>> StartAdapterBulkServer(
    const DsmConfig& config, const AdapterPublisher* publisher,
    std::function<void(const EncodedAdapterVersion&)> on_version_sent) {
  if (!config.learner.bulk_transfer) return nullptr;
  if (!config.server.tls_cert_file.empty()) {
    spdlog::info("adapter bulk endpoint off: the gRPC server uses TLS, adapters go in WatchAdapters chunks");
    return nullptr;
  }
  AdapterBulkServerOptions options;
  options.host = config.server.host;
  options.port = config.learner.bulk_port;
  auto server = std::make_unique<AdapterBulkServer>(publisher, options, std::move(on_version_sent));
  if (absl::Status s = server->Start(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("learner.bulk_port: ", s.message()));
  }
  spdlog::info("adapter bulk endpoint on {}:{}", options.host, server->port());
  return server;
}

}  // namespace dsm
