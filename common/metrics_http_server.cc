#include "common/metrics_http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace dsm {
namespace {

constexpr absl::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr absl::string_view kTextContentType = "text/plain; charset=utf-8";
// After the response, read what the client still sends for at most this long
// before closing, so that unread request bytes don't turn our FIN into a RST
// that could destroy the response in flight.
constexpr absl::Duration kLingerTime = absl::Milliseconds(500);
constexpr size_t kLingerMaxBytes = 1 << 20;

std::string ErrnoText(int err) { return std::strerror(err); }

void CloseFd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

int PollTimeoutMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

enum class WaitResult { kReadable, kTimeout, kStopping, kError };

// Waits until `fd` is readable, the deadline passes or `wake_fd` fires.
WaitResult WaitReadable(int fd, int wake_fd, absl::Time deadline) {
  while (true) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, PollTimeoutMs(deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return WaitResult::kError;
    }
    if (fds[1].revents != 0) return WaitResult::kStopping;
    if (fds[0].revents != 0) return WaitResult::kReadable;  // data, EOF or error: recv tells
    if (absl::Now() >= deadline) return WaitResult::kTimeout;
  }
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // includes EAGAIN from SO_SNDTIMEO
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Internal Server Error";
  }
}

struct Response {
  int status = 200;
  absl::string_view content_type = kTextContentType;
  std::string body;
  bool allow_header = false;
};

std::string Serialize(const Response& response, bool include_body) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status),
                   "\r\nContent-Type: ", response.content_type,
                   "\r\nContent-Length: ", response.body.size(), "\r\nConnection: close\r\n");
  if (response.allow_header) out.append("Allow: GET, HEAD\r\n");
  out.append("\r\n");
  if (include_body) out.append(response.body);
  return out;
}

Response TextResponse(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// RFC 9110 token characters, enough to tell a method from garbage.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
          absl::string_view("!#$%&'*+-.^_`|~").find(c) != absl::string_view::npos)) {
      return false;
    }
  }
  return true;
}

// Position just past the blank line ending the header, or npos. Bare LF line
// ends are accepted too (RFC 9112 §2.2 allows it; handy with netcat).
size_t HeaderEnd(absl::string_view buffer) {
  const size_t crlf = buffer.find("\r\n\r\n");
  const size_t lf = buffer.find("\n\n");
  size_t end = absl::string_view::npos;
  if (crlf != absl::string_view::npos) end = crlf + 4;
  if (lf != absl::string_view::npos) end = std::min(end, lf + 2);
  return end;
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(const MetricsRegistry& registry,
                                     MetricsHttpServerOptions options)
    : registry_(registry), options_(std::move(options)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

int MetricsHttpServer::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

std::string MetricsHttpServer::Endpoint(int port) const {
  if (options_.address.find(':') != std::string::npos) {
    return absl::StrCat("[", options_.address, "]:", port);
  }
  return absl::StrCat(options_.address, ":", port);
}

absl::Status MetricsHttpServer::Start() {
  absl::MutexLock lock(&mu_);
  const std::string endpoint = Endpoint(options_.port);
  if (running_) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics HTTP server on ", Endpoint(port_), " is already started"));
  }
  if (options_.port < 0 || options_.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics HTTP server: port ", options_.port, " is out of range [0, 65535]"));
  }
  if (options_.read_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("metrics HTTP server: read_timeout must be positive");
  }
  if (options_.max_header_bytes < 64) {
    return absl::InvalidArgumentError("metrics HTTP server: max_header_bytes must be >= 64");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // Numeric only: a bind address never needs DNS, and a lookup could block.
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
  addrinfo* addresses = nullptr;
  const std::string port_text = std::to_string(options_.port);
  const std::string host = options_.address == "localhost" ? "127.0.0.1" : options_.address;
  if (const int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &addresses); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("metrics HTTP server cannot listen on ",
                                                   endpoint, ": not a numeric IP address (",
                                                   ::gai_strerror(rc), ")"));
  }
  int fd = -1;
  int bind_errno = 0;
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      bind_errno = errno;
      continue;
    }
    const int one = 1;
    // Lets a restarted server rebind while old connections sit in TIME_WAIT;
    // on Linux it does not let two servers listen on one port.
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) break;
    bind_errno = errno;
    CloseFd(fd);
  }
  ::freeaddrinfo(addresses);
  if (fd < 0) {
    const std::string message = absl::StrCat("metrics HTTP server cannot listen on ", endpoint,
                                             ": ", ErrnoText(bind_errno));
    switch (bind_errno) {
      case EACCES:
      case EPERM:
        return absl::PermissionDeniedError(message);
      case EADDRNOTAVAIL:
      case EAFNOSUPPORT:
        return absl::InvalidArgumentError(message);
      default:
        return absl::UnavailableError(message);  // EADDRINUSE and the rest
    }
  }

  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    const int err = errno;
    CloseFd(fd);
    return absl::InternalError(
        absl::StrCat("metrics HTTP server on ", endpoint, ": getsockname: ", ErrnoText(err)));
  }
  const int port = bound.ss_family == AF_INET6
                       ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int err = errno;
    CloseFd(fd);
    return absl::InternalError(
        absl::StrCat("metrics HTTP server on ", endpoint, ": pipe: ", ErrnoText(err)));
  }

  listen_fd_ = fd;
  wake_read_fd_ = wake[0];
  wake_write_fd_ = wake[1];
  port_ = port;
  running_ = true;
  thread_ = std::thread([this, fd, wake_fd = wake[0]] { ServeLoop(fd, wake_fd); });
  spdlog::info("metrics HTTP server listening on {}", Endpoint(port));
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  std::thread thread;
  int listen_fd, wake_read_fd, wake_write_fd;
  {
    absl::MutexLock lock(&mu_);
    if (!running_) return;
    running_ = false;
    const char byte = 0;
    // The pipe is empty and non-blocking: this cannot block or fail short.
    [[maybe_unused]] const ssize_t n = ::write(wake_write_fd_, &byte, 1);
    thread = std::move(thread_);
    listen_fd = std::exchange(listen_fd_, -1);
    wake_read_fd = std::exchange(wake_read_fd_, -1);
    wake_write_fd = std::exchange(wake_write_fd_, -1);
  }
  thread.join();
  CloseFd(listen_fd);
  CloseFd(wake_read_fd);
  CloseFd(wake_write_fd);
}

