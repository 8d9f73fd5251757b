#include "model/safetensors.h"

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dsm_safetensors_test." + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes 8-byte length + header + data, exactly as given.
  std::string WriteRaw(const std::string& name, const std::string& header, const std::string& data,
                       int64_t declared_len = -1) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << data;
    return path;
  }

  std::string ErrorOf(const std::string& path) {
    auto file = SafetensorsFile::Open(path);
    EXPECT_FALSE(file.ok()) << path << " should not open";
    return file.ok() ? "" : std::string(file.status().message());
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, ReadsEveryDtypeWrittenByThePythonReference) {
  DSM_REFERENCE_DIR_OR_RETURN(ref);
  auto file = SafetensorsFile::Open(ref + "/dtypes.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("note"), "dtypes fixture");
  torch::Tensor want = torch::arange(-6, 6, torch::kFloat).reshape({3, 4}) / 4;
  for (const char* name : {"f32", "f16", "bf16"}) {
    auto t = (*file)->Load(name, torch::kFloat);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(torch::equal(*t, want)) << name;
  }
  EXPECT_EQ((*file)->Find("f16")->dtype, torch::kHalf);
  EXPECT_EQ((*file)->Find("bf16")->dtype, torch::kBFloat16);
  auto bf16 = (*file)->View("bf16");
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(bf16->scalar_type(), torch::kBFloat16);
  auto i64 = (*file)->Load("i64");
  ASSERT_TRUE(i64.ok());
  EXPECT_TRUE(torch::equal(*i64, torch::arange(-3, 3, torch::kLong)));
  auto i32 = (*file)->Load("i32");
  ASSERT_TRUE(i32.ok());
  EXPECT_EQ(i32->scalar_type(), torch::kInt);
  EXPECT_TRUE(torch::equal(*i32, torch::arange(-3, 3, torch::kInt).reshape({2, 3})));
  auto scalar = (*file)->Load("scalar");
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(scalar->dim(), 0);
  EXPECT_EQ(scalar->item<float>(), 2.5f);
  auto empty = (*file)->Load("empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(empty->sizes().vec(), ElementsAre(0, 4));
}

TEST_F(SafetensorsTest, LoadCopiesAndConverts) {
  DSM_REFERENCE_DIR_OR_RETURN(ref);
  auto file = SafetensorsFile::Open(ref + "/dtypes.safetensors");
  ASSERT_TRUE(file.ok());
  auto half = (*file)->Load("f32", torch::kHalf);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->scalar_type(), torch::kHalf);
  auto a = (*file)->Load("f32", torch::kFloat);
  auto b = (*file)->View("f32");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->data_ptr(), b->data_ptr());  // Load owns its memory
  a->add_(1);                               // and is writable
  EXPECT_FALSE(torch::equal(*a, *b));
}

TEST_F(SafetensorsTest, ViewOutlivesTheFileObject) {
  torch::Tensor t = torch::randn({5, 7});
  const std::string path = (dir_ / "v.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, {{"t", t}}).ok());
  torch::Tensor view;
  {
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok());
    view = *(*file)->View("t");
  }
  EXPECT_TRUE(torch::equal(view, t));
}

TEST_F(SafetensorsTest, WriteThenReadIsByteIdenticalForEveryDtype) {
  std::map<std::string, torch::Tensor> tensors = {
      {"a.f32", torch::randn({3, 5})},
      {"b.bf16", torch::randn({7}).to(torch::kBFloat16)},
      {"c.f16", torch::randn({2, 3}).to(torch::kHalf)},
      {"d.i64", torch::arange(5, torch::kLong)},
      {"e.i32", torch::arange(3, torch::kInt)},
      {"f.transposed", torch::randn({4, 6}).t()},  // non-contiguous input
      {"g.f64", torch::randn({2}, torch::kDouble)},
      {"h.bool", torch::tensor({true, false, true})},
      {"i.u8", torch::arange(4, torch::kByte)},
  };
  const std::string path = (dir_ / "all.safetensors").string();
  absl::Status s = WriteSafetensors(path, tensors, {{"format", "pt"}, {"step", "7"}});
  ASSERT_TRUE(s.ok()) << s;
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("step"), "7");
  EXPECT_EQ((*file)->Names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    auto got = (*file)->Load(name);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    EXPECT_EQ(got->scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(*got, t)) << name;
    // Every tensor starts aligned to its element size.
    EXPECT_EQ((*file)->Find(name)->begin % t.element_size(), 0u) << name;
  }
  // Atomic write: no temp file left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1);
}

TEST_F(SafetensorsTest, WriterRejectsBadNamesAndDtypes) {
  const std::string path = (dir_ / "bad.safetensors").string();
  EXPECT_FALSE(WriteSafetensors(path, {{"__metadata__", torch::zeros({1})}}).ok());
  EXPECT_FALSE(WriteSafetensors(path, {{"", torch::zeros({1})}}).ok());
  absl::Status s = WriteSafetensors(path, {{"c", torch::zeros({1}, torch::kComplexFloat)}});
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"c\""));
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(SafetensorsTest, ReadsUnalignedDataByCopying) {
  // Header length 3 puts the F32 data at byte 11.
  std::string data(8, '\0');
  float values[2] = {1.5f, -2.25f};
  std::memcpy(data.data(), values, 8);
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  // Pad the header with one space so the data starts at an odd offset.
  const std::string path = WriteRaw("unaligned.safetensors", header + " ", data);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto t = (*file)->Load("x", torch::kFloat);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[0].item<float>(), 1.5f);
  EXPECT_EQ((*t)[1].item<float>(), -2.25f);
}

