#include "common/auth_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dsm {
namespace {

// "host:port" -> "host"; "[v6]:port" -> "v6"; a bare IPv6 address stays whole.
std::string HostOf(absl::string_view address) {
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    return std::string(address.substr(1, close == absl::string_view::npos ? absl::string_view::npos : close - 1));
  }
  if (std::count(address.begin(), address.end(), ':') == 1) {
    return std::string(address.substr(0, address.find(':')));
  }
  return std::string(address);
}

std::string Quoted(const std::string& s) { return absl::StrCat("\"", s, "\""); }

}  // namespace

bool IsLoopbackHost(absl::string_view host) {
  std::string h = absl::AsciiStrToLower(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.x.x
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

bool IsLoopbackTarget(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) return true;
  std::vector<std::string> addresses;
  if (absl::ConsumePrefix(&target, "ipv4:") || absl::ConsumePrefix(&target, "ipv6:")) {
    addresses = absl::StrSplit(target, ',', absl::SkipEmpty());
  } else {
    if (absl::ConsumePrefix(&target, "dns:") && absl::ConsumePrefix(&target, "//")) {
      // dns://authority/host:port
      const size_t slash = target.find('/');
      target = slash == absl::string_view::npos ? absl::string_view() : target.substr(slash + 1);
    }
    addresses.emplace_back(target);
  }
  if (addresses.empty()) return false;
  for (const std::string& address : addresses) {
    if (!IsLoopbackHost(HostOf(address))) return false;
  }
  return true;
}

absl::Status CheckServerSecurity(const std::string& host, const SecuritySettings& settings) {
  if (settings.token && !settings.tls) {
    return absl::InvalidArgumentError(
        "server.token_file: a bearer token (server.token_file or DSM_AUTH_TOKEN) needs TLS: set "
        "server.tls_cert_file and server.tls_key_file (the token is never sent in clear text)");
  }
  if (settings.allow_insecure || IsLoopbackHost(host)) return absl::OkStatus();
  const std::string why = absl::StrCat("required because server.host ", Quoted(host), " is not a loopback address");
  if (!settings.tls) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.tls_cert_file: ", why, " (or set server.allow_insecure: true)"));
  }
  if (!settings.token) {
    return absl::InvalidArgumentError(
        absl::StrCat("server.token_file: ", why, " (or set DSM_AUTH_TOKEN, or server.allow_insecure: true)"));
  }
  return absl::OkStatus();
}

absl::Status CheckClientTarget(const std::string& key, const std::string& target,
                               const SecuritySettings& settings) {
  if (settings.allow_insecure || target.empty() || IsLoopbackTarget(target)) return absl::OkStatus();
  const std::string what = absl::StrCat(key, ": ", Quoted(target), " is not a loopback address, so ");
  if (!settings.tls) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "clients need TLS: set client.tls_ca_file (or set server.allow_insecure: true)"));
  }
  if (!settings.token) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, "clients need a bearer token: set server.token_file or DSM_AUTH_TOKEN (or set "
              "server.allow_insecure: true)"));
  }
  return absl::OkStatus();
}

SecurityLogLine DescribeServerSecurity(const std::string& address, const std::string& host,
                                       const SecuritySettings& settings) {
  SecurityLogLine line;
  const std::string prefix = absl::StrCat("gRPC server ", address, ": ");
  if (settings.tls && settings.token) {
    line.text = absl::StrCat(prefix, "TLS on", settings.mutual_tls ? " with client certificates" : "",
                             ", bearer token required on every call");
    return line;
  }
  const bool loopback = IsLoopbackHost(host);
  if (!settings.tls && !settings.token) {
    line.text = absl::StrCat(prefix, "security is off (no TLS, no token) because ",
                             loopback ? "every address is loopback" : "server.allow_insecure is true");
  } else {
    line.text = absl::StrCat(prefix, "TLS on", settings.mutual_tls ? " with client certificates" : "",
                             ", no token, allowed because ",
                             loopback ? "every address is loopback" : "server.allow_insecure is true");
  }
  line.warn = !loopback;
  return line;
}

}  // namespace dsm
