// The wire form of one AdapterChunk, written and read without a protobuf copy
// of its tensor data.
//
// SerializeAdapterChunk() writes the chunk's fields as protobuf does, then its
// `data` field last (protobuf parsers accept fields in any order), straight
// from the tensor's bytes. ParseAdapterChunk() reads a message that lies in
// pieces (the slices gRPC received it in): every field but `data` is parsed by
// protobuf itself, `data` is left where it lies and returned as views of those
// pieces, so the caller copies it once, to where it belongs. Neither touches
// gRPC. Thread-safe (no state).
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_CHUNK_WIRE_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_CHUNK_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dsm/v1/learner.pb.h"

namespace dsm {

// A parsed chunk whose data was not copied.
struct AdapterChunkView {
  v1::AdapterChunk fields;                // every field but data (data is empty)
  std::vector<absl::string_view> data;    // data's bytes, in order, in the parsed pieces
  std::size_t data_size = 0;              // their total size
};

// The serialised AdapterChunk of `fields` (its own data must be empty) with
// `size` bytes at `data` as its data field.
std::string SerializeAdapterChunk(const v1::AdapterChunk& fields, const char* data, std::size_t size);

// Parses the AdapterChunk serialised in `pieces` (concatenated in order). The
// views in the result point into `pieces`, which must outlive them. Fields
// come in any order; a repeated data field counts last (as in protobuf).
// InvalidArgument, naming the byte offset, for a message protobuf would not
// parse either (a truncated tag, length or field, an invalid field number,
// invalid UTF-8 in a string field), for groups (wire types 3 and 4, never in
// this message), and for a data field whose tag takes more than one byte or
// whose length more than five (no protobuf serialiser writes those).
absl::StatusOr<AdapterChunkView> ParseAdapterChunk(absl::Span<const absl::string_view> pieces);

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_CHUNK_WIRE_H_
