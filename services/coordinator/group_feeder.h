// GroupFeeder: delivers the run's training groups to the learner.
//
// Groups are recorded in the RunStore (RecordGroup, status PENDING) by the
// pipeline; the feeder keeps one SubmitGroups stream open to the learner on
// a thread of its own, sends PENDING groups oldest first as the learner's
// credits allow (so the learner's memory bound holds and nothing piles up in
// the stream), and stores each ack (status, accept_sequence) with the group.
//
// Learner restarts: an ACCEPTED group is durable only once the learner's
// checkpoint covers it (GetState().checkpointed_accept_sequence >= its
// accept_sequence). Each time the stream (re)opens, the feeder re-sends the
// accepted groups that are not durable yet (same group_id: a learner that
// did not restart answers DUPLICATE), so a learner killed between two
// checkpoints loses no group and trains none twice.
//
// Thread-safe. Wake() after recording groups; Stop() (or the destructor)
// ends the stream.
#ifndef DSM_SERVICES_COORDINATOR_GROUP_FEEDER_H_
#define DSM_SERVICES_COORDINATOR_GROUP_FEEDER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc_client.h"
#include "dsm/v1/learner.grpc.pb.h"
#include "services/coordinator/run_store.h"

namespace dsm {

struct GroupFeederOptions {
  std::string learner_target;  // host:port
  ChannelOptions channel;
  absl::Duration state_deadline = absl::Seconds(10);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(3);
  uint32_t batch = 256;  // groups read from the store at a time
};

struct GroupFeederCounters {
  uint64_t sent = 0;
  uint64_t resent = 0;  // accepted groups sent again after a (re)connect
  uint64_t acks = 0;
  uint64_t reconnects = 0;
};

class GroupFeeder {
 public:
  // `store` is not owned and must outlive the feeder. Starts the thread.
  GroupFeeder(RunStore* store, GroupFeederOptions options);
  ~GroupFeeder();

  // New PENDING groups were recorded.
  void Wake();
  void Stop();
  GroupFeederCounters counters() const;

 private:
  void Run();
  // One stream's life; returns when it breaks or the feeder stops.
  absl::Status Session();

  RunStore* const store_;
  const GroupFeederOptions options_;
  std::unique_ptr<v1::Learner::Stub> stub_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  GroupFeederCounters counters_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_COORDINATOR_GROUP_FEEDER_H_
