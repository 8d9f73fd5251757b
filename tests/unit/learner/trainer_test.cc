#include "learner/trainer.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "learner/checkpoint.h"
#include "tests/unit/learner/trainer_test_util.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kBatch = 6;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = fs::temp_directory_path() / ("dsm_trainer_test." + std::to_string(::getpid()));
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override { fs::remove_all(tmp_); }

  static TrainerOptions Options() {
    TrainerOptions o;
    o.learning_rate = 1e-3;
    o.micro_batch_tokens = 32;
    o.seed = 3;
    return o;
  }

  // GRPO batches made from the initial policy, shared by the runs compared.
  static std::vector<TrainingBatch> Batches(int n) {
    learner_test::TinyModel m = learner_test::LoadTinyModel();
    std::vector<TrainingBatch> out;
    for (int i = 0; i < n; ++i) out.push_back(learner_test::GrpoBatch(m, i, kBatch));
    return out;
  }

  static std::unique_ptr<Trainer> MakeTrainer(learner_test::TinyModel& m, const TrainerOptions& o) {
    auto trainer = Trainer::Create(m.model.get(), m.adapter, o);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    return trainer.ok() ? *std::move(trainer) : nullptr;
  }

  // Steps batches[from, to) and returns the stats.
  static std::vector<StepStats> Run(Trainer& t, const std::vector<TrainingBatch>& batches, size_t from, size_t to) {
    std::vector<StepStats> out;
    for (size_t i = from; i < to; ++i) {
      auto s = t.Step(batches[i]);
      EXPECT_TRUE(s.ok()) << "step " << i << ": " << s.status();
      if (s.ok()) out.push_back(*s);
    }
    return out;
  }

  std::string AdapterBytes(const learner_test::TinyModel& m, const std::string& name) {
    const std::string dir = (tmp_ / name).string();
    EXPECT_TRUE(m.model->adapter(m.adapter)->Save(dir).ok());
    return learner_test::ReadBytes(dir + "/adapter_model.safetensors");
  }

  fs::path tmp_;
};

TEST_F(TrainerTest, OnlyLoraParametersTrain) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  std::map<std::string, torch::Tensor> base;
  for (const auto& [name, w] : m.model->NamedWeights()) base[name] = w.clone();
  std::unique_ptr<LoraAdapter> before = m.model->adapter(m.adapter)->Clone();
  auto trainer = MakeTrainer(m, Options());
  ASSERT_NE(trainer, nullptr);
  Run(*trainer, Batches(2), 0, 2);
  EXPECT_EQ(trainer->step(), 2);
  for (const auto& [name, w] : m.model->NamedWeights()) {
    EXPECT_FALSE(w.requires_grad()) << name;
    EXPECT_TRUE(torch::equal(w, base.at(name))) << name << " changed";
  }
  EXPECT_GT(learner_test::MaxAdapterDiff(*before, *m.model->adapter(m.adapter)), 1e-5);
  // The optimizer holds state for the LoRA tensors only: 3 entries per tensor.
  EXPECT_EQ(trainer->OptimizerState().size(), 3 * m.model->Parameters(m.adapter).size());
}

TEST_F(TrainerTest, SftLowersTheCompletionNll) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  TrainerOptions o = Options();
  o.learning_rate = 1e-2;
  auto trainer = MakeTrainer(m, o);
  ASSERT_NE(trainer, nullptr);
  TrainingBatch batch;
  batch.objective = Objective::kSft;
  batch.samples = learner_test::SyntheticSamples(0, 4);  // no behaviour log-probs needed
  std::vector<double> losses;
  for (int i = 0; i < 8; ++i) {
    auto s = trainer->Step(batch);
    ASSERT_TRUE(s.ok()) << s.status();
    losses.push_back(s->loss);
    EXPECT_EQ(s->kl, 0);
  }
  EXPECT_GT(losses.front(), std::log(300.0) * 0.5);  // about uniform over the vocabulary
  EXPECT_LT(losses.back(), losses.front() - 0.1);
}

