// Test helper: a scripted worker on the Coordinator.Lease stream. A reader
// thread queues every CoordinatorMessage; the test takes them with Next().
#ifndef DSM_TESTS_INTEGRATION_COORDINATOR_CLIENT_H_
#define DSM_TESTS_INTEGRATION_COORDINATOR_CLIENT_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "dsm/v1/coordinator.grpc.pb.h"

namespace dsm_test {

class ScriptedWorker {
 public:
  ScriptedWorker(dsm::v1::Coordinator::Stub* stub, const std::string& worker_id, int capacity,
                 std::vector<std::string> active = {}) {
    stream_ = stub->Lease(&context_);
    dsm::v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker_id);
    hello.mutable_hello()->add_roles(dsm::v1::ADAPTER_ROLE_GENERATOR);
    hello.mutable_hello()->set_capacity(capacity);
    for (const std::string& id : active) hello.mutable_hello()->add_active_lease_ids(id);
    Start(hello);
  }
  // A worker whose first message is `first` (to test bad openings).
  ScriptedWorker(dsm::v1::Coordinator::Stub* stub, const dsm::v1::WorkerMessage& first) {
    stream_ = stub->Lease(&context_);
    Start(first);
  }
  ~ScriptedWorker() {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  // The next message, waiting up to `timeout`.
  std::optional<dsm::v1::CoordinatorMessage> Next(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this] { return !inbox_.empty() || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    if (inbox_.empty()) return std::nullopt;
    dsm::v1::CoordinatorMessage m = std::move(inbox_.front());
    inbox_.pop_front();
    return m;
  }
  // The next n grants (other messages in between are kept in `others`).
  std::vector<dsm::v1::LeaseGrant> Grants(int n, absl::Duration timeout = absl::Seconds(10)) {
    std::vector<dsm::v1::LeaseGrant> grants;
    for (auto it = others.begin(); it != others.end() && static_cast<int>(grants.size()) < n;) {
      if (it->has_grant()) {
        grants.push_back(it->grant());
        it = others.erase(it);
      } else {
        ++it;
      }
    }
    const absl::Time until = absl::Now() + timeout;
    while (static_cast<int>(grants.size()) < n && absl::Now() < until) {
      auto m = Next(until - absl::Now());
      if (!m.has_value()) break;
      if (m->has_grant()) {
        grants.push_back(m->grant());
      } else {
        others.push_back(*m);
      }
    }
    return grants;
  }

  bool Send(const dsm::v1::WorkerMessage& m) { return stream_->Write(m); }
  bool Result(const std::string& lease_id, int tag) {
    dsm::v1::WorkerMessage m;
    m.mutable_result()->set_lease_id(lease_id);
    m.mutable_result()->mutable_generated()->add_prompt_token_ids(tag);
    return Send(m);
  }
  // Half-closes and returns the stream's status.
  grpc::Status Finish() {
    stream_->WritesDone();
    if (reader_.joinable()) reader_.join();
    return stream_->Finish();
  }
  // Waits for the server to end the stream; returns its status.
  grpc::Status AwaitEnd() {
    if (reader_.joinable()) reader_.join();
    return stream_->Finish();
  }
  // Drops the connection abruptly (a killed worker).
  void Abort() {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  std::vector<dsm::v1::CoordinatorMessage> others;

 private:
  void Start(const dsm::v1::WorkerMessage& first) {
    stream_->Write(first);
    reader_ = std::thread([this] {
      dsm::v1::CoordinatorMessage m;
      while (stream_->Read(&m)) {
        absl::MutexLock lock(&mu_);
        inbox_.push_back(m);
      }
      absl::MutexLock lock(&mu_);
      ended_ = true;
    });
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<dsm::v1::WorkerMessage, dsm::v1::CoordinatorMessage>> stream_;
  std::thread reader_;
  absl::Mutex mu_;
  std::deque<dsm::v1::CoordinatorMessage> inbox_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_COORDINATOR_CLIENT_H_
