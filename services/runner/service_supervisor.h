// ServiceSupervisor: the services of a local run (`dsm run`) as child
// processes of one supervisor, each restarted when it dies, as a process
// manager would: a child that exits is started again after a backoff that
// doubles with each restart of that child (from `restart_backoff`, at most
// `max_backoff`); more than `max_restarts` restarts of one child fail the
// supervision with the child's name, exit status and log. Every child's
// stdout and stderr go to <log_dir>/<name>.log (appended across restarts).
// StopAll stops the children stage by stage (SupervisedChild::stop_stage,
// lowest first), the children of one stage together, so clients can go
// before the servers they hold streams to without each waiting for the last.
//
// Thread-compatible: one thread calls Start, Poll and StopAll.
#ifndef DSM_SERVICES_RUNNER_SERVICE_SUPERVISOR_H_
#define DSM_SERVICES_RUNNER_SERVICE_SUPERVISOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/subprocess.h"

namespace dsm {

struct SupervisedChild {
  std::string name;               // e.g. "learner"; the log file's name
  std::vector<std::string> args;  // arguments after the binary
  int stop_stage = 0;             // StopAll: lower stages stop first; one stage's children together
};

struct SupervisorOptions {
  std::string binary;   // the program every child runs (the dsm binary)
  std::string log_dir;  // must exist
  int max_restarts = 5;
  absl::Duration restart_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration stop_grace = absl::Seconds(10);  // SIGTERM, then SIGKILL
};

class ServiceSupervisor {
 public:
  explicit ServiceSupervisor(SupervisorOptions options);
  ~ServiceSupervisor();  // StopAll()
  ServiceSupervisor(const ServiceSupervisor&) = delete;
  ServiceSupervisor& operator=(const ServiceSupervisor&) = delete;

  // Starts the children in order. INVALID_ARGUMENT for an empty or repeated
  // name; a child that cannot be started fails the call (those started stay).
  absl::Status Start(std::vector<SupervisedChild> children);

  // Notices children that exited and restarts those whose backoff is over.
  // Appends one line per exit and restart to `events` (may be null).
  // FAILED_PRECONDITION once a child exited more than max_restarts times.
  absl::Status Poll(std::vector<std::string>* events);

  // Stops every child, stage by stage: SIGTERM to each child of the stage, up
  // to stop_grace for them all, then SIGKILL for any left. Idempotent.
  void StopAll();

  int restarts(const std::string& name) const;
  std::string LogPath(const std::string& name) const;
  // The pid of a running child; -1 when it is not running.
  int pid(const std::string& name) const;

 private:
  struct Child {
    SupervisedChild spec;
    std::unique_ptr<Subprocess> process;
    int restarts = 0;
    absl::Time restart_at = absl::InfinitePast();  // when waiting to restart
    bool waiting = false;
  };
  const Child* Find(const std::string& name) const;

  const SupervisorOptions options_;
  std::vector<Child> children_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_RUNNER_SERVICE_SUPERVISOR_H_