TEST_F(TrainerTest, GrpoStepReportsItsStatistics) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  auto trainer = MakeTrainer(m, Options());
  ASSERT_NE(trainer, nullptr);
  std::vector<TrainingBatch> batches = Batches(2);
  int64_t tokens = 0;
  for (const TrainingSample& s : batches[0].samples) tokens += static_cast<int64_t>(s.completion_ids.size());
  auto s = trainer->Step(batches[0]);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->step, 1);
  EXPECT_EQ(s->samples, kBatch);
  EXPECT_EQ(s->tokens, tokens);
  EXPECT_GT(s->micro_batches, 1);
  EXPECT_LE(s->padded_tokens, s->micro_batches * 32);
  EXPECT_TRUE(std::isfinite(s->loss));
  EXPECT_GT(s->grad_norm, 0);
  EXPECT_GT(s->ratio_mean, 1.0);  // the behaviour log-probs were lowered a little
  EXPECT_DOUBLE_EQ(s->kl, 0.0);   // the adapter starts as the base model (B = 0)
  EXPECT_DOUBLE_EQ(s->learning_rate, 1e-3);
  EXPECT_EQ(trainer->adapter_version(), 1);
  EXPECT_EQ(trainer->data_cursor(), "batch=1");
  auto s2 = trainer->Step(batches[1]);
  ASSERT_TRUE(s2.ok()) << s2.status();
  EXPECT_GT(s2->kl, 0);  // the policy moved away from the reference
}

TEST_F(TrainerTest, MicroBatchingEqualsOneBigBatch) {
  std::vector<TrainingBatch> batches = Batches(2);
  learner_test::TinyModel small = learner_test::LoadTinyModel();
  learner_test::TinyModel big = learner_test::LoadTinyModel();
  ASSERT_NE(small.model, nullptr);
  ASSERT_NE(big.model, nullptr);
  TrainerOptions o = Options();
  // Adam's first updates are nearly lr·sign(g): an element whose gradient
  // almost cancels carries its rounding into the update, so the difference
  // scales with lr (about 1e-3·lr here); 1e-4 keeps a margin below 1e-6.
  o.learning_rate = 1e-4;
  o.micro_batch_tokens = 12;
  auto a = MakeTrainer(small, o);
  o.micro_batch_tokens = 1 << 20;
  auto b = MakeTrainer(big, o);
  ASSERT_TRUE(a && b);
  auto sa = Run(*a, batches, 0, 2);
  auto sb = Run(*b, batches, 0, 2);
  ASSERT_EQ(sa.size(), 2u);
  ASSERT_EQ(sb.size(), 2u);
  EXPECT_GT(sa[0].micro_batches, 2);
  EXPECT_EQ(sb[0].micro_batches, 1);
  EXPECT_NEAR(sa[1].loss, sb[1].loss, 1e-6);
  EXPECT_NEAR(sa[1].grad_norm, sb[1].grad_norm, 1e-5 * sb[1].grad_norm);
  const double diff =
      learner_test::MaxAdapterDiff(*small.model->adapter(small.adapter), *big.model->adapter(big.adapter));
  std::cout << "max |adapter(micro-batched) - adapter(one batch)| = " << diff << "\n";
  EXPECT_LE(diff, 1e-6);
}

double ExpAvgNorm(const Trainer& t) {
  double sq = 0;
  for (const auto& [name, v] : t.OptimizerState()) {
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".exp_avg") == 0) {
      sq += v.to(torch::kDouble).pow(2).sum().item<double>();
    }
  }
  return std::sqrt(sq);
}

TEST_F(TrainerTest, ClipsTheGlobalGradientNorm) {
  std::vector<TrainingBatch> batches = Batches(1);
  for (double max_norm : {1e-4, 0.0}) {
    learner_test::TinyModel m = learner_test::LoadTinyModel();
    ASSERT_NE(m.model, nullptr);
    TrainerOptions o = Options();
    o.max_grad_norm = max_norm;
    auto trainer = MakeTrainer(m, o);
    ASSERT_NE(trainer, nullptr);
    auto s = trainer->Step(batches[0]);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_GT(s->grad_norm, 1e-3);
    // After one step exp_avg = (1 - beta1) * (clipped) gradient.
    const double applied = max_norm > 0 ? max_norm : s->grad_norm;
    EXPECT_NEAR(ExpAvgNorm(*trainer), (1 - o.beta1) * applied, 1e-3 * (1 - o.beta1) * applied) << max_norm;
  }
}

TEST_F(TrainerTest, RejectsBadSamplesNamingTheFieldAndChangesNothing) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  auto trainer = MakeTrainer(m, Options());
  ASSERT_NE(trainer, nullptr);
  std::unique_ptr<LoraAdapter> before = m.model->adapter(m.adapter)->Clone();
  const TrainingBatch good = Batches(1)[0];
  struct Case {
    std::function<void(TrainingBatch&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](TrainingBatch& b) { b.samples[2].completion_ids.clear(); }, "sample 2: completion_ids is empty"},
      {[](TrainingBatch& b) { b.samples[0].prompt_ids.clear(); }, "sample 0: prompt_ids is empty"},
      {[](TrainingBatch& b) { b.samples[1].prompt_ids[0] = 300; }, "sample 1: prompt_ids: token 300"},
      {[](TrainingBatch& b) { b.samples[3].behaviour_logprobs.pop_back(); }, "sample 3: behaviour_logprobs"},
      {[](TrainingBatch& b) { b.samples[4].advantage = NAN; }, "sample 4: advantage"},
      {[](TrainingBatch& b) { b.samples.clear(); }, "no samples"},
  };
  for (const Case& c : cases) {
    TrainingBatch bad = good;
    c.edit(bad);
    auto s = trainer->Step(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
  }
  EXPECT_EQ(trainer->step(), 0);
  EXPECT_TRUE(learner_test::SameAdapterBits(*before, *m.model->adapter(m.adapter)));
  // SFT needs no behaviour log-probs nor advantages.
  TrainingBatch sft = good;
  sft.objective = Objective::kSft;
  for (TrainingSample& s : sft.samples) {
    s.behaviour_logprobs.clear();
    s.advantage = NAN;
  }
  EXPECT_TRUE(trainer->Step(sft).ok());
}

