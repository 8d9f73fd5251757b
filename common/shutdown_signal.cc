#include "common/shutdown_signal.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include <spdlog/spdlog.h>

namespace dsm {
namespace {

sigset_t ShutdownSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockShutdownSignals() {
  const sigset_t set = ShutdownSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForShutdownSignal() {
  const sigset_t set = ShutdownSet();
  int signal_number = 0;
  while (sigwait(&set, &signal_number) != 0) {
  }
  spdlog::info("received {}, shutting down (send it again to stop at once)",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  std::thread([set] {
    int again = 0;
    while (sigwait(&set, &again) != 0) {
    }
    _exit(130);
  }).detach();
  return signal_number;
}

}  // namespace dsm
