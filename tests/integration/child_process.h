// Test helper: a child process (the dsm binary, or any program given by
// path) with its output in a file, stopped with SIGTERM (or killed) when the
// helper goes away. Not thread-safe.
#ifndef DSM_TESTS_INTEGRATION_CHILD_PROCESS_H_
#define DSM_TESTS_INTEGRATION_CHILD_PROCESS_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"

namespace dsm_test {

// The path of a program for ChildProcess, e.g. Program{"/usr/bin/prometheus"}.
struct Program {
  std::string path;
};

class ChildProcess {
 public:
  // Runs $DSM_BINARY_DIR/dsm with `args`; stdout+stderr go to `log_path`.
  ChildProcess(const std::vector<std::string>& args, std::string log_path)
      : ChildProcess(Program{std::string(std::getenv("DSM_BINARY_DIR")) + "/dsm"}, args, std::move(log_path)) {}

  // Runs `program.path` with `args` (argv[0] is the path); stdout+stderr go
  // to `log_path`. A program that cannot be run exits with 127.
  ChildProcess(const Program& program, const std::vector<std::string>& args, std::string log_path)
      : log_path_(std::move(log_path)) {
    const std::string& binary = program.path;
    std::ofstream(log_path_, std::ios::trunc).flush();  // never read an earlier run's log
    pid_ = fork();
    if (pid_ == 0) {
      FILE* log = fopen(log_path_.c_str(), "a");
      if (log != nullptr) {
        dup2(fileno(log), 1);
        dup2(fileno(log), 2);
      }
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(binary.c_str()));
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
  }
  ~ChildProcess() { Stop(SIGKILL); }

  // The first log line containing `marker`, waiting up to `timeout`; nullopt if
  // the process exited or the time ran out.
  std::optional<std::string> WaitForLine(const std::string& marker, absl::Duration timeout) {
    const absl::Time until = absl::Now() + timeout;
    while (absl::Now() < until) {
      std::ifstream in(log_path_);
      std::string line;
      while (std::getline(in, line)) {
        if (line.find(marker) != std::string::npos) return line;
      }
      if (!Running()) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return std::nullopt;
  }

  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return false;
    }
    return true;
  }

  // Sends `signal` and waits for the exit; returns the exit code (-1 if killed by a signal).
  int Stop(int signal = SIGTERM) {
    if (pid_ > 0) {
      kill(pid_, signal);
      int status = 0;
      waitpid(pid_, &status, 0);
      exit_status_ = status;
      pid_ = -1;
    }
    return WIFEXITED(exit_status_) ? WEXITSTATUS(exit_status_) : -1;
  }

  pid_t pid() const { return pid_; }

  std::string Log() const {
    std::ifstream in(log_path_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_status_ = 0;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_CHILD_PROCESS_H_