TEST_F(TrainerTest, OptionsValidateNamesTheField) {
  TrainerOptions o;
  o.micro_batch_tokens = 0;
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("micro_batch_tokens"));
  o = TrainerOptions();
  o.beta2 = 1.0;
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("beta2"));
  o = TrainerOptions();
  o.grpo.epsilon_low = 2;
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("grpo"));
  o = TrainerOptions();
  o.parallel.world_size = 2;
  o.parallel.rank = 5;
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("parallel: rank"));
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  EXPECT_EQ(Trainer::Create(m.model.get(), 7, TrainerOptions()).status().code(), absl::StatusCode::kInvalidArgument);
  auto trainer = MakeTrainer(m, TrainerOptions());
  ASSERT_NE(trainer, nullptr);
  EXPECT_EQ(trainer->SaveCheckpoint().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TrainerTest, WarmupRampsTheLearningRate) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  TrainerOptions o = Options();
  o.warmup_steps = 4;
  auto trainer = MakeTrainer(m, o);
  ASSERT_NE(trainer, nullptr);
  std::vector<double> lrs;
  for (const StepStats& s : Run(*trainer, Batches(5), 0, 5)) lrs.push_back(s.learning_rate);
  EXPECT_THAT(lrs, ElementsAre(0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3));
}

// The warm-up counts the optimizer's steps: a trainer that replaces an adapter
// (fresh moments, step numbers carried on) warms up again, and one resumed from
// a checkpoint taken mid-ramp goes on where the ramp was.
TEST_F(TrainerTest, WarmupFollowsTheOptimizerNotTheStepNumber) {
  const std::vector<TrainingBatch> batches = Batches(3);
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  TrainerOptions o = Options();
  o.warmup_steps = 4;
  o.checkpoint_dir = (tmp_ / "ckpt").string();
  o.checkpoint_every_steps = 2;
  std::vector<double> lrs;
  {
    auto replacement = MakeTrainer(m, o);
    ASSERT_NE(replacement, nullptr);
    replacement->ContinueFrom(10, "");
    for (const StepStats& s : Run(*replacement, batches, 0, 2)) lrs.push_back(s.learning_rate);
    EXPECT_EQ(replacement->step(), 12);
  }
  EXPECT_THAT(lrs, ElementsAre(0.25e-3, 0.5e-3));
  lrs.clear();
  auto resumed = MakeTrainer(m, o);
  ASSERT_NE(resumed, nullptr);
  EXPECT_EQ(resumed->resumed_from(), o.checkpoint_dir + "/" + CheckpointFolderName(12));
  for (const StepStats& s : Run(*resumed, batches, 0, 3)) lrs.push_back(s.learning_rate);
  EXPECT_THAT(lrs, ElementsAre(0.75e-3, 1e-3, 1e-3));
}

TEST_F(TrainerTest, SameSeedAndDataAreBitIdenticalWithDropout) {
  std::vector<TrainingBatch> batches = Batches(3);
  std::vector<std::string> bytes;
  for (uint64_t seed : {3, 3, 4}) {
    learner_test::TinyModel m = learner_test::LoadTinyModel(11, /*dropout=*/0.2);
    ASSERT_NE(m.model, nullptr);
    TrainerOptions o = Options();
    o.seed = seed;
    auto trainer = MakeTrainer(m, o);
    ASSERT_NE(trainer, nullptr);
    Run(*trainer, batches, 0, 3);
    bytes.push_back(AdapterBytes(m, "seed" + std::to_string(bytes.size())));
  }
  EXPECT_EQ(bytes[0], bytes[1]);
  EXPECT_NE(bytes[0], bytes[2]);  // the seed drives the dropout masks
}

