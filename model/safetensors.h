// Safetensors files: reading (memory-mapped, single file or a sharded
// model.safetensors.index.json) and writing (atomic temp file + rename).
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// then the raw little-endian tensor bytes; offsets are relative to the byte
// after the header.
#ifndef DSM_MODEL_SAFETENSORS_H_
#define DSM_MODEL_SAFETENSORS_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsm {

// Dtype names of the format <-> LibTorch. Supported: F64 F32 F16 BF16 I64 I32
// I16 I8 U8 BOOL.
absl::StatusOr<torch::ScalarType> SafetensorsDtypeFromName(const std::string& name);
absl::StatusOr<std::string> SafetensorsDtypeName(torch::ScalarType dtype);

struct SafetensorsTensorInfo {
  std::string name;
  torch::ScalarType dtype = torch::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;
};

class MappedFile;

// One memory-mapped .safetensors file. Open() validates the whole header:
// sizes, offsets within the file, no overlapping tensors, dtype x shape ==
// byte count. Immutable after Open(): safe to use from several threads.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensor names, sorted.
  std::vector<std::string> Names() const;
  bool Contains(const std::string& name) const { return infos_.count(name) > 0; }
  // nullptr when absent.
  const SafetensorsTensorInfo* Find(const std::string& name) const;

  // A CPU tensor of the stored dtype that aliases the mapping (zero copy). The
  // mapping stays alive as long as the tensor does. READ-ONLY: the pages are
  // mapped PROT_READ, writing to the tensor crashes. Copies instead of
  // aliasing when the data is not aligned to the element size.
  absl::StatusOr<torch::Tensor> View(const std::string& name) const;

  // A fresh contiguous tensor converted to `dtype` on `device` (owns its memory).
  absl::StatusOr<torch::Tensor> Load(const std::string& name, torch::ScalarType dtype,
                                     torch::Device device = torch::kCPU) const;
  // Same, keeping the stored dtype.
  absl::StatusOr<torch::Tensor> Load(const std::string& name) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::shared_ptr<MappedFile> mapping_;
  uint64_t data_start_ = 0;
  std::map<std::string, SafetensorsTensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// The weights of a model folder: either one model.safetensors or the shards
// listed by model.safetensors.index.json ({"weight_map": {name: file}}).
// Immutable after Open(): safe to use from several threads.
class SafetensorsCheckpoint {
 public:
  // `path` is a folder (model.safetensors.index.json preferred, else
  // model.safetensors), a .safetensors file, or an .index.json file.
  static absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> Open(const std::string& path);

  std::vector<std::string> Names() const;  // sorted
  bool Contains(const std::string& name) const { return owner_.count(name) > 0; }
  const SafetensorsTensorInfo* Find(const std::string& name) const;
  // Metadata of the first file (for a single file: its metadata).
  const std::map<std::string, std::string>& metadata() const;

  absl::StatusOr<torch::Tensor> Load(const std::string& name, torch::ScalarType dtype,
                                     torch::Device device = torch::kCPU) const;

 private:
  SafetensorsCheckpoint() = default;

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;
};

// Writes `tensors` (name -> tensor, any device, any layout; stored contiguous on
// CPU in the tensor's dtype) and `metadata` to `path` atomically: a temp file in
// the same folder, fsync, rename. Names must not be empty or "__metadata__".
absl::Status WriteSafetensors(const std::string& path,
                              const std::map<std::string, torch::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace dsm

#endif  // DSM_MODEL_SAFETENSORS_H_
