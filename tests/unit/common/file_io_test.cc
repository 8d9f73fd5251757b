// Whole-file reads and atomic writes (common/file_io.h): contents round-trip, a failed write
// leaves the old file and no temp file, errors name the path with errno's status code.
#include "common/file_io.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/file_io_test_", ::getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> Entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    return names;
  }

  std::string dir_;
};

TEST_F(FileIoTest, WritesAndReadsBackBinaryContents) {
  const std::string path = dir_ + "/blob";
  const std::string contents("a\0b\nc\xff", 6);
  ASSERT_TRUE(WriteFileAtomically(path, contents).ok());
  absl::StatusOr<std::string> back = ReadFileToString(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, contents);
  EXPECT_THAT(Entries(), ElementsAre("blob"));
}

TEST_F(FileIoTest, ReplacesAnExistingFileWhole) {
  const std::string path = dir_ + "/state.json";
  ASSERT_TRUE(WriteFileAtomically(path, std::string(10000, 'x')).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "short").ok());
  EXPECT_EQ(*ReadFileToString(path), "short");
}

TEST_F(FileIoTest, AFailedFillKeepsTheOldFileAndLeavesNoTempFile) {
  const std::string path = dir_ + "/state.json";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  const absl::Status s = WriteFileAtomicallyWith(path, [](int fd, const std::string& tmp) {
    absl::Status partial = WriteAllToFd(fd, tmp, "new but", 7);
    return partial.ok() ? absl::DataLossError("source ran dry") : partial;
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(*ReadFileToString(path), "old");
  EXPECT_THAT(Entries(), ElementsAre("state.json"));
}

TEST_F(FileIoTest, AMissingFolderIsNotFoundNamingThePath) {
  const std::string path = dir_ + "/no/such/folder/file";
  const absl::Status s = WriteFileAtomically(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
}

TEST_F(FileIoTest, ReadingAMissingFileIsNotFoundNamingIt) {
  const absl::StatusOr<std::string> r = ReadFileToString(dir_ + "/absent");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), dir_ + "/absent: cannot open");
}

TEST_F(FileIoTest, SyncDirectoryNeedsAFolder) {
  EXPECT_TRUE(SyncDirectory(dir_).ok());
  EXPECT_EQ(SyncDirectory(dir_ + "/absent").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsm
