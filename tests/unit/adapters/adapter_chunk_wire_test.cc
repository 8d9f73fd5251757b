// ParseAdapterChunk and SerializeAdapterChunk checked against protobuf's own
// parser and serialiser on random chunks cut into random pieces; malformed
// input (truncated, corrupted, hand-made) gives an error, never a crash; and
// AdapterAssembler fed from pieces rebuilds the same tensors.
#include "services/adapters/adapter_chunk_wire.h"

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>
#include <string>
#include <vector>

#include "services/adapters/adapter_codec.h"

namespace dsm {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

std::string RandomBytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string RandomText(std::mt19937_64& rng, std::size_t max) {
  std::string s(rng() % (max + 1), 'a');
  for (char& c : s) c = static_cast<char>(' ' + rng() % 95);
  return s;
}

// A chunk with every field random (values a real one would not have
// included); about one in four has no data.
v1::AdapterChunk RandomChunk(std::mt19937_64& rng) {
  v1::AdapterChunk c;
  c.set_role(static_cast<v1::AdapterRole>(rng() % 5));
  c.set_version(rng() >> (rng() % 64));
  if (rng() % 2) c.set_adapter_config_json(RandomText(rng, 300));
  c.set_tensor_name(RandomText(rng, 80));
  c.set_dtype(static_cast<v1::TensorDtype>(rng() % 4));
  for (std::size_t i = rng() % 4; i > 0; --i) c.add_shape(static_cast<int64_t>(rng() >> (rng() % 64)));
  c.set_tensor_bytes(rng() >> (rng() % 64));
  c.set_offset(rng() >> (rng() % 64));
  if (rng() % 4) c.set_data(RandomBytes(rng, rng() % 5000));
  c.set_tensor_crc32c(static_cast<uint32_t>(rng()));
  c.set_tensor_index(static_cast<uint32_t>(rng() % 1000));
  c.set_tensor_count(static_cast<uint32_t>(rng() % 1000));
  c.set_last_chunk_of_version(rng() % 2);
  if (rng() % 2) {
    c.mutable_published_at()->set_seconds(static_cast<int64_t>(rng() % 4000000000));
    c.mutable_published_at()->set_nanos(static_cast<int32_t>(rng() % 1000000000));
  }
  c.set_learner_step(rng() >> (rng() % 64));
  return c;
}

// `bytes` cut at random places (empty pieces included).
std::vector<absl::string_view> RandomPieces(std::mt19937_64& rng, const std::string& bytes) {
  std::vector<absl::string_view> pieces;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const std::size_t n = rng() % 4 == 0 ? 0 : std::min<std::size_t>(1 + rng() % 700, bytes.size() - at);
    pieces.emplace_back(bytes.data() + at, n);
    at += n;
  }
  return pieces;
}

// The parsed chunk as one message, data included.
v1::AdapterChunk Whole(const AdapterChunkView& view) {
  v1::AdapterChunk c = view.fields;
  std::string data;
  for (absl::string_view piece : view.data) data.append(piece.data(), piece.size());
  EXPECT_EQ(data.size(), view.data_size);
  c.set_data(data);
  return c;
}

absl::StatusOr<AdapterChunkView> ParseWhole(const std::string& bytes) {
  const absl::string_view piece(bytes);
  return ParseAdapterChunk(absl::MakeConstSpan(&piece, 1));
}

TEST(AdapterChunkWire, ParsesWhatProtobufSerialisesCutIntoAnyPieces) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 500; ++i) {
    const v1::AdapterChunk chunk = RandomChunk(rng);
    const std::string bytes = chunk.SerializeAsString();
    const std::vector<absl::string_view> pieces = RandomPieces(rng, bytes);
    absl::StatusOr<AdapterChunkView> parsed = ParseAdapterChunk(pieces);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->fields.data().empty());
    EXPECT_TRUE(MessageDifferencer::Equals(Whole(*parsed), chunk)) << chunk.ShortDebugString();
  }
}

TEST(AdapterChunkWire, ProtobufParsesWhatSerializeAdapterChunkWrites) {
  std::mt19937_64 rng(2);
  for (int i = 0; i < 500; ++i) {
    const v1::AdapterChunk chunk = RandomChunk(rng);
    v1::AdapterChunk fields = chunk;
    fields.clear_data();
    const std::string bytes = SerializeAdapterChunk(fields, chunk.data().data(), chunk.data().size());
    EXPECT_EQ(bytes.size(), chunk.ByteSizeLong());  // the same fields, data moved to the end
    v1::AdapterChunk by_protobuf;
    ASSERT_TRUE(by_protobuf.ParseFromString(bytes));
    EXPECT_TRUE(MessageDifferencer::Equals(by_protobuf, chunk)) << chunk.ShortDebugString();
    absl::StatusOr<AdapterChunkView> parsed = ParseAdapterChunk(RandomPieces(rng, bytes));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(MessageDifferencer::Equals(Whole(*parsed), chunk));
  }
}

