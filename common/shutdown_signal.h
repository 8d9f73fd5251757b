// Turning SIGTERM / SIGINT into an orderly shutdown.
//
// Call BlockShutdownSignals() first thing in main(), before any thread starts,
// so every thread inherits the mask and only WaitForShutdownSignal() sees the
// signal. A second signal while draining ends the process at once (exit 130),
// as users expect from a second Ctrl-C.
#ifndef DSM_COMMON_SHUTDOWN_SIGNAL_H_
#define DSM_COMMON_SHUTDOWN_SIGNAL_H_

namespace dsm {

void BlockShutdownSignals();

// Blocks until SIGTERM or SIGINT arrives; returns the signal number. After it
// returns, a further SIGTERM/SIGINT terminates the process immediately.
int WaitForShutdownSignal();

}  // namespace dsm

#endif  // DSM_COMMON_SHUTDOWN_SIGNAL_H_
