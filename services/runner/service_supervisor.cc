#include "services/runner/service_supervisor.h"

#include <signal.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dsm {

ServiceSupervisor::ServiceSupervisor(SupervisorOptions options) : options_(std::move(options)) {}

ServiceSupervisor::~ServiceSupervisor() { StopAll(); }

std::string ServiceSupervisor::LogPath(const std::string& name) const {
  return absl::StrCat(options_.log_dir, "/", name, ".log");
}

absl::Status ServiceSupervisor::Start(std::vector<SupervisedChild> children) {
  std::set<std::string> names;
  for (const Child& c : children_) names.insert(c.spec.name);
  for (const SupervisedChild& c : children) {
    if (c.name.empty()) return absl::InvalidArgumentError("child: the name is empty");
    if (!names.insert(c.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("child: \"", c.name, "\" is given twice"));
    }
  }
  for (SupervisedChild& spec : children) {
    Child child;
    child.spec = std::move(spec);
    child.process = std::make_unique<Subprocess>();
    if (absl::Status s = child.process->Start(options_.binary, child.spec.args, LogPath(child.spec.name)); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(child.spec.name, ": ", s.message()));
    }
    children_.push_back(std::move(child));
  }
  return absl::OkStatus();
}

absl::Status ServiceSupervisor::Poll(std::vector<std::string>* events) {
  const absl::Time now = absl::Now();
  for (Child& c : children_) {
    if (!c.waiting) {
      if (c.process->Running()) continue;
      const int status = c.process->ExitStatus().value_or(-1);
      const std::string how = status >= 0 ? absl::StrCat("exited with status ", status)
                                          : absl::StrCat("was killed by signal ", -status);
      if (c.restarts >= options_.max_restarts) {
        return absl::FailedPreconditionError(absl::StrCat(c.spec.name, " ", how, " after ", c.restarts,
                                                          " restarts; see ", LogPath(c.spec.name)));
      }
      absl::Duration backoff = options_.restart_backoff;
      for (int i = 0; i < c.restarts && backoff < options_.max_backoff; ++i) backoff *= 2;
      backoff = std::min(backoff, options_.max_backoff);
      c.waiting = true;
      c.restart_at = now + backoff;
      if (events != nullptr) {
        events->push_back(absl::StrCat(c.spec.name, " ", how, "; restarting in ", absl::FormatDuration(backoff)));
      }
      continue;
    }
    if (now < c.restart_at) continue;
    c.waiting = false;
    ++c.restarts;
    if (absl::Status s = c.process->Start(options_.binary, c.spec.args, LogPath(c.spec.name)); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(c.spec.name, ": restart: ", s.message()));
    }
    if (events != nullptr) {
      events->push_back(absl::StrCat(c.spec.name, " restarted (pid ", c.process->pid(), ", restart ", c.restarts,
                                     " of at most ", options_.max_restarts, ")"));
    }
  }
  return absl::OkStatus();
}

void ServiceSupervisor::StopAll() {
  std::set<int> stages;
  for (Child& c : children_) {
    c.waiting = false;  // no restart from here on
    stages.insert(c.spec.stop_stage);
  }
  for (int stage : stages) {
    std::vector<Subprocess*> stopping;
    for (Child& c : children_) {
      if (c.spec.stop_stage != stage || !c.process->Running()) continue;
      c.process->Signal(SIGTERM);
      stopping.push_back(c.process.get());
    }
    const absl::Time until = absl::Now() + options_.stop_grace;
    auto running = [&stopping] {
      return std::any_of(stopping.begin(), stopping.end(), [](Subprocess* p) { return p->Running(); });
    };
    while (running() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
    for (Subprocess* p : stopping) p->Stop(absl::ZeroDuration());  // SIGKILL for any still there
  }
}

const ServiceSupervisor::Child* ServiceSupervisor::Find(const std::string& name) const {
  for (const Child& c : children_) {
    if (c.spec.name == name) return &c;
  }
  return nullptr;
}

int ServiceSupervisor::restarts(const std::string& name) const {
  const Child* c = Find(name);
  return c == nullptr ? 0 : c->restarts;
}

int ServiceSupervisor::pid(const std::string& name) const {
  const Child* c = Find(name);
  return c == nullptr ? -1 : c->process->pid();
}

}  // namespace dsm