TEST_F(TrainerTest, CheckpointsEveryNStepsAndKeepsTheNewest) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  TrainerOptions o = Options();
  o.checkpoint_dir = (tmp_ / "ckpt").string();
  o.checkpoint_every_steps = 2;
  o.keep_checkpoints = 2;
  auto trainer = MakeTrainer(m, o);
  ASSERT_NE(trainer, nullptr);
  EXPECT_EQ(trainer->resumed_from(), "");
  auto stats = Run(*trainer, Batches(7), 0, 7);
  ASSERT_EQ(stats.size(), 7u);
  for (const StepStats& s : stats) {
    EXPECT_EQ(s.checkpoint.empty(), s.step % 2 != 0) << s.step;
    EXPECT_EQ(s.checkpoint_error, "");
  }
  std::vector<int64_t> steps;
  for (const auto& [step, path] : ListCheckpoints(o.checkpoint_dir)) steps.push_back(step);
  EXPECT_THAT(steps, ElementsAre(4, 6));
  auto saved = trainer->SaveCheckpoint();
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(*saved, o.checkpoint_dir + "/step-00000007");
}

// The acceptance check: a learner killed after step 5 (no final save) and
// restarted resumes from its step-4 checkpoint and ends bit-identical to a run
// that never stopped; with the step-4 checkpoint damaged, from step 2.
class ResumeTest : public TrainerTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ResumeTest, KilledAndRestartedLearnerEndsBitIdentical) {
  const bool damage_newest = GetParam();
  constexpr int kSteps = 7;
  const std::vector<TrainingBatch> batches = Batches(kSteps);
  TrainerOptions o = Options();
  o.checkpoint_every_steps = 2;
  o.keep_checkpoints = 3;
  const double dropout = 0.1;  // the dropout stream has to survive the restart too

  // Uninterrupted.
  learner_test::TinyModel straight = learner_test::LoadTinyModel(11, dropout);
  ASSERT_NE(straight.model, nullptr);
  o.checkpoint_dir = (tmp_ / "straight").string();
  auto a = MakeTrainer(straight, o);
  ASSERT_NE(a, nullptr);
  Run(*a, batches, 0, kSteps);
  const std::string expected = AdapterBytes(straight, "straight-final");

  // Interrupted after step 5: the trainer and its model vanish without a save.
  o.checkpoint_dir = (tmp_ / "restarted").string();
  {
    learner_test::TinyModel first = learner_test::LoadTinyModel(11, dropout);
    auto b = MakeTrainer(first, o);
    ASSERT_NE(b, nullptr);
    Run(*b, batches, 0, 5);
  }
  if (damage_newest) {
    const std::string file = o.checkpoint_dir + "/step-00000004/adapter/adapter_model.safetensors";
    fs::resize_file(file, fs::file_size(file) - 7);
  }
  // Restart: a fresh process would load the base model and make the adapter
  // from the same seed; the trainer overwrites it from the checkpoint.
  learner_test::TinyModel second = learner_test::LoadTinyModel(11, dropout);
  auto c = MakeTrainer(second, o);
  ASSERT_NE(c, nullptr);
  const int64_t resumed = damage_newest ? 2 : 4;
  EXPECT_EQ(c->resumed_from(), o.checkpoint_dir + "/" + CheckpointFolderName(resumed));
  EXPECT_EQ(c->step(), resumed);
  EXPECT_EQ(c->adapter_version(), resumed);
  EXPECT_EQ(c->data_cursor(), "batch=" + std::to_string(resumed));
  Run(*c, batches, static_cast<size_t>(resumed), kSteps);
  EXPECT_EQ(c->step(), kSteps);
  EXPECT_EQ(AdapterBytes(second, "restarted-final"), expected);
  const OptimizerTensors sa = a->OptimizerState();
  const OptimizerTensors sc = c->OptimizerState();
  ASSERT_EQ(sa.size(), sc.size());
  for (const auto& [name, t] : sa) EXPECT_TRUE(torch::equal(t, sc.at(name))) << name;
}

INSTANTIATE_TEST_SUITE_P(Trainer, ResumeTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "NewestCheckpointDamaged" : "NewestCheckpointIntact";
                         });

TEST_F(TrainerTest, ResumeFalseStartsFresh) {
  learner_test::TinyModel m = learner_test::LoadTinyModel();
  ASSERT_NE(m.model, nullptr);
  TrainerOptions o = Options();
  o.checkpoint_dir = (tmp_ / "ckpt").string();
  o.checkpoint_every_steps = 1;
  {
    auto t = MakeTrainer(m, o);
    ASSERT_NE(t, nullptr);
    Run(*t, Batches(1), 0, 1);
  }
  o.resume = false;
  learner_test::TinyModel fresh = learner_test::LoadTinyModel();
  auto t = MakeTrainer(fresh, o);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->step(), 0);
  EXPECT_EQ(t->resumed_from(), "");
}

}  // namespace
}  // namespace dsm
