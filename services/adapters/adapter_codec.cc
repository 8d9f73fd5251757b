#include "services/adapters/adapter_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "services/adapters/adapter_chunk_wire.h"
#include "google/protobuf/util/time_util.h"

namespace dsm {
namespace {

absl::StatusOr<v1::TensorDtype> WireDtype(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return v1::TENSOR_DTYPE_F32;
    case torch::kHalf: return v1::TENSOR_DTYPE_F16;
    case torch::kBFloat16: return v1::TENSOR_DTYPE_BF16;
    default: return absl::InvalidArgumentError(absl::StrCat("adapter tensors must be F32, F16 or BF16, not ",
                                                            c10::toString(type)));
  }
}

// Cuts `data` into chunks: `emit(fields, bytes, n)` once per chunk, in order,
// with every field but `data` set and the chunk's `n` tensor bytes at `bytes`.
// With `layout`, also describes every tensor and chunk there.
template <typename Emit>
absl::Status ForEachChunk(const AdapterVersionData& data, std::size_t chunk_bytes, Emit&& emit,
                          AdapterPayloadLayout* layout = nullptr) {
  if (chunk_bytes == 0 || chunk_bytes > kMaxAdapterChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat("chunk size ", chunk_bytes, " is outside [1, ",
                                                   kMaxAdapterChunkBytes, "]"));
  }
  if (data.tensors.empty()) return absl::InvalidArgumentError("an adapter version needs at least one tensor");
  const uint32_t count = static_cast<uint32_t>(data.tensors.size());
  uint32_t index = 0;
  const auto published = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(data.published_at));
  bool first = true;
  for (const auto& [name, tensor] : data.tensors) {
    absl::StatusOr<v1::TensorDtype> dtype = WireDtype(tensor.scalar_type());
    if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", dtype.status().message()));
    const torch::Tensor bytes = tensor.detach().to(torch::kCPU).contiguous();
    const auto* base = static_cast<const char*>(bytes.data_ptr());
    const std::size_t total = bytes.numel() * bytes.element_size();
    const uint32_t crc = Crc32c(base, total);
    if (layout != nullptr) {
      v1::AdapterBulkTensor& t = layout->tensors.emplace_back();
      t.set_name(name);
      t.set_dtype(*dtype);
      for (int64_t d : bytes.sizes()) t.add_shape(d);
      t.set_offset(layout->total_bytes);
      t.set_size(total);
      t.set_crc32c(crc);
      layout->total_bytes += total;
    }
    std::size_t offset = 0;
    do {
      const std::size_t n = std::min(chunk_bytes, total - offset);
      v1::AdapterChunk c;
      c.set_role(data.role);
      c.set_version(data.version);
      c.set_learner_step(data.learner_step);
      if (first) {
        c.set_adapter_config_json(data.adapter_config_json);
        *c.mutable_published_at() = published;
        first = false;
      }
      c.set_tensor_name(name);
      c.set_dtype(*dtype);
      for (int64_t d : bytes.sizes()) c.add_shape(d);
      c.set_tensor_bytes(total);
      c.set_offset(offset);
      c.set_tensor_crc32c(crc);
      c.set_tensor_index(index);
      c.set_tensor_count(count);
      offset += n;
      c.set_last_chunk_of_version(index + 1 == count && offset == total);
      if (layout != nullptr) layout->chunk_data_bytes.push_back(n);
      emit(std::move(c), base + offset - n, n);
    } while (offset < total);
    ++index;
  }
  return absl::OkStatus();
}

// Copies `size` bytes to `to` and extends `crc` over them, a cache-sized block
// at a time, so that the checksum reads the bytes while they are still cached.
uint32_t CopyAndExtendCrc(uint32_t crc, char* to, const char* from, std::size_t size) {
  constexpr std::size_t kBlock = 16 << 10;
  while (size > 0) {
    const std::size_t n = std::min(size, kBlock);
    std::memcpy(to, from, n);
    crc = Crc32cExtend(crc, to, n);
    to += n;
    from += n;
    size -= n;
  }
  return crc;
}

}  // namespace

absl::StatusOr<torch::ScalarType> TorchDtypeFromWire(v1::TensorDtype type) {
  switch (type) {
    case v1::TENSOR_DTYPE_F32: return torch::kFloat;
    case v1::TENSOR_DTYPE_F16: return torch::kHalf;
    case v1::TENSOR_DTYPE_BF16: return torch::kBFloat16;
    default: return absl::InvalidArgumentError(absl::StrCat("unknown tensor dtype ", static_cast<int>(type)));
  }
}

absl::StatusOr<std::vector<v1::AdapterChunk>> EncodeAdapterVersion(const AdapterVersionData& data,
                                                                   std::size_t chunk_bytes) {
  std::vector<v1::AdapterChunk> chunks;
  absl::Status status = ForEachChunk(data, chunk_bytes, [&chunks](v1::AdapterChunk c, const char* bytes, std::size_t n) {
    c.set_data(bytes, n);
    chunks.push_back(std::move(c));
  });
  if (!status.ok()) return status;
  return chunks;
}

absl::StatusOr<std::vector<std::string>> SerializeAdapterVersion(const AdapterVersionData& data,
                                                                 std::size_t chunk_bytes,
                                                                 AdapterPayloadLayout* layout) {
  std::vector<std::string> chunks;
  if (layout != nullptr) *layout = AdapterPayloadLayout();
  absl::Status status = ForEachChunk(
      data, chunk_bytes,
      [&chunks](v1::AdapterChunk c, const char* bytes, std::size_t n) {
        chunks.push_back(SerializeAdapterChunk(c, bytes, n));
      },
      layout);
  if (!status.ok()) return status;
  return chunks;
}

