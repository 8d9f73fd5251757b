// AdapterBulkClient: a subscriber's side of the learner's bulk endpoint
// (adapter_bulk_server.h). It keeps one TCP connection to the endpoint and,
// per offered version, receives the tensor bytes straight into the tensors'
// storage (recv(2) into place: no intermediate buffer), extending each
// tensor's CRC-32C over every piece as it arrives, and yields the version
// only when every tensor matched.
//
// A version's tensors share one buffer. Buffers are kept (at most
// `keep_buffers`) and reused once no tensor of theirs is held anywhere else
// (the registry dropped the version): a new version then touches no fresh
// pages, which page faults make expensive.
//
// Thread-safe for Interrupt() only: Fetch() is called by one thread.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_BULK_CLIENT_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_BULK_CLIENT_H_

#include <torch/torch.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dsm/v1/learner.pb.h"
#include "services/adapters/adapter_codec.h"

namespace dsm {

struct AdapterBulkClientOptions {
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration transfer_timeout = absl::Seconds(60);  // per version
  // After a failed connect, the same endpoint is not tried again for this
  // long (each offer fails at once, and the caller takes the chunks).
  absl::Duration reconnect_backoff = absl::Seconds(30);
  int keep_buffers = 4;
};

class AdapterBulkClient {
 public:
  explicit AdapterBulkClient(AdapterBulkClientOptions options = {});
  ~AdapterBulkClient();
  AdapterBulkClient(const AdapterBulkClient&) = delete;
  AdapterBulkClient& operator=(const AdapterBulkClient&) = delete;

  // Fetches the version `offer` (an AdapterChunk with `bulk` set) names, from
  // its endpoint. DataLoss when a tensor's CRC-32C does not match;
  // InvalidArgument for an inconsistent offer; Unavailable, DeadlineExceeded
  // or NotFound when the transfer could not be made (the caller falls back to
  // the chunks). After an error the connection is closed (the next Fetch
  // reconnects).
  absl::StatusOr<AdapterVersionData> Fetch(const v1::AdapterChunk& offer);

  // Ends a Fetch in progress (it fails) and every later one. From any thread.
  void Interrupt();

 private:
  absl::Status Connect(const std::string& endpoint, absl::Time deadline);
  void Close();
  // A buffer of at least `bytes`, reused if one is free.
  torch::Tensor Buffer(std::size_t bytes);

  const AdapterBulkClientOptions options_;
  std::string endpoint_;  // the connection's
  std::string unreachable_;  // the endpoint whose connect failed last
  absl::Time retry_connect_at_;
  std::vector<torch::Tensor> buffers_;
  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_BULK_CLIENT_H_