TEST(AdapterChunkWire, UnknownFieldsAndARepeatedDataFieldReadAsProtobufReadsThem) {
  std::mt19937_64 rng(3);
  const v1::AdapterChunk chunk = RandomChunk(rng);
  std::string bytes = chunk.SerializeAsString();
  bytes += std::string("\xa8\x1f\x96\x01", 4);                    // field 501, varint 150
  bytes += std::string("\xb1\x1f", 2) + std::string(8, '\x07');   // field 502, 64-bit
  bytes += std::string("\xba\x1f\x03xyz", 6);                     // field 503, 3 bytes
  bytes += std::string("\xc5\x1f", 2) + std::string(4, '\x09');   // field 504, 32-bit
  bytes += std::string("\x48\x05", 2);                            // field 9 as a varint: unknown to protobuf
  bytes += std::string("\x4a\x04last", 6);                        // a second data field: the last counts
  v1::AdapterChunk by_protobuf;
  ASSERT_TRUE(by_protobuf.ParseFromString(bytes));
  EXPECT_EQ(by_protobuf.data(), "last");
  absl::StatusOr<AdapterChunkView> parsed = ParseAdapterChunk(RandomPieces(rng, bytes));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(MessageDifferencer::Equals(Whole(*parsed), by_protobuf));
  std::string unknown;
  parsed->fields.GetReflection()->GetUnknownFields(parsed->fields).SerializeToString(&unknown);
  EXPECT_EQ(unknown.size(), 4u + 10u + 6u + 6u + 2u);
}

TEST(AdapterChunkWire, EveryTruncationFailsExactlyWhenProtobufFails) {
  std::mt19937_64 rng(4);
  for (int i = 0; i < 20; ++i) {
    v1::AdapterChunk chunk = RandomChunk(rng);
    chunk.set_data(RandomBytes(rng, 40));
    const std::string bytes = chunk.SerializeAsString();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      const std::string prefix = bytes.substr(0, n);
      v1::AdapterChunk by_protobuf;
      const bool protobuf_ok = by_protobuf.ParseFromString(prefix);
      absl::StatusOr<AdapterChunkView> parsed = ParseAdapterChunk(RandomPieces(rng, prefix));
      ASSERT_EQ(parsed.ok(), protobuf_ok) << "prefix of " << n << " bytes: " << parsed.status();
      if (parsed.ok()) {
        EXPECT_TRUE(MessageDifferencer::Equals(Whole(*parsed), by_protobuf));
      }
    }
  }
}

TEST(AdapterChunkWire, CorruptedMessagesNeverParseToSomethingProtobufRejects) {
  google::protobuf::LogSilencer quiet;  // protobuf logs each string that is not UTF-8
  std::mt19937_64 rng(5);
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = RandomChunk(rng).SerializeAsString();
    if (bytes.empty()) continue;
    for (int k = 1 + rng() % 3; k > 0; --k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    v1::AdapterChunk by_protobuf;
    const bool protobuf_ok = by_protobuf.ParseFromString(bytes);
    absl::StatusOr<AdapterChunkView> parsed = ParseAdapterChunk(RandomPieces(rng, bytes));
    if (!parsed.ok()) {
      ++rejected;
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("AdapterChunk: "));
      continue;
    }
    ASSERT_TRUE(protobuf_ok) << "parsed what protobuf rejects";
    EXPECT_TRUE(MessageDifferencer::Equals(Whole(*parsed), by_protobuf));
  }
  EXPECT_GT(rejected, 100);  // the corruption did hit the structure often
}

