#include "model/logits_cli.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/safetensors.h"
#include "tests/unit/model/reference_fixtures.h"

namespace dsm {
namespace {

using ::dsm::model_test::Expected;
using ::dsm::model_test::MaxAbsDiff;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;

class LogitsCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = model_test::ReferenceDir();
    ASSERT_FALSE(ref_.empty());
    out_ = (std::filesystem::temp_directory_path() / ("dsm_logits_cli." + std::to_string(::getpid()) +
                                                       ".safetensors"))
               .string();
  }
  void TearDown() override { std::filesystem::remove(out_); }
  std::string ref_;
  std::string out_;
};

TEST_F(LogitsCommand, WritesLogitsEqualToThePythonReference) {
  const std::string dir = ref_ + "/qwen3_qknorm";
  torch::Tensor ids = Expected(dir, "ids")[1];
  std::vector<int32_t> list;
  for (int64_t i = 0; i < ids.size(0); ++i) list.push_back(static_cast<int32_t>(ids[i].item<int64_t>()));
  std::ostringstream err;
  ASSERT_EQ(RunLogitsCommand(dir, list, out_, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  auto file = SafetensorsFile::Open(out_);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT((*file)->Names(), ElementsAre("logits"));
  const SafetensorsTensorInfo* info = (*file)->Find("logits");
  EXPECT_EQ(info->dtype, torch::kFloat);
  EXPECT_THAT(info->shape, ElementsAre(static_cast<int64_t>(list.size()), 300));
  EXPECT_LT(MaxAbsDiff(*(*file)->Load("logits"), Expected(dir, "logits")[1]), 1e-4);
}

TEST_F(LogitsCommand, BadInputIsOneClearLine) {
  std::ostringstream err;
  EXPECT_EQ(RunLogitsCommand(ref_ + "/missing_model", {1, 2}, out_, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("missing_model/config.json: cannot open"));
  const std::string line = err.str();
  EXPECT_THAT(line, EndsWith("\n"));
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);

  err.str("");
  EXPECT_EQ(RunLogitsCommand(ref_ + "/llama_gqa_tied", {1, 300}, out_, err), 2);
  EXPECT_EQ(err.str(), "dsm logits: id 300 at position 1 is outside the vocabulary [0, 300)\n");

  err.str("");
  EXPECT_EQ(RunLogitsCommand(ref_ + "/llama_gqa_tied", {}, out_, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("no token ids"));

  err.str("");
  EXPECT_EQ(RunLogitsCommand(ref_ + "/llama_gqa_tied", {1}, "/nonexistent_dir/x.safetensors", err), 2);
  EXPECT_THAT(err.str(), HasSubstr("/nonexistent_dir/x.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(out_));
}

}  // namespace
}  // namespace dsm