TEST_F(SafetensorsTest, CorruptFilesGiveClearErrors) {
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8(8, '\0');
  EXPECT_THAT(ErrorOf(WriteRaw("zero", "", "", 0)), HasSubstr("header is not JSON"));
  {
    const std::string path = (dir_ / "tiny").string();
    std::ofstream(path) << "abc";
    EXPECT_THAT(ErrorOf(path), HasSubstr("shorter than the 8-byte header length"));
  }
  EXPECT_THAT(ErrorOf(WriteRaw("len", "{" + ok_entry + "}", data8, 1 << 20)), HasSubstr("exceeds the file size"));
  EXPECT_THAT(ErrorOf(WriteRaw("huge", "{}", "", int64_t{1} << 40)), HasSubstr("exceeds the limit"));
  EXPECT_THAT(ErrorOf(WriteRaw("json", "{not json", data8)), HasSubstr("header is not JSON"));
  EXPECT_THAT(ErrorOf(WriteRaw("array", "[1,2]", "")), HasSubstr("not a JSON object"));
  EXPECT_THAT(ErrorOf(WriteRaw("beyond", R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data8)),
              HasSubstr("tensor \"t\": data_offsets [0, 16] beyond the data section (8 bytes)"));
  EXPECT_THAT(ErrorOf(WriteRaw("bytes", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8)),
              HasSubstr("needs 12 bytes but data_offsets span 8"));
  EXPECT_THAT(ErrorOf(WriteRaw("overlap",
                               R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               data8)),
              HasSubstr("overlap"));
  EXPECT_THAT(ErrorOf(WriteRaw("dtype", R"({"t":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", data8)),
              HasSubstr("unsupported dtype \"Q4\""));
  EXPECT_THAT(ErrorOf(WriteRaw("neg", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8)),
              HasSubstr("non-negative"));
  EXPECT_THAT(ErrorOf(WriteRaw("order", R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data8)),
              HasSubstr("end before begin"));
  EXPECT_THAT(ErrorOf(WriteRaw("offs", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8)),
              HasSubstr("data_offsets"));
  EXPECT_THAT(ErrorOf(WriteRaw("meta", R"({"__metadata__":{"k":1}})", "")), HasSubstr("__metadata__"));
  EXPECT_THAT(ErrorOf(WriteRaw("overflow",
                               R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                               data8)),
              HasSubstr("too large"));
  auto missing = SafetensorsFile::Open((dir_ / "nope.safetensors").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, EmptyHeaderIsAValidEmptyFile) {
  auto file = SafetensorsFile::Open(WriteRaw("empty", "{}", ""));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->Names().empty());
  EXPECT_EQ((*file)->View("x").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, ShardedCheckpointFromTheIndex) {
  DSM_REFERENCE_DIR_OR_RETURN(ref);
  const std::string model = ref + "/llama_bf16_sharded";
  auto ckpt = SafetensorsCheckpoint::Open(model);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<std::string> names = ckpt->get()->Names();
  EXPECT_EQ(names.size(), 3u + 2u * 9u);  // embed, norm, lm_head + 2 layers x (2 norms + 7 proj)
  auto shard1 = SafetensorsFile::Open(model + "/model-00001-of-00002.safetensors");
  auto shard2 = SafetensorsFile::Open(model + "/model-00002-of-00002.safetensors");
  ASSERT_TRUE(shard1.ok() && shard2.ok());
  EXPECT_FALSE((*shard1)->Names().empty());
  EXPECT_FALSE((*shard2)->Names().empty());
  EXPECT_EQ((*shard1)->Names().size() + (*shard2)->Names().size(), names.size());
  const SafetensorsTensorInfo* info = (*ckpt)->Find("model.embed_tokens.weight");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->dtype, torch::kBFloat16);
  auto t = (*ckpt)->Load(names.back(), torch::kFloat);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->scalar_type(), torch::kFloat);
  // Pointing at the index file or a single file works too.
  EXPECT_TRUE(SafetensorsCheckpoint::Open(model + "/model.safetensors.index.json").ok());
  auto single = SafetensorsCheckpoint::Open(ref + "/llama_gqa_tied");
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_TRUE((*single)->Contains("model.embed_tokens.weight"));
}

TEST_F(SafetensorsTest, BadIndexGivesClearErrors) {
  ASSERT_TRUE(WriteSafetensors((dir_ / "a.safetensors").string(), {{"x", torch::zeros({2})}}).ok());
  auto write_index = [&](const std::string& text) {
    std::ofstream((dir_ / "model.safetensors.index.json").string()) << text;
    auto ckpt = SafetensorsCheckpoint::Open(dir_.string());
    EXPECT_FALSE(ckpt.ok());
    return ckpt.ok() ? std::string() : std::string(ckpt.status().message());
  };
  EXPECT_THAT(write_index(R"({"weight_map": {"x": "missing.safetensors"}})"), HasSubstr("missing.safetensors"));
  EXPECT_THAT(write_index(R"({"weight_map": {"y": "a.safetensors"}})"), HasSubstr("does not contain it"));
  EXPECT_THAT(write_index(R"({"weight_map": {"x": "../a.safetensors"}})"), HasSubstr("not a plain file name"));
  EXPECT_THAT(write_index(R"({"metadata": {}})"), HasSubstr("weight_map"));
  EXPECT_THAT(write_index("{"), HasSubstr("not JSON"));
  fs::remove(dir_ / "model.safetensors.index.json");
  fs::remove(dir_ / "a.safetensors");
  auto none = SafetensorsCheckpoint::Open(dir_.string());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsm
