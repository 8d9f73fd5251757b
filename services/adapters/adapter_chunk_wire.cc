#include "services/adapters/adapter_chunk_wire.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

constexpr uint32_t kDataField = v1::AdapterChunk::kDataFieldNumber;
constexpr uint32_t kLengthDelimited = 2;
constexpr int kMaxVarintBytes = 10;
constexpr int kMaxLengthBytes = 5;  // protobuf's limit for a field's length (< 2 GiB)

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Reads bytes across the pieces of one message.
class PieceReader {
 public:
  explicit PieceReader(absl::Span<const absl::string_view> pieces) : pieces_(pieces) {
    for (absl::string_view p : pieces_) total_ += p.size();
    SkipEmpty();
  }

  bool done() const { return position_ == total_; }
  std::size_t position() const { return position_; }
  std::size_t remaining() const { return total_ - position_; }

  // A varint of at most `max_bytes` bytes; its bytes are appended to `raw`
  // if not null.
  bool Varint(uint64_t* value, std::string* raw, int max_bytes = kMaxVarintBytes) {
    *value = 0;
    for (int i = 0; i < max_bytes && !done(); ++i) {
      const auto byte = static_cast<uint8_t>(pieces_[piece_][offset_]);
      Advance(1);
      if (raw != nullptr) raw->push_back(static_cast<char>(byte));
      *value |= static_cast<uint64_t>(byte & 0x7F) << (7 * i);
      if ((byte & 0x80) == 0) return true;
    }
    return false;  // truncated, or too long
  }

  // The next `n` bytes (n <= remaining()), appended to `out` or, with `views`,
  // as views of the pieces.
  void Copy(std::size_t n, std::string* out) {
    Take(n, [out](absl::string_view v) { out->append(v.data(), v.size()); });
  }
  void View(std::size_t n, std::vector<absl::string_view>* views) {
    Take(n, [views](absl::string_view v) { views->push_back(v); });
  }

 private:
  template <typename Fn>
  void Take(std::size_t n, Fn&& fn) {
    while (n > 0) {
      const std::size_t k = std::min(n, pieces_[piece_].size() - offset_);
      fn(pieces_[piece_].substr(offset_, k));
      Advance(k);
      n -= k;
    }
  }

  void Advance(std::size_t n) {
    offset_ += n;
    position_ += n;
    SkipEmpty();
  }

  void SkipEmpty() {
    while (piece_ < pieces_.size() && offset_ == pieces_[piece_].size()) {
      ++piece_;
      offset_ = 0;
    }
  }

  const absl::Span<const absl::string_view> pieces_;
  std::size_t total_ = 0;
  std::size_t piece_ = 0;
  std::size_t offset_ = 0;
  std::size_t position_ = 0;
};

absl::Status Malformed(std::size_t at, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("AdapterChunk: ", what, " at byte ", at));
}

}  // namespace

std::string SerializeAdapterChunk(const v1::AdapterChunk& fields, const char* data, std::size_t size) {
  std::string out;
  out.reserve(fields.ByteSizeLong() + 1 + kMaxVarintBytes + size);
  fields.AppendToString(&out);
  if (size > 0) {
    AppendVarint((kDataField << 3) | kLengthDelimited, &out);
    AppendVarint(size, &out);
    out.append(data, size);
  }
  return out;
}

absl::StatusOr<AdapterChunkView> ParseAdapterChunk(absl::Span<const absl::string_view> pieces) {
  PieceReader reader(pieces);
  AdapterChunkView view;
  std::string fields;  // every field but data, as it was on the wire
  while (!reader.done()) {
    const std::size_t at = reader.position();
    uint64_t tag = 0;
    std::string raw_tag;
    if (!reader.Varint(&tag, &raw_tag)) return Malformed(at, "truncated or overlong tag");
    const uint64_t field = tag >> 3;
    const uint32_t wire = tag & 7;
    if (field == 0 || tag > std::numeric_limits<uint32_t>::max()) {
      return Malformed(at, absl::StrCat("invalid field number ", field));
    }
    uint64_t length = 0;
    if (field == kDataField && wire == kLengthDelimited) {
      if (raw_tag.size() != 1) return Malformed(at, "data: tag of more than one byte");
      if (!reader.Varint(&length, nullptr, kMaxLengthBytes)) return Malformed(at, "data: truncated or overlong length");
      if (length > reader.remaining()) {
        return Malformed(at, absl::StrCat("data: ", length, " bytes but ", reader.remaining(), " left"));
      }
      view.data.clear();
      reader.View(length, &view.data);
      view.data_size = length;
      continue;
    }
    fields += raw_tag;
    switch (wire) {
      case 0:  // varint
        if (!reader.Varint(&length, &fields)) return Malformed(at, absl::StrCat("field ", field, ": truncated varint"));
        break;
      case 1:  // 64-bit
      case 5:  // 32-bit
        length = wire == 1 ? 8 : 4;
        if (length > reader.remaining()) return Malformed(at, absl::StrCat("field ", field, ": truncated"));
        reader.Copy(length, &fields);
        break;
      case kLengthDelimited:
        if (!reader.Varint(&length, &fields)) return Malformed(at, absl::StrCat("field ", field, ": truncated length"));
        if (length > reader.remaining()) {
          return Malformed(at, absl::StrCat("field ", field, ": ", length, " bytes but ", reader.remaining(), " left"));
        }
        reader.Copy(length, &fields);
        break;
      default:  // groups (3, 4) have no place in this message; 6 and 7 do not exist
        return Malformed(at, absl::StrCat("field ", field, ": wire type ", wire, " not supported"));
    }
  }
  if (!view.fields.ParseFromString(fields)) {
    return absl::InvalidArgumentError("AdapterChunk: its fields do not parse (a string field that is not UTF-8?)");
  }
  return view;
}

}  // namespace dsm
