#include "learner/checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "model/lora.h"
#include "model/model_config.h"
#include "tests/unit/learner/trainer_test_util.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = learner_test::LoadTinyModel();
    ASSERT_NE(m_.model, nullptr);
    root_ = fs::temp_directory_path() / ("dsm_checkpoint_test." + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  const LoraAdapter& adapter() { return *m_.model->adapter(m_.adapter); }

  OptimizerTensors Optimizer(float fill) {
    OptimizerTensors out;
    for (const auto& [name, t] : adapter().NamedTensors()) {
      out[name + ".exp_avg"] = torch::full_like(t, fill);
      out[name + ".exp_avg_sq"] = torch::full_like(t, fill * fill);
      out[name + ".step"] = torch::tensor({int64_t{7}}, torch::kLong);
    }
    return out;
  }

  std::string Write(int64_t step) {
    TrainerState state;
    state.step = step;
    state.adapter_version = step + 100;
    state.data_cursor = "cursor " + std::to_string(step);
    state.seed = 42;
    auto path = WriteCheckpoint(root_.string(), adapter(), Optimizer(static_cast<float>(step)), state);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.ok() ? *path : "";
  }

  int64_t LatestStep() {
    auto latest = LatestValidCheckpoint(root_.string(), m_.model->config());
    EXPECT_TRUE(latest.ok()) << latest.status();
    if (!latest.ok() || !latest->has_value()) return -1;
    return (*latest)->state.step;
  }

  learner_test::TinyModel m_;
  fs::path root_;
};

TEST_F(CheckpointTest, RoundTripsAdapterOptimizerAndState) {
  TrainerState state;
  state.step = 12;
  state.adapter_version = 13;
  state.data_cursor = std::string("bin\0\xff\x01cursor", 11);  // not UTF-8: stored as hex
  state.seed = 0xfedcba9876543210ull;
  state.rng_state = std::string("\x00\x01\x02\xfe", 4);
  state.world_size = 2;
  auto path = WriteCheckpoint(root_.string(), adapter(), Optimizer(0.5f), state);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, (root_ / "step-00000012").string());

  auto read = ReadCheckpoint(*path, m_.model->config());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->state.step, 12);
  EXPECT_EQ(read->state.adapter_version, 13);
  EXPECT_EQ(read->state.data_cursor, state.data_cursor);
  EXPECT_EQ(read->state.seed, state.seed);
  EXPECT_EQ(read->state.rng_state, state.rng_state);
  EXPECT_EQ(read->state.world_size, 2);
  EXPECT_TRUE(learner_test::SameAdapterBits(*read->adapter, adapter()));
  const OptimizerTensors expected = Optimizer(0.5f);
  ASSERT_EQ(read->optimizer.size(), expected.size());
  for (const auto& [name, t] : expected) EXPECT_TRUE(torch::equal(read->optimizer.at(name), t)) << name;
}

TEST_F(CheckpointTest, LayoutIsPeftPlusStateAndManifest) {
  const std::string path = Write(3);
  for (const char* file : {"adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                           "optimizer.safetensors", "trainer_state.json", ".complete"}) {
    EXPECT_TRUE(fs::exists(path + "/" + file)) << file;
  }
  // The adapter folder is a plain PEFT adapter.
  auto peft = LoraAdapter::Load(path + "/adapter", m_.model->config());
  ASSERT_TRUE(peft.ok()) << peft.status();
  EXPECT_TRUE(learner_test::SameAdapterBits(**peft, adapter()));
  const std::string state = learner_test::ReadBytes(path + "/trainer_state.json");
  EXPECT_THAT(state, HasSubstr("\"data_cursor\": \"cursor 3\""));
  EXPECT_THAT(state, HasSubstr("\"step\": 3"));
  // No temp folders left behind.
  for (const auto& e : fs::directory_iterator(root_)) EXPECT_EQ(e.path().filename().string().rfind(".tmp", 0), std::string::npos);
}

TEST_F(CheckpointTest, NewestValidSkipsIncompleteTruncatedAndCorrupt) {
  Write(1);
  const std::string two = Write(2);
  const std::string three = Write(3);
  const std::string four = Write(4);
  EXPECT_EQ(LatestStep(), 4);

  fs::remove(four + "/.complete");  // crashed before the manifest
  EXPECT_EQ(LatestStep(), 3);

  fs::resize_file(three + "/optimizer.safetensors", fs::file_size(three + "/optimizer.safetensors") / 2);
  std::vector<std::string> skipped;
  auto latest = LatestValidCheckpoint(root_.string(), m_.model->config(), &skipped);
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->state.step, 2);
  ASSERT_THAT(skipped, SizeIs(2));
  EXPECT_THAT(skipped[0], HasSubstr("step-00000004"));
  EXPECT_THAT(skipped[1], HasSubstr("optimizer.safetensors"));

  {  // One flipped bit in the adapter's tensor data: same size, parses, wrong.
    const std::string file = two + "/adapter/adapter_model.safetensors";
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-3, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-3, std::ios::end);
    f.put(static_cast<char>(c ^ 0x10));
  }
  EXPECT_EQ(LatestStep(), 1);
  fs::remove_all(root_ / "step-00000001");
  EXPECT_EQ(LatestStep(), -1);
}

TEST_F(CheckpointTest, MissingRootHasNoCheckpoint) {
  auto latest = LatestValidCheckpoint((root_ / "nowhere").string(), m_.model->config());
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_FALSE(latest->has_value());
  EXPECT_TRUE(ListCheckpoints((root_ / "nowhere").string()).empty());
}

TEST_F(CheckpointTest, RewritingAStepReplacesIt) {
  Write(5);
  TrainerState state;
  state.step = 5;
  state.data_cursor = "second";
  ASSERT_TRUE(WriteCheckpoint(root_.string(), adapter(), Optimizer(9.0f), state).ok());
  auto latest = LatestValidCheckpoint(root_.string(), m_.model->config());
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->state.data_cursor, "second");
  EXPECT_THAT(ListCheckpoints(root_.string()), SizeIs(1));
}

TEST_F(CheckpointTest, PruneKeepsTheNewestCompleteOnes) {
  for (int64_t s = 1; s <= 5; ++s) Write(s);
  fs::remove(root_ / "step-00000005" / ".complete");  // incomplete: does not count as kept
  fs::create_directories(root_ / ".tmp-step-00000009.999999");  // a crashed writer's leftover
  ASSERT_TRUE(PruneCheckpoints(root_.string(), 2).ok());
  std::vector<int64_t> steps;
  for (const auto& [step, path] : ListCheckpoints(root_.string())) steps.push_back(step);
  EXPECT_THAT(steps, ElementsAre(3, 4, 5));
  EXPECT_FALSE(fs::exists(root_ / ".tmp-step-00000009.999999"));
  EXPECT_EQ(LatestStep(), 4);
}

TEST_F(CheckpointTest, AdapterOfAnotherModelIsAnErrorNotSkipped) {
  Write(1);
  ModelConfig other = m_.model->config();
  other.num_hidden_layers += 1;
  auto latest = LatestValidCheckpoint(root_.string(), other);
  ASSERT_FALSE(latest.ok());
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kInvalidArgument) << latest.status();
}

}  // namespace
}  // namespace dsm
