// Test helper: runs the built `dsm` binary with arguments and collects its
// exit code, stdout and stderr.
#ifndef DSM_TESTS_INTEGRATION_DSM_PROCESS_H_
#define DSM_TESTS_INTEGRATION_DSM_PROCESS_H_

#include <sys/wait.h>

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
  const std::string dir = ::testing::TempDir();
  const std::string in = dir + "/dsm_process_in.txt";
  const std::string out = dir + "/dsm_process_out.txt";
  const std::string err = dir + "/dsm_process_err.txt";
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
