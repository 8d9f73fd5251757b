// The security rule (auth_policy.h), the token (auth_token.h) and its check,
// without a server; the same on real servers is in
// tests/integration/grpc_security_test.cc.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "common/auth_policy.h"
#include "common/auth_token.h"
#include "common/tls_credentials.h"

namespace dsm {
namespace {

constexpr char kToken[] = "0123456789abcdef-token";

// Sets or clears DSM_AUTH_TOKEN for one test, restoring it afterwards.
class ScopedTokenEnv {
 public:
  explicit ScopedTokenEnv(const char* value) {
    if (const char* old = std::getenv(kAuthTokenEnvVar)) {
      saved_ = old;
      had_ = true;
    }
    if (value == nullptr) {
      unsetenv(kAuthTokenEnvVar);
    } else {
      setenv(kAuthTokenEnvVar, value, 1);
    }
  }
  ~ScopedTokenEnv() {
    if (had_) {
      setenv(kAuthTokenEnvVar, saved_.c_str(), 1);
    } else {
      unsetenv(kAuthTokenEnvVar);
    }
  }

 private:
  bool had_ = false;
  std::string saved_;
};

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() / ("dsm-auth-test-" + name)).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(AuthPolicy, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "learner", "localhost.example.com", ""}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(AuthPolicy, LoopbackTargets) {
  for (const char* target : {"127.0.0.1:50052", "localhost:1", "[::1]:50052", "dns:///localhost:50052",
                             "dns://8.8.8.8/127.0.0.1:5", "ipv4:127.0.0.1:1,127.0.0.2:2", "ipv6:[::1]:1",
                             "unix:/tmp/dsm.sock"}) {
    EXPECT_TRUE(IsLoopbackTarget(target)) << target;
  }
  for (const char* target : {"10.0.0.1:50052", "learner:50052", "dns:///learner:50052",
                             "ipv4:127.0.0.1:1,10.0.0.2:2", "[2001:db8::1]:5", ""}) {
    EXPECT_FALSE(IsLoopbackTarget(target)) << target;
  }
}

TEST(AuthPolicy, ServerRuleNamesTheKeyToSet) {
  SecuritySettings none;
  EXPECT_TRUE(CheckServerSecurity("127.0.0.1", none).ok());
  EXPECT_EQ(CheckServerSecurity("0.0.0.0", none).message(),
            "server.tls_cert_file: required because server.host \"0.0.0.0\" is not a loopback address (or set "
            "server.allow_insecure: true)");
  SecuritySettings tls_only;
  tls_only.tls = true;
  EXPECT_TRUE(CheckServerSecurity("localhost", tls_only).ok());
  EXPECT_EQ(CheckServerSecurity("10.1.2.3", tls_only).message(),
            "server.token_file: required because server.host \"10.1.2.3\" is not a loopback address (or set "
            "DSM_AUTH_TOKEN, or server.allow_insecure: true)");
  SecuritySettings both = tls_only;
  both.token = true;
  EXPECT_TRUE(CheckServerSecurity("0.0.0.0", both).ok());
  SecuritySettings insecure;
  insecure.allow_insecure = true;
  EXPECT_TRUE(CheckServerSecurity("0.0.0.0", insecure).ok());
  SecuritySettings token_only;
  token_only.token = true;
  token_only.allow_insecure = true;  // does not allow a token in clear text
  const absl::Status s = CheckServerSecurity("127.0.0.1", token_only);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "server.token_file: a bearer token (server.token_file or DSM_AUTH_TOKEN) needs TLS: set "
            "server.tls_cert_file and server.tls_key_file (the token is never sent in clear text)");
}