void MetricsHttpServer::ServeLoop(int listen_fd, int wake_fd) {
  while (true) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics HTTP server: poll: {}", ErrnoText(errno));
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) continue;
      // E.g. EMFILE: don't spin; the pending connection waits for a retry.
      spdlog::warn("metrics HTTP server: accept: {}", ErrnoText(err));
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    HandleConnection(conn, wake_fd);
    ::close(conn);
  }
}

void MetricsHttpServer::HandleConnection(int fd, int wake_fd) {
  const absl::Time deadline = absl::Now() + options_.read_timeout;
  const timeval send_timeout = absl::ToTimeval(options_.read_timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));

  // Read the request header.
  std::string buffer;
  size_t header_end = std::string::npos;
  char chunk[4096];
  while (true) {
    header_end = HeaderEnd(buffer);
    if (header_end != std::string::npos || buffer.size() > options_.max_header_bytes) break;
    const WaitResult wait = WaitReadable(fd, wake_fd, deadline);
    if (wait == WaitResult::kStopping || wait == WaitResult::kError) return;
    if (wait == WaitResult::kTimeout) {
      if (!buffer.empty()) SendAll(fd, Serialize(TextResponse(408, "request timeout\n"), true));
      return;
    }
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away before finishing its request
    buffer.append(chunk, static_cast<size_t>(n));
  }

  // Parse the request line; the remaining header fields are not needed.
  Response response;
  bool is_head = false;
  if (header_end == std::string::npos || header_end > options_.max_header_bytes) {
    response = TextResponse(431, "request header fields too large\n");
  } else {
    absl::string_view head(buffer.data(), header_end);
    while (!head.empty() && (head.front() == '\r' || head.front() == '\n')) head.remove_prefix(1);
    absl::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == absl::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    const absl::string_view method = line.substr(0, sp1);
    absl::string_view target, version;
    if (sp2 != absl::string_view::npos) {
      target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      version = line.substr(sp2 + 1);
    }
    if (!IsToken(method) || target.empty() || target.front() != '/' ||
        version.substr(0, 7) != "HTTP/1." || version.size() != 8 ||
        target.find(' ') != absl::string_view::npos) {
      response = TextResponse(400, "bad request\n");
    } else if (method != "GET" && method != "HEAD") {
      response = TextResponse(405, "method not allowed\n");
      response.allow_header = true;
    } else {
      is_head = method == "HEAD";
      const absl::string_view path = target.substr(0, target.find('?'));
      if (path == "/metrics") {
        response.content_type = kMetricsContentType;
        response.body = registry_.Exposition();
      } else if (path == "/healthz") {
        response = TextResponse(200, "ok");
      } else {
        response = TextResponse(404, "not found\n");
      }
    }
  }
  if (response.status >= 400) {
    spdlog::debug("metrics HTTP server: answered {} ({} request bytes)", response.status,
                  buffer.size());
  }
  if (!SendAll(fd, Serialize(response, !is_head))) return;

  // Half-close, then drain briefly so the client reads the whole response.
  ::shutdown(fd, SHUT_WR);
  const absl::Time linger_deadline = absl::Now() + kLingerTime;
  size_t drained = 0;
  while (drained < kLingerMaxBytes &&
         WaitReadable(fd, wake_fd, linger_deadline) == WaitResult::kReadable) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

}  // namespace dsm
