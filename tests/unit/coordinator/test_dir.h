// A fresh temporary folder per test, removed at the end.
#ifndef DSM_TESTS_UNIT_COORDINATOR_TEST_DIR_H_
#define DSM_TESTS_UNIT_COORDINATOR_TEST_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace dsm {

class TestDir {
 public:
  TestDir() {
    std::string pattern = ::testing::TempDir() + "/dsm_coord_XXXXXX";
    char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TestDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace dsm

#endif  // DSM_TESTS_UNIT_COORDINATOR_TEST_DIR_H_
