// The wire form of one adapter version: a run of AdapterChunk messages, each
// at most kMaxAdapterChunkBytes of tensor data, with a CRC-32C per tensor.
//
// EncodeAdapterVersion() cuts a version into chunks once;
// SerializeAdapterVersion() cuts it into serialised chunks (the publisher sends
// the same bytes to every subscriber); AdapterAssembler puts a stream of chunks
// back together, checking order, sizes and checksums, and yields whole
// versions. None touches gRPC.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_CODEC_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_CODEC_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "dsm/v1/learner.pb.h"

namespace dsm {

inline constexpr std::size_t kMaxAdapterChunkBytes = 4 << 20;  // the wire contract

// One adapter version, as published or as received.
struct AdapterVersionData {
  v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
  uint64_t version = 0;
  uint64_t learner_step = 0;
  std::string adapter_config_json;             // PEFT adapter_config.json
  std::map<std::string, torch::Tensor> tensors;  // PEFT name -> CPU tensor
  absl::Time published_at;
};

// The torch type of a wire dtype; InvalidArgument for an unknown one.
absl::StatusOr<torch::ScalarType> TorchDtypeFromWire(v1::TensorDtype type);

// Chunks of `data` in tensor-name order. Tensors must be F32, F16 or BF16.
absl::StatusOr<std::vector<v1::AdapterChunk>> EncodeAdapterVersion(const AdapterVersionData& data,
                                                                   std::size_t chunk_bytes = kMaxAdapterChunkBytes);

// Where the tensor bytes lie in the serialised chunks, for the bulk path:
// every tensor's description (its offset in the tensors' bytes concatenated
// in order, size and CRC-32C), and how many tensor bytes end each chunk.
struct AdapterPayloadLayout {
  std::vector<v1::AdapterBulkTensor> tensors;
  std::vector<std::size_t> chunk_data_bytes;  // one per chunk: its last bytes are tensor data
  uint64_t total_bytes = 0;
};

// The same chunks, each serialised (adapter_chunk_wire.h: `data` last, copied
// once from the tensor); with `layout`, also where their data lies (the
// checksums are computed once for both).
absl::StatusOr<std::vector<std::string>> SerializeAdapterVersion(const AdapterVersionData& data,
                                                                 std::size_t chunk_bytes = kMaxAdapterChunkBytes,
                                                                 AdapterPayloadLayout* layout = nullptr);

// Reassembles versions from a stream of chunks. Not thread-safe.
class AdapterAssembler {
 public:
  // Feeds the next chunk. Returns the version when `chunk` completes one,
  // nullopt while more chunks are needed, or an error (DataLoss for a checksum
  // mismatch, InvalidArgument for chunks out of order or inconsistent sizes);
  // after an error the partial version is dropped and the next chunk must
  // start a new version (offset 0 of tensor 0).
  absl::StatusOr<std::optional<AdapterVersionData>> Add(const v1::AdapterChunk& chunk);
  // The same for a chunk whose data lies in `data` (pieces, in order; the
  // chunk's own data field is ignored), as ParseAdapterChunk() leaves it: the
  // bytes are copied once, into the tensor being assembled, and checksummed
  // on the way.
  absl::StatusOr<std::optional<AdapterVersionData>> Add(const v1::AdapterChunk& chunk,
                                                        absl::Span<const absl::string_view> data);
  // True between the first and the last chunk of a version.
  bool in_version() const { return pending_.has_value(); }

 private:
  void Reset();

  std::optional<AdapterVersionData> pending_;
  std::string tensor_name_;
  torch::Tensor tensor_;   // the tensor being received, written in place
  uint64_t received_ = 0;  // its bytes so far
  uint64_t tensor_bytes_ = 0;
  uint32_t tensor_crc_ = 0;   // as sent
  uint32_t running_crc_ = 0;  // of the bytes received
  uint32_t next_tensor_index_ = 0;
  uint32_t tensor_count_ = 0;
  v1::TensorDtype dtype_ = v1::TENSOR_DTYPE_UNSPECIFIED;
  std::vector<int64_t> shape_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_CODEC_H_
