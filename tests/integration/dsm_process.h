// Test helper: runs the built `dsm` binary with arguments and collects its
// exit code, stdout and stderr.
#ifndef DSM_TESTS_INTEGRATION_DSM_PROCESS_H_
#define DSM_TESTS_INTEGRATION_DSM_PROCESS_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>

namespace dsm_test {

struct DsmResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `args` is passed through the shell; `stdin_text` is fed on standard input.
inline DsmResult RunDsm(const std::string& args, const std::string& stdin_text = "") {
  // Tests run in parallel (ctest -j) share TempDir(): one set of files per process.
  const std::string dir = ::testing::TempDir() + "/dsm_process_" + std::to_string(getpid());
  std::system(("mkdir -p " + dir).c_str());
  const std::string in = dir + "/in.txt";
  const std::string out = dir + "/out.txt";
  const std::string err = dir + "/err.txt";
  std::ofstream(in) << stdin_text;
  const std::string command = std::string(std::getenv("DSM_BINARY_DIR")) + "/dsm " + args + " >" + out +
                              " 2>" + err + " <" + in;
  const int status = std::system(command.c_str());
  DsmResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadWholeFile(out);
  result.err = ReadWholeFile(err);
  return result;
}

inline int CountLines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_DSM_PROCESS_H_