void AdapterAssembler::Reset() {
  pending_.reset();
  tensor_ = torch::Tensor();
  received_ = 0;
  tensor_name_.clear();
  next_tensor_index_ = 0;
  tensor_count_ = 0;
}

absl::StatusOr<std::optional<AdapterVersionData>> AdapterAssembler::Add(const v1::AdapterChunk& chunk) {
  const absl::string_view data = chunk.data();
  return Add(chunk, absl::MakeConstSpan(&data, 1));
}

absl::StatusOr<std::optional<AdapterVersionData>> AdapterAssembler::Add(const v1::AdapterChunk& chunk,
                                                                        absl::Span<const absl::string_view> data) {
  std::size_t size = 0;
  for (absl::string_view piece : data) size += piece.size();
  auto fail = [this](absl::Status status) {
    Reset();
    return status;
  };
  const bool starts_version = chunk.tensor_index() == 0 && chunk.offset() == 0;
  if (!pending_) {
    if (!starts_version) {
      return fail(absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk.tensor_name(), " at offset ",
                                                          chunk.offset(), " does not start a version")));
    }
    pending_.emplace();
    pending_->role = chunk.role();
    pending_->version = chunk.version();
    pending_->learner_step = chunk.learner_step();
    pending_->adapter_config_json = chunk.adapter_config_json();
    pending_->published_at = absl::FromUnixNanos(
        google::protobuf::util::TimeUtil::TimestampToNanoseconds(chunk.published_at()));
    tensor_count_ = chunk.tensor_count();
    if (tensor_count_ == 0) return fail(absl::InvalidArgumentError("tensor_count is 0"));
  } else if (chunk.version() != pending_->version || chunk.role() != pending_->role) {
    return fail(absl::InvalidArgumentError(absl::StrCat("chunk of version ", chunk.version(),
                                                        " inside version ", pending_->version)));
  }
  if (chunk.offset() == 0) {
    if (chunk.tensor_index() != next_tensor_index_ || chunk.tensor_index() >= tensor_count_) {
      return fail(absl::InvalidArgumentError(absl::StrCat("tensor ", chunk.tensor_index(), " (", chunk.tensor_name(),
                                                          ") arrived, expected ", next_tensor_index_)));
    }
    tensor_name_ = chunk.tensor_name();
    tensor_bytes_ = chunk.tensor_bytes();
    tensor_crc_ = chunk.tensor_crc32c();
    dtype_ = chunk.dtype();
    shape_.assign(chunk.shape().begin(), chunk.shape().end());
    absl::StatusOr<torch::ScalarType> dtype = TorchDtypeFromWire(dtype_);
    if (!dtype.ok()) return fail(dtype.status());
    int64_t bytes = static_cast<int64_t>(c10::elementSize(*dtype));
    bool overflow = false;
    for (int64_t d : shape_) overflow = overflow || d < 0 || __builtin_mul_overflow(bytes, d, &bytes);
    if (overflow || bytes != static_cast<int64_t>(tensor_bytes_)) {
      return fail(absl::InvalidArgumentError(absl::StrCat(tensor_name_, ": shape does not match ", tensor_bytes_,
                                                          " bytes")));
    }
    try {
      tensor_ = torch::empty(shape_, torch::TensorOptions().dtype(*dtype));
    } catch (const std::exception& e) {
      return fail(absl::ResourceExhaustedError(absl::StrCat(tensor_name_, ": allocating ", tensor_bytes_,
                                                            " bytes: ", e.what())));
    }
    received_ = 0;
    running_crc_ = 0;
  } else if (!tensor_.defined() || chunk.tensor_name() != tensor_name_ || chunk.offset() != received_) {
    return fail(absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk.tensor_name(), " at offset ",
                                                        chunk.offset(), " out of order")));
  }
  if (size > kMaxAdapterChunkBytes) {
    return fail(absl::InvalidArgumentError(absl::StrCat(tensor_name_, ": ", size, " bytes of data in one chunk > ",
                                                        kMaxAdapterChunkBytes)));
  }
  if (received_ + size > tensor_bytes_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(tensor_name_, ": more bytes than tensor_bytes ",
                                                        tensor_bytes_)));
  }
  for (absl::string_view piece : data) {
    running_crc_ = CopyAndExtendCrc(running_crc_, static_cast<char*>(tensor_.data_ptr()) + received_, piece.data(),
                                    piece.size());
    received_ += piece.size();
  }
  if (received_ < tensor_bytes_) return std::optional<AdapterVersionData>();

  // The tensor is complete: check it and keep it.
  if (running_crc_ != tensor_crc_) {
    return fail(absl::DataLossError(absl::StrCat("adapter version ", chunk.version(), " tensor ", tensor_name_,
                                                 ": CRC-32C mismatch")));
  }
  pending_->tensors.emplace(tensor_name_, std::move(tensor_));
  tensor_ = torch::Tensor();
  ++next_tensor_index_;
  if (next_tensor_index_ < tensor_count_) return std::optional<AdapterVersionData>();
  if (!chunk.last_chunk_of_version()) {
    return fail(absl::InvalidArgumentError("the last tensor's last chunk is not marked last_chunk_of_version"));
  }
  std::optional<AdapterVersionData> done = std::move(pending_);
  Reset();
  return done;
}

}  // namespace dsm
