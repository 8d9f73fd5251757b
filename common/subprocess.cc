#include "common/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dsm {

Subprocess::~Subprocess() { Stop(absl::ZeroDuration()); }

absl::Status Subprocess::Start(const std::string& path, const std::vector<std::string>& args,
                               const std::string& log_path) {
  if (pid_ > 0) return absl::FailedPreconditionError(absl::StrCat(path, ": already running as pid ", pid_));
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return absl::InternalError(absl::StrCat(log_path, ": cannot open the log: ", std::strerror(errno)));
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int error = errno;
    close(log);
    return absl::InternalError(absl::StrCat(path, ": fork: ", std::strerror(error)));
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the parent may block signals for its own waiter
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    dup2(log, 1);
    dup2(log, 2);
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  close(log);
  pid_ = pid;
  exit_status_.reset();
  return absl::OkStatus();
}

void Subprocess::Reaped(int status) {
  exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1;
  pid_ = -1;
}

bool Subprocess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    Reaped(status);
    return false;
  }
  if (r < 0 && errno == ECHILD) {  // reaped elsewhere: unknown status
    exit_status_ = -1;
    pid_ = -1;
    return false;
  }
  return true;
}

void Subprocess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

std::optional<int> Subprocess::Stop(absl::Duration grace) {
  if (!Running()) return exit_status_;
  if (grace > absl::ZeroDuration()) {
    kill(pid_, SIGTERM);
    const absl::Time until = absl::Now() + grace;
    while (absl::Now() < until) {
      if (!Running()) return exit_status_;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  kill(pid_, SIGKILL);
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) {
    Reaped(status);
  } else {
    exit_status_ = -SIGKILL;
    pid_ = -1;
  }
  return exit_status_;
}

}  // namespace dsm