TEST(AdapterChunkWire, MalformedInputGetsAnErrorNamingTheProblem) {
  google::protobuf::LogSilencer quiet;
  auto error = [](const std::string& bytes) { return std::string(ParseWhole(bytes).status().message()); };
  EXPECT_EQ(error(std::string("\x08", 1)), "AdapterChunk: field 1: truncated varint at byte 0");
  EXPECT_EQ(error(std::string("\x80", 1)), "AdapterChunk: truncated or overlong tag at byte 0");
  EXPECT_EQ(error(std::string("\x10\x01\x4a\x64xyz", 7)), "AdapterChunk: data: 100 bytes but 3 left at byte 2");
  EXPECT_EQ(error(std::string("\x4a\xff\xff\xff\xff\xff\x01", 7)),
            "AdapterChunk: data: truncated or overlong length at byte 0");
  EXPECT_EQ(error(std::string("\xca\x00\x00", 3)), "AdapterChunk: data: tag of more than one byte at byte 0");
  EXPECT_EQ(error(std::string("\x22\x05" "ab", 4)), "AdapterChunk: field 4: 5 bytes but 2 left at byte 0");
  EXPECT_EQ(error(std::string("\x0b\x0c", 2)), "AdapterChunk: field 1: wire type 3 not supported at byte 0");
  EXPECT_EQ(error(std::string("\x02\x00", 2)), "AdapterChunk: invalid field number 0 at byte 0");
  EXPECT_EQ(error(std::string("\x41\x00\x00", 3)), "AdapterChunk: field 8: truncated at byte 0");
  // tensor_name (a proto3 string) that is not UTF-8.
  EXPECT_THAT(error(std::string("\x22\x02\xc3\x28", 4)), HasSubstr("its fields do not parse"));
  EXPECT_TRUE(ParseWhole("").ok());  // an empty message is a chunk of defaults
}

TEST(AdapterAssembler, DataFromPiecesBuildsTheSameTensors) {
  std::mt19937_64 rng(6);
  AdapterVersionData data;
  data.role = v1::ADAPTER_ROLE_VERIFIER;
  data.version = 7;
  torch::manual_seed(7);
  data.tensors["a"] = torch::randn({33, 17});
  data.tensors["b"] = torch::randn({5, 300}).to(torch::kBFloat16);
  data.tensors["c"] = torch::randn({1}).to(torch::kHalf);
  absl::StatusOr<std::vector<std::string>> chunks = SerializeAdapterVersion(data, 999);
  ASSERT_TRUE(chunks.ok()) << chunks.status();
  AdapterAssembler assembler;
  std::optional<AdapterVersionData> out;
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    absl::StatusOr<AdapterChunkView> chunk = ParseAdapterChunk(RandomPieces(rng, (*chunks)[i]));
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    auto r = assembler.Add(chunk->fields, chunk->data);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->has_value(), i + 1 == chunks->size());
    if (r->has_value()) out = std::move(**r);
  }
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 7u);
  ASSERT_EQ(out->tensors.size(), 3u);
  for (const auto& [name, tensor] : data.tensors) {
    EXPECT_EQ(out->tensors.at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(out->tensors.at(name), tensor)) << name;
  }
}

TEST(AdapterAssembler, SerializedChunksAreTheEncodedChunks) {
  AdapterVersionData data;
  data.role = v1::ADAPTER_ROLE_GENERATOR;
  data.version = 2;
  data.adapter_config_json = R"({"r": 2})";
  data.published_at = absl::FromUnixSeconds(1700000000);
  data.tensors["x"] = torch::arange(700, torch::kFloat);
  data.tensors["y"] = torch::ones({3, 3});
  absl::StatusOr<std::vector<v1::AdapterChunk>> encoded = EncodeAdapterVersion(data, 1000);
  absl::StatusOr<std::vector<std::string>> serialized = SerializeAdapterVersion(data, 1000);
  ASSERT_TRUE(encoded.ok() && serialized.ok());
  ASSERT_EQ(encoded->size(), serialized->size());
  for (std::size_t i = 0; i < encoded->size(); ++i) {
    v1::AdapterChunk parsed;
    ASSERT_TRUE(parsed.ParseFromString((*serialized)[i]));
    EXPECT_TRUE(MessageDifferencer::Equals(parsed, (*encoded)[i])) << i;
  }
  EXPECT_TRUE(encoded->back().last_chunk_of_version());
}

TEST(AdapterAssembler, MalformedShapesAreRejectedNotAllocated) {
  v1::AdapterChunk chunk;
  chunk.set_version(1);
  chunk.set_tensor_name("t");
  chunk.set_dtype(v1::TENSOR_DTYPE_F32);
  chunk.set_tensor_count(1);
  chunk.set_tensor_bytes(16);
  chunk.add_shape(-2);
  chunk.add_shape(-2);  // (-2) * (-2) * 4 = 16, but negative
  chunk.set_data(std::string(16, 'x'));
  AdapterAssembler assembler;
  EXPECT_THAT(std::string(assembler.Add(chunk).status().message()), HasSubstr("shape does not match"));
  chunk.clear_shape();
  chunk.add_shape(int64_t{1} << 62);
  chunk.add_shape(4);  // overflows int64
  EXPECT_THAT(std::string(assembler.Add(chunk).status().message()), HasSubstr("shape does not match"));
}

}  // namespace
}  // namespace dsm
