// Test helper: drives a `dsm serve learner` process over gRPC — submits
// scored groups on one SubmitGroups stream (honouring credits), reads its
// state, asks for checkpoints.
#ifndef DSM_TESTS_INTEGRATION_LEARNER_CLIENT_H_
#define DSM_TESTS_INTEGRATION_LEARNER_CLIENT_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "common/grpc_client.h"
#include "dsm/v1/learner.grpc.pb.h"

namespace dsm_test {

// A loopback TCP port nobody listens on right now.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// The address in a "dsm serve ROLE: grpc ADDR metrics ADDR" line.
inline std::string ServeAddress(const std::string& line) {
  const std::size_t from = line.find("grpc ") + 5;
  return line.substr(from, line.find(" metrics") - from);
}

class LearnerClient {
 public:
  explicit LearnerClient(const std::string& address)
      : stub_(dsm::v1::Learner::NewStub(dsm::MakeChannel(address, dsm::ChannelOptions{}))) {}

  // Submits `groups` in order on one stream, each acked before the next;
  // returns the acks (fewer when the stream broke).
  std::vector<dsm::v1::GroupAck> Submit(const std::vector<dsm::v1::ScoredGroup>& groups) {
    grpc::ClientContext context;
    dsm::SetDeadline(&context, absl::Seconds(60));
    auto stream = stub_->SubmitGroups(&context);
    std::vector<dsm::v1::GroupAck> acks;
    dsm::v1::SubmitGroupsResponse response;
    int64_t credits = 0;
    for (const dsm::v1::ScoredGroup& group : groups) {
      while (credits == 0) {
        if (!stream->Read(&response)) return acks;
        credits += response.credits();
      }
      dsm::v1::SubmitGroupsRequest request;
      *request.mutable_group() = group;
      if (!stream->Write(request)) return acks;
      --credits;
      do {
        if (!stream->Read(&response)) return acks;
        credits += response.credits();
      } while (!response.has_ack());
      acks.push_back(response.ack());
    }
    stream->WritesDone();
    while (stream->Read(&response)) {
    }
    stream->Finish();
    return acks;
  }

  bool GetState(dsm::v1::LearnerState* state) {
    grpc::ClientContext context;
    dsm::SetDeadline(&context, absl::Seconds(10));
    return stub_->GetState(&context, dsm::v1::GetStateRequest(), state).ok();
  }

  // Polls GetState until `step` optimizer steps are done (false on timeout).
  bool WaitForStep(uint64_t step, absl::Duration timeout) {
    const absl::Time until = absl::Now() + timeout;
    dsm::v1::LearnerState state;
    while (absl::Now() < until) {
      if (GetState(&state) && state.step() >= step) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  grpc::Status Checkpoint(dsm::v1::CheckpointResponse* response) {
    grpc::ClientContext context;
    dsm::SetDeadline(&context, absl::Seconds(60));
    return stub_->Checkpoint(&context, dsm::v1::CheckpointRequest(), response);
  }

 private:
  std::unique_ptr<dsm::v1::Learner::Stub> stub_;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_LEARNER_CLIENT_H_
