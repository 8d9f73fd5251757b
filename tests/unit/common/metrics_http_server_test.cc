#include "common/metrics_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics_registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Connects to 127.0.0.1:port; returns the fd or -1 with errno set.
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval timeout{10, 0};  // a hung server fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

std::string ReadToEof(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Sends `request` verbatim and returns everything the server sent back.
std::string RoundTrip(int port, absl::string_view request) {
  const int fd = Connect(port);
  if (fd < 0) return absl::StrCat("connect failed: errno ", errno);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (431) and stop reading early
    sent += static_cast<size_t>(n);
  }
  std::string response = ReadToEof(fd);
  ::close(fd);
  return response;
}

struct HttpResponse {
  std::string status_line;
  std::string headers;  // "Name: value\r\n" lines
  std::string body;
};

HttpResponse Parse(const std::string& raw) {
  HttpResponse r;
  const size_t line_end = raw.find("\r\n");
  const size_t header_end = raw.find("\r\n\r\n");
  if (line_end == std::string::npos || header_end == std::string::npos) {
    r.status_line = raw;
    return r;
  }
  r.status_line = raw.substr(0, line_end);
  r.headers = raw.substr(line_end + 2, header_end + 2 - (line_end + 2));
  r.body = raw.substr(header_end + 4);
  return r;
}

HttpResponse Get(int port, absl::string_view path, absl::string_view method = "GET") {
  return Parse(RoundTrip(port, absl::StrCat(method, " ", path,
                                            " HTTP/1.1\r\nHost: localhost\r\n"
                                            "User-Agent: test\r\n\r\n")));
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CounterFamily* c =
        registry_.AddCounter("dsm_test_requests_total", "Test \\ requests.\n", {"path"}).value();
    c->WithLabels({"/a\"b"}).Increment(3);
    registry_.AddHistogram("dsm_test_latency_seconds", "Latency.", {}, {0.5, 1})
        .value()
        ->Default()
        .Observe(0.75);
  }

  std::unique_ptr<MetricsHttpServer> StartServer(MetricsHttpServerOptions options = {}) {
    auto server = std::make_unique<MetricsHttpServer>(registry_, options);
    const absl::Status status = server->Start();
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_GT(server->port(), 0);
    return server;
  }

  MetricsRegistry registry_;
};

