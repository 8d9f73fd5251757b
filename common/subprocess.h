// Subprocess: one child program with its stdout and stderr appended to a log
// file, for supervisors (`dsm run` starts every service this way). The child
// gets SIGTERM when the parent dies (PR_SET_PDEATHSIG), so a killed
// supervisor leaves nothing running. Not thread-safe.
#ifndef DSM_COMMON_SUBPROCESS_H_
#define DSM_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace dsm {

class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess();  // Stop(SIGKILL grace 0) if still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Starts `path` with `args` (argv[0] = path); output appended to
  // `log_path` (created if missing). FAILED_PRECONDITION when running already;
  // INTERNAL naming the path when the log cannot be opened or fork fails. A
  // program that cannot be executed exits with 127.
  absl::Status Start(const std::string& path, const std::vector<std::string>& args, const std::string& log_path);

  // True while the child runs; reaps it (ExitStatus then holds the result).
  bool Running();
  // The exit code, or -signal when a signal ended it; nullopt while running
  // or before Start.
  std::optional<int> ExitStatus() const { return exit_status_; }
  // SIGTERM, up to `grace` for the exit, then SIGKILL. Returns ExitStatus().
  std::optional<int> Stop(absl::Duration grace);
  // Sends `signal` (no wait).
  void Signal(int signal);

  pid_t pid() const { return pid_; }

 private:
  void Reaped(int status);

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

}  // namespace dsm

#endif  // DSM_COMMON_SUBPROCESS_H_