TEST(AuthPolicy, ClientRuleNamesTheTargetKey) {
  SecuritySettings none;
  EXPECT_TRUE(CheckClientTarget("worker.learner", "", none).ok());
  EXPECT_TRUE(CheckClientTarget("worker.learner", "127.0.0.1:50052", none).ok());
  EXPECT_EQ(CheckClientTarget("worker.learner", "10.0.0.5:50052", none).message(),
            "worker.learner: \"10.0.0.5:50052\" is not a loopback address, so clients need TLS: set "
            "client.tls_ca_file (or set server.allow_insecure: true)");
  SecuritySettings tls;
  tls.tls = true;
  EXPECT_EQ(CheckClientTarget("worker.coordinator", "head:50051", tls).message(),
            "worker.coordinator: \"head:50051\" is not a loopback address, so clients need a bearer token: set "
            "server.token_file or DSM_AUTH_TOKEN (or set server.allow_insecure: true)");
  tls.token = true;
  EXPECT_TRUE(CheckClientTarget("worker.coordinator", "head:50051", tls).ok());
}

TEST(AuthPolicy, LogLineSaysWhatIsOnAndWhy) {
  SecuritySettings none;
  SecurityLogLine line = DescribeServerSecurity("127.0.0.1:5", "127.0.0.1", none);
  EXPECT_FALSE(line.warn);
  EXPECT_EQ(line.text, "gRPC server 127.0.0.1:5: security is off (no TLS, no token) because every address is loopback");
  none.allow_insecure = true;
  line = DescribeServerSecurity("0.0.0.0:5", "0.0.0.0", none);
  EXPECT_TRUE(line.warn);
  EXPECT_EQ(line.text, "gRPC server 0.0.0.0:5: security is off (no TLS, no token) because server.allow_insecure is true");
  SecuritySettings tls;
  tls.tls = true;
  tls.mutual_tls = true;
  EXPECT_EQ(DescribeServerSecurity("127.0.0.1:5", "127.0.0.1", tls).text,
            "gRPC server 127.0.0.1:5: TLS on with client certificates, no token, allowed because every address is "
            "loopback");
  tls.token = true;
  line = DescribeServerSecurity("0.0.0.0:5", "0.0.0.0", tls);
  EXPECT_FALSE(line.warn);
  EXPECT_EQ(line.text, "gRPC server 0.0.0.0:5: TLS on with client certificates, bearer token required on every call");
}

TEST(AuthToken, TokensEqualComparesEveryByte) {
  EXPECT_TRUE(TokensEqual("abcdefghijklmnop", "abcdefghijklmnop"));
  EXPECT_FALSE(TokensEqual("abcdefghijklmnop", "abcdefghijklmnoq"));
  EXPECT_FALSE(TokensEqual("abcdefghijklmnop", "bbcdefghijklmnop"));
  EXPECT_FALSE(TokensEqual("abcdefghijklmnop", "abcdefghijklmno"));
  EXPECT_FALSE(TokensEqual("abcdefghijklmnop", "abcdefghijklmnopq"));
  EXPECT_FALSE(TokensEqual("abcdefghijklmnop", ""));
  // A given token that is the expected one plus a NUL is still different.
  EXPECT_FALSE(TokensEqual("abcdefghijklmnop", std::string("abcdefghijklmnop\0", 17)));
}

TEST(AuthToken, TokenTextRules) {
  EXPECT_TRUE(CheckTokenText(kToken, "server.token_file").ok());
  EXPECT_EQ(CheckTokenText("short", "server.token_file").message(),
            "server.token_file: the token is 5 characters; at least 16 are needed");
  EXPECT_EQ(CheckTokenText("0123456789 abcdef", "DSM_AUTH_TOKEN").message(),
            "DSM_AUTH_TOKEN: the token has a space or non-printable character at offset 10 (allowed: printable "
            "ASCII without spaces)");
}

TEST(AuthToken, FileWinsOverEnvironmentAndLosesItsNewline) {
  ScopedTokenEnv env("from-the-environment-0123");
  const std::string path = WriteTemp("token", std::string(kToken) + "\n");
  absl::StatusOr<LoadedToken> loaded = LoadBearerToken(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->token, kToken);
  EXPECT_EQ(loaded->source, "server.token_file");
  loaded = LoadBearerToken("");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->token, "from-the-environment-0123");
  EXPECT_EQ(loaded->source, "DSM_AUTH_TOKEN");
  std::filesystem::remove(path);
}

