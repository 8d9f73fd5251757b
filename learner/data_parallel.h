// Data parallelism for the learner: several ranks, each with the whole
// adapter, train on disjoint shards of one global batch and sum their
// gradients with c10d collectives (ProcessGroupGloo on CPU), so that every
// rank applies the same update. Uses LibTorch's own c10d, not our own
// transport.
//
// Rendezvous: rank 0 hosts a c10d::TCPStore at `rendezvous_address`
// ("host:port"); every other rank connects to it as a client (retrying until
// `timeout`); the process group then exchanges its Gloo endpoints through the
// store. The rank count comes from the options (config), never discovered.
//
// world_size == 1 needs no store and no process group: every collective is a
// no-op, so a single learner has no network dependency at all.
//
// Thread safety: none. Collectives must be called in the same order with the
// same shapes on every rank (c10d's rule); a rank that errors inside a step
// leaves the group unusable: the process should exit and be restarted (the
// trainer then resumes from its last checkpoint).
#ifndef DSM_LEARNER_DATA_PARALLEL_H_
#define DSM_LEARNER_DATA_PARALLEL_H_

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsm {

struct DataParallelOptions {
  int world_size = 1;  // learner ranks, >= 1
  int rank = 0;        // this rank, in [0, world_size)
  // host:port of rank 0's TCPStore. Rank 0 listens on that port (all
  // interfaces); port 0 lets rank 0 pick a free one (then only useful when
  // the other ranks are told the port some other way: tests).
  std::string rendezvous_address = "127.0.0.1:29500";
  // The address this rank's Gloo endpoint binds to and advertises. Empty: the
  // loopback address when the rendezvous host is loopback, else the
  // machine's hostname as Gloo resolves it.
  std::string local_address;
  // "gloo" (CPU tensors). "nccl" is for CUDA LibTorch builds compiled with
  // USE_C10D_NCCL; elsewhere it is refused with Unimplemented.
  std::string backend = "gloo";
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // rendezvous and each collective

  // Names the bad field and the allowed range.
  absl::Status Validate() const;
};

// Parses "host:port" (IPv6 hosts in brackets: "[::1]:29500").
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& address);

// Owns the store connection and the process group. Not copyable.
class DataParallel {
 public:
  // Rendezvous by address (blocks until every rank joined, or `timeout`).
  static absl::StatusOr<std::unique_ptr<DataParallel>> Create(const DataParallelOptions& options);
  // Joins through a store the caller made (a TCPStore server it hosts, a
  // HashStore shared by threads, ...). options.rendezvous_address is unused.
  static absl::StatusOr<std::unique_ptr<DataParallel>> CreateWithStore(
      const c10::intrusive_ptr<c10d::Store>& store, const DataParallelOptions& options);

  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  // The port rank 0's store listens on (the chosen one when configured with
  // port 0); 0 on other ranks and for world_size 1.
  uint16_t store_port() const { return store_port_; }

  // In-place element-wise SUM over ranks of each tensor (the same shapes and
  // dtypes on every rank; CPU or CUDA: they are copied to the backend's
  // device when needed). Tensors are flattened into one buffer per dtype, so
  // the call is one collective per dtype.
  absl::Status AllReduceSum(std::vector<torch::Tensor>& tensors);
  // SUM of the gradients of `params` over ranks (a parameter without a
  // gradient contributes zeros and gets one). The trainer normalises its
  // losses by global counts, so the sum is the gradient of the global batch.
  absl::Status AllReduceGradients(const std::vector<torch::Tensor>& params);
  // Copies `root`'s tensors into every rank's tensors, in place.
  absl::Status Broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  // Rank `root`'s string on every rank.
  absl::StatusOr<std::string> BroadcastString(const std::string& value, int root = 0);
  absl::Status Barrier();

 private:
  explicit DataParallel(const DataParallelOptions& options) : options_(options) {}
  absl::Status Join(const c10::intrusive_ptr<c10d::Store>& store);
  // `t` itself, or a copy on the device the backend reduces on.
  torch::Tensor OnGroupDevice(const torch::Tensor& t) const;

  DataParallelOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  uint16_t store_port_ = 0;
};

}  // namespace dsm

#endif  // DSM_LEARNER_DATA_PARALLEL_H_