TEST_F(MetricsHttpServerTest, GetMetricsServesTheExposition) {
  auto server = StartServer();
  const HttpResponse r = Get(server->port(), "/metrics");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_THAT(r.headers, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  EXPECT_THAT(r.headers, HasSubstr(absl::StrCat("Content-Length: ", r.body.size(), "\r\n")));
  EXPECT_THAT(r.headers, HasSubstr("Connection: close\r\n"));
  EXPECT_EQ(r.body, registry_.Exposition());
  EXPECT_THAT(r.body, HasSubstr("dsm_test_requests_total{path=\"/a\\\"b\"} 3\n"));
}

TEST_F(MetricsHttpServerTest, QueryStringIsIgnoredAndBareLfIsAccepted) {
  auto server = StartServer();
  EXPECT_EQ(Get(server->port(), "/metrics?name[]=x").status_line, "HTTP/1.1 200 OK");
  const HttpResponse r = Parse(RoundTrip(server->port(), "GET /healthz HTTP/1.0\n\n"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "ok");
}

TEST_F(MetricsHttpServerTest, HealthzSaysOk) {
  auto server = StartServer();
  const HttpResponse r = Get(server->port(), "/healthz");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "ok");
}

TEST_F(MetricsHttpServerTest, HeadHasHeadersButNoBody) {
  auto server = StartServer();
  const HttpResponse r = Get(server->port(), "/metrics", "HEAD");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_THAT(r.headers,
              HasSubstr(absl::StrCat("Content-Length: ", registry_.Exposition().size(), "\r\n")));
  EXPECT_EQ(r.body, "");
}

TEST_F(MetricsHttpServerTest, UnknownPathIs404) {
  auto server = StartServer();
  EXPECT_EQ(Get(server->port(), "/nope").status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(Get(server->port(), "/metrics/extra").status_line, "HTTP/1.1 404 Not Found");
}

TEST_F(MetricsHttpServerTest, OtherMethodsAre405) {
  auto server = StartServer();
  const HttpResponse r = Parse(
      RoundTrip(server->port(),
                "POST /metrics HTTP/1.1\r\nContent-Length: 11\r\nHost: x\r\n\r\nhello world"));
  EXPECT_EQ(r.status_line, "HTTP/1.1 405 Method Not Allowed");
  EXPECT_THAT(r.headers, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_EQ(Get(server->port(), "/metrics", "DELETE").status_line,
            "HTTP/1.1 405 Method Not Allowed");
}

TEST_F(MetricsHttpServerTest, GarbageGets400AndTheServerKeepsServing) {
  auto server = StartServer();
  const int port = server->port();
  EXPECT_THAT(RoundTrip(port, std::string("\x00\xff\x01 garbage\r\n\r\n", 16)),
              StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  EXPECT_THAT(RoundTrip(port, "GET\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(RoundTrip(port, "GET /metrics SPDY/9\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(RoundTrip(port, "GET metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(RoundTrip(port, "GET /a b HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  // Clients that vanish before finishing (or before sending anything).
  ::close(Connect(port));
  {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_GT(::send(fd, "GET /met", 8, MSG_NOSIGNAL), 0);
    ::close(fd);
  }
  const HttpResponse r = Get(port, "/metrics");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, registry_.Exposition());
}

TEST_F(MetricsHttpServerTest, SurvivesRandomBytes) {
  auto server = StartServer();
  std::mt19937 rng(12345);
  static constexpr char kAlphabet[] = "GETHAD /metricsz?\r\n\t:\x00\xff\x7f HTTP/1.1";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  for (int i = 0; i < 200; ++i) {
    std::string request;
    const int length = std::uniform_int_distribution<int>(0, 300)(rng);
    for (int j = 0; j < length; ++j) {
      request.push_back(i % 2 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()]);
    }
    request += "\r\n\r\n";
    const std::string response = RoundTrip(server->port(), request);
    EXPECT_THAT(response, StartsWith("HTTP/1.1 ")) << i;
  }
  EXPECT_EQ(Get(server->port(), "/metrics").body, registry_.Exposition());
}

TEST_F(MetricsHttpServerTest, OversizedHeaderIs431) {
  MetricsHttpServerOptions options;
  options.max_header_bytes = 16 * 1024;
  auto server = StartServer(options);
  const std::string big =
      absl::StrCat("GET /metrics HTTP/1.1\r\nX-Big: ", std::string(20 * 1024, 'a'), "\r\n\r\n");
  EXPECT_THAT(RoundTrip(server->port(), big),
              StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  // Just under the limit is fine.
  const std::string fits =
      absl::StrCat("GET /healthz HTTP/1.1\r\nX-Big: ", std::string(15 * 1024, 'a'), "\r\n\r\n");
  EXPECT_THAT(RoundTrip(server->port(), fits), StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Get(server->port(), "/healthz").body, "ok");
}

TEST_F(MetricsHttpServerTest, SilentClientIsDroppedAfterReadTimeout) {
  MetricsHttpServerOptions options;
  options.read_timeout = absl::Milliseconds(200);
  auto server = StartServer(options);
  const int silent = Connect(server->port());
  ASSERT_GE(silent, 0);
  const absl::Time start = absl::Now();
  EXPECT_EQ(ReadToEof(silent), "");  // server closes without a response
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ::close(silent);
  // A client that stalls mid-request gets 408.
  const int stalled = Connect(server->port());
  ASSERT_GE(stalled, 0);
  ASSERT_GT(::send(stalled, "GET /metrics HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 0);
  EXPECT_THAT(ReadToEof(stalled), StartsWith("HTTP/1.1 408 Request Timeout\r\n"));
  ::close(stalled);
  EXPECT_EQ(Get(server->port(), "/healthz").body, "ok");
}

TEST_F(MetricsHttpServerTest, StopClosesTheListenerAndIsIdempotent) {
  auto server = StartServer();
  const int port = server->port();
  ASSERT_EQ(Get(port, "/healthz").body, "ok");
  server->Stop();
  const int fd = Connect(port);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, ECONNREFUSED);
  server->Stop();
  server.reset();  // destructor after Stop is fine
}

TEST_F(MetricsHttpServerTest, StopIsPromptWhileAClientHoldsAConnection) {
  MetricsHttpServerOptions options;
  options.read_timeout = absl::Seconds(60);
  auto server = StartServer(options);
  const int idle = Connect(server->port());
  ASSERT_GE(idle, 0);
  absl::SleepFor(absl::Milliseconds(50));  // let the server pick it up
  const absl::Time start = absl::Now();
  server->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  ::close(idle);
}

TEST_F(MetricsHttpServerTest, CanRestartAfterStopAndRejectsDoubleStart) {
  auto server = StartServer();
  const absl::Status again = server->Start();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  server->Stop();
  ASSERT_TRUE(server->Start().ok());
  EXPECT_EQ(Get(server->port(), "/healthz").body, "ok");
}

TEST_F(MetricsHttpServerTest, PortInUseNamesTheAddress) {
  auto first = StartServer();
  MetricsHttpServerOptions options;
  options.port = first->port();
  MetricsHttpServer second(registry_, options);
  const absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat("127.0.0.1:", first->port())));
  EXPECT_THAT(status.message(), HasSubstr("in use"));
  EXPECT_EQ(second.port(), 0);
  second.Stop();                                         // no-op
  EXPECT_EQ(Get(first->port(), "/healthz").body, "ok");  // the first is unharmed
}

TEST_F(MetricsHttpServerTest, BadOptionsAreInvalidArgument) {
  MetricsHttpServerOptions options;
  options.port = 70000;
  EXPECT_EQ(MetricsHttpServer(registry_, options).Start().code(),
            absl::StatusCode::kInvalidArgument);
  options.port = 0;
  options.address = "not a host name!";
  const absl::Status status = MetricsHttpServer(registry_, options).Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("not a host name!:0"));
}

TEST_F(MetricsHttpServerTest, ServesIpv6LoopbackWhenAvailable) {
  MetricsHttpServerOptions options;
  options.address = "::1";
  MetricsHttpServer server(registry_, options);
  const absl::Status status = server.Start();
  if (!status.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << status;
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(static_cast<uint16_t>(server.port()));
  addr.sin6_addr = in6addr_loopback;
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string request = "GET /healthz HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  EXPECT_EQ(Parse(ReadToEof(fd)).body, "ok");
  ::close(fd);
}

}  // namespace
}  // namespace dsm
