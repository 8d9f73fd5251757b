// Test helpers for the deployment tests that run the built-in stack (`dsm
// serve coordinator` and `dsm serve learner,worker,verifier,meta-verifier`)
// on the tiny reference model: the model folder with a byte-level tokenizer,
// short prompt templates, the addresses of a "dsm serve ROLE: grpc ADDR
// metrics ADDR" line, and a minimal HTTP/1.1 GET over a loopback socket (for
// /metrics and for Prometheus's HTTP API). Functions only; thread-compatible.
#ifndef DSM_TESTS_DEPLOY_DEPLOY_STACK_H_
#define DSM_TESTS_DEPLOY_DEPLOY_STACK_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "model/tokenizer_bytes.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm_test {

// A copy (symlinks) of the reference tiny model (vocabulary 300) with a
// byte-level tokenizer.json (the scoring roles tokenize their prompts), as in
// scoring_process_test. Returns `dir`.
inline std::string ModelWithTokenizer(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path source = dsm::model_test::ReferenceDir() + "/llama_gqa_tied";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(source)) {
    if (entry.is_regular_file()) fs::create_symlink(entry.path(), fs::path(dir) / entry.path().filename());
  }
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[dsm::tokenizer_internal::ByteToUnicode(static_cast<unsigned char>(b))] = b;
  nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}, {"unk_token", nullptr}}}};
  std::ofstream(fs::path(dir) / "tokenizer.json") << tokenizer.dump();
  return dir;
}

// Short generator, verifier and meta-verifier templates (the tiny model's
// context is short) in `dir`. Returns `dir`.
inline std::string PromptsDir(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/generator.txt") << "role: generator\n"
                                        << "evaluation_marker: Here is my evaluation of the solution:\n"
                                        << "score_marker: Based on my evaluation, the final overall score should be:\n"
                                        << "---\nP:{problem}\n## Solution\n";
  std::ofstream(dir + "/verifier.txt") << "role: verifier\n"
                                       << "evaluation_marker: Here is my evaluation of the solution:\n"
                                       << "score_marker: Based on my evaluation, the final overall score should be:\n"
                                       << "---\nP:{problem} Y:{proof} V:\n";
  std::ofstream(dir + "/meta_verifier.txt")
      << "role: meta_verifier\n"
      << "evaluation_marker: Here is my analysis of the \"solution evaluation\":\n"
      << "score_marker: Based on my analysis, I will rate the \"solution evaluation\" as:\n"
      << "---\nP:{problem} Y:{proof} A:{analysis} M:\n";
  return dir;
}

// "dsm serve ROLE: grpc ADDR metrics ADDR" -> the metrics ADDR.
inline std::string MetricsAddress(const std::string& line) { return line.substr(line.find(" metrics ") + 9); }

struct HttpResult {
  bool ok = false;  // connected and got a complete "HTTP/1.x 200" response
  int code = 0;     // the status code; 0 when no response came
  std::string body;  // the body, chunked transfer coding undone
};

namespace deploy_internal {

// Undoes "Transfer-Encoding: chunked"; false on a malformed body.
inline bool Dechunk(const std::string& in, std::string* out) {
  std::size_t at = 0;
  while (true) {
    const std::size_t eol = in.find("\r\n", at);
    if (eol == std::string::npos) return false;
    const std::string size_text = in.substr(at, in.find_first_of(";\r", at) - at);
    char* end = nullptr;
    const unsigned long size = std::strtoul(size_text.c_str(), &end, 16);
    if (end == size_text.c_str()) return false;
    if (size == 0) return true;
    if (eol + 2 + size > in.size()) return false;
    out->append(in, eol + 2, size);
    at = eol + 2 + size + 2;  // the chunk and its CRLF
  }
}

}  // namespace deploy_internal

// GET http://ADDRESS/PATH (ADDRESS "host:port", IPv4; 0.0.0.0 means
// loopback) with "Connection: close", waiting at most 10 s for the answer.
inline HttpResult HttpGet(const std::string& address, const std::string& path) {
  HttpResult result;
  const std::vector<std::string> parts = absl::StrSplit(address, ':');
  int port = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port)) return result;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return result;
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, parts[0] == "0.0.0.0" ? "127.0.0.1" : parts[0].c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return result;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return result;
  }
  std::string response;
  char buffer[65536];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  close(fd);
  const std::size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12 || body == std::string::npos) return result;
  if (!absl::SimpleAtoi(response.substr(9, 3), &result.code)) return result;
  std::string headers = response.substr(0, body);
  for (char& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (headers.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    if (!deploy_internal::Dechunk(response.substr(body + 4), &result.body)) return result;
  } else {
    result.body = response.substr(body + 4);
  }
  result.ok = result.code == 200;
  return result;
}

}  // namespace dsm_test

#endif  // DSM_TESTS_DEPLOY_DEPLOY_STACK_H_