TEST(AuthToken, NoFileNoEnvironmentMeansNoToken) {
  ScopedTokenEnv env(nullptr);
  absl::StatusOr<LoadedToken> loaded = LoadBearerToken("");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->token, "");
  EXPECT_EQ(loaded->source, "");
  ScopedTokenEnv empty("");
  EXPECT_EQ(LoadBearerToken("")->token, "");
}

TEST(AuthToken, BadFileOrShortTokenNamesTheSource) {
  EXPECT_EQ(LoadBearerToken("/nonexistent/dsm-token").status().message(),
            "server.token_file: cannot read \"/nonexistent/dsm-token\"");
  const std::string path = WriteTemp("short-token", "tiny\n");
  EXPECT_EQ(LoadBearerToken(path).status().message(),
            "server.token_file: the token is 4 characters; at least 16 are needed");
  std::filesystem::remove(path);
  ScopedTokenEnv env("short");
  EXPECT_EQ(LoadBearerToken("").status().message(), "DSM_AUTH_TOKEN: the token is 5 characters; at least 16 are needed");
}

grpc::Status Check(const char* authorization, grpc::AuthMetadataProcessor::OutputMetadata* consumed) {
  BearerTokenChecker checker(kToken);
  grpc::AuthMetadataProcessor::InputMetadata metadata;
  metadata.insert({"user-agent", "test"});
  if (authorization != nullptr) metadata.insert({"authorization", authorization});
  grpc::AuthMetadataProcessor::OutputMetadata response;
  EXPECT_FALSE(checker.IsBlocking());
  return checker.Process(metadata, nullptr, consumed, &response);
}

TEST(BearerTokenChecker, RejectsMissingMalformedAndWrongTokens) {
  grpc::AuthMetadataProcessor::OutputMetadata consumed;
  grpc::Status s = Check(nullptr, &consumed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "authorization: missing bearer token");
  s = Check("Basic 0123456789abcdef-token", &consumed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "authorization: missing bearer token");
  s = Check("Bearer", &consumed);
  EXPECT_EQ(s.error_message(), "authorization: missing bearer token");
  s = Check("Bearer 0123456789abcdef-tokem", &consumed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "authorization: wrong token");
  s = Check("Bearer ", &consumed);
  EXPECT_EQ(s.error_message(), "authorization: wrong token");
}

TEST(BearerTokenChecker, AcceptsTheTokenAndConsumesTheHeader) {
  grpc::AuthMetadataProcessor::OutputMetadata consumed;
  EXPECT_TRUE(Check("Bearer 0123456789abcdef-token", &consumed).ok());
  ASSERT_EQ(consumed.count("authorization"), 1u);
  EXPECT_EQ(consumed.find("authorization")->second, "Bearer 0123456789abcdef-token");
  grpc::AuthMetadataProcessor::OutputMetadata consumed_lower;
  EXPECT_TRUE(Check("bearer 0123456789abcdef-token", &consumed_lower).ok());  // RFC 6750: any case
}

TEST(TlsCredentials, PemFileErrorsNameTheKey) {
  EXPECT_EQ(ReadPemFile("client.tls_ca_file", "/nonexistent/ca.crt").status().message(),
            "client.tls_ca_file: cannot read \"/nonexistent/ca.crt\"");
  const std::string path = WriteTemp("not-pem", "hello\n");
  EXPECT_EQ(ReadPemFile("server.tls_key_file", path).status().message(),
            "server.tls_key_file: \"" + path + "\" is not PEM (no \"-----BEGIN\" line)");
  std::filesystem::remove(path);
}

TEST(TlsCredentials, TokenWithoutTlsGetsNoServerCredentials) {
  ServerSecurity security;
  security.token = kToken;
  EXPECT_EQ(MakeServerCredentials(security).status().code(), absl::StatusCode::kInvalidArgument);
  security.token.clear();
  EXPECT_TRUE(MakeServerCredentials(security).ok());
}

}  // namespace
}  // namespace dsm
