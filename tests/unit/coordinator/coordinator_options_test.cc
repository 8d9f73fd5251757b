// The coordinator's pipeline options come from the config: phase 4's reward weights and scoring
// counts, phase 5's n, m and k (METHOD.md), not from compiled-in defaults.
#include "services/coordinator/coordinator_process.h"

#include <optional>

#include <gtest/gtest.h>

#include "common/config.h"
#include "services/coordinator/pipeline_runner.h"

namespace dsm {
namespace {

DsmConfig Parse(const std::string& coordinator) {
  auto config = ParseConfig(
      "run: {name: demo}\ncoordinator: {pipeline: true, learner: \"h:1\", verifier: \"h:2\", meta_verifier: \"h:3\", " +
          coordinator + "}\n",
      "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : DsmConfig{};
}

TEST(CoordinatorOptions, PhaseFourAndFiveSettingsComeFromTheConfig) {
  const CoordinatorProcessOptions o = CoordinatorOptionsFromConfig(
      Parse("verifications: 3, meta_verifications: 2, alpha: 0.5, beta: 0.5, auto_label_n: 6, auto_label_m: 3, "
            "auto_label_k: 4, auto_label_correct_n: 12, auto_label_drop_conflicts: true, auto_label_unanimous_correct: true, "
            "auto_label_temperature: 0.5, group_size: 5, "
            "verifier_epochs: 3, meta_verifier_epochs: 2, generator_epochs: 4, "
            "enhanced_meta_verifications: 3, enhanced_meta_temperature: 0, evaluation_proofs: 200, "
            "evaluation_problems: 30"),
      "");
  ASSERT_TRUE(o.pipeline.has_value());
  const PipelineOptions& p = o.pipeline->options;
  EXPECT_EQ(p.generator.verifications, 3u);
  EXPECT_EQ(p.generator.meta_verifications, 2u);
  EXPECT_DOUBLE_EQ(p.generator.reward.alpha, 0.5);
  EXPECT_DOUBLE_EQ(p.generator.reward.beta, 0.5);
  EXPECT_EQ(p.generator.group_size, 5u);
  EXPECT_EQ(p.auto_label.n, 6u);
  EXPECT_EQ(p.auto_label.m, 3u);
  EXPECT_EQ(p.auto_label.rule.k, 4);
  EXPECT_EQ(p.auto_label.correct_n, 12u);
  EXPECT_EQ(p.auto_label.max_n_per_request, 64u);  // limits.max_n: the scorers refuse more
  EXPECT_TRUE(p.auto_label.rule.drop_conflicts);
  EXPECT_TRUE(p.auto_label.rule.unanimous_correct);
  ASSERT_TRUE(p.auto_label.scoring_params.has_temperature());
  EXPECT_FLOAT_EQ(p.auto_label.scoring_params.temperature(), 0.5f);
  EXPECT_EQ(p.auto_label.proofs_per_problem, 5u);
  EXPECT_EQ(p.verifier_epochs, 3u);
  EXPECT_EQ(p.meta_verifier_epochs, 2u);
  EXPECT_EQ(p.generator_epochs, 4u);
  EXPECT_EQ(p.verifier.meta_samples, 3u);
  ASSERT_TRUE(p.verifier.meta_params.has_temperature());
  EXPECT_FLOAT_EQ(p.verifier.meta_params.temperature(), 0.0f);
  EXPECT_EQ(p.evaluation.max_proofs, 200u);
  EXPECT_EQ(p.generator_evaluation.max_problems, 30u);
}

TEST(CoordinatorOptions, DefaultsAreThePapers) {
  const CoordinatorProcessOptions o = CoordinatorOptionsFromConfig(Parse("group_size: 8"), "");
  ASSERT_TRUE(o.pipeline.has_value());
  const PipelineOptions& p = o.pipeline->options;
  EXPECT_DOUBLE_EQ(p.generator.reward.alpha, 0.76);
  EXPECT_DOUBLE_EQ(p.generator.reward.beta, 0.24);
  EXPECT_EQ(p.auto_label.n, 8u);
  EXPECT_EQ(p.auto_label.m, 4u);
  EXPECT_EQ(p.auto_label.rule.k, 2);
  EXPECT_EQ(p.auto_label.correct_n, 0u);  // a label of 1 needs the n analyses
  EXPECT_FALSE(p.auto_label.rule.drop_conflicts);  // METHOD.md: the lowest confirmed score wins
  EXPECT_FALSE(p.auto_label.rule.unanimous_correct);  // METHOD.md: 1 when no issue is found real
  EXPECT_FLOAT_EQ(p.auto_label.scoring_params.temperature(), 1.0f);  // the samplers' own
  EXPECT_EQ(p.verifier.meta_samples, 1u);                             // phase 3: one sampled R_meta
  EXPECT_FLOAT_EQ(p.verifier.meta_params.temperature(), 1.0f);
  EXPECT_EQ(p.evaluation.max_proofs, 64u);
  EXPECT_EQ(p.generator_evaluation.max_problems, 64u);
}

// Phase 3 trains the verifier's adapter on the labelled analyses too (METHOD.md) unless told not to.
TEST(CoordinatorOptions, PhaseThreeTrainsOnTheAnalysesUnlessToldNot) {
  const PipelineOptions paper = CoordinatorOptionsFromConfig(Parse("verifier_epochs: 2"), "").pipeline->options;
  const ScoringPhaseData one = ScoringPhaseDataOf(v1::PHASE_VERIFIER_RL, paper);
  EXPECT_TRUE(one.proofs);
  EXPECT_FALSE(one.analyses);
  EXPECT_EQ(one.epochs, 2u);
  const ScoringPhaseData two = ScoringPhaseDataOf(v1::PHASE_META_VERIFIER_RL, paper);
  EXPECT_FALSE(two.proofs);
  EXPECT_TRUE(two.analyses);
  const ScoringPhaseData three = ScoringPhaseDataOf(v1::PHASE_ENHANCED_VERIFIER_RL, paper);
  EXPECT_TRUE(three.proofs);
  EXPECT_TRUE(three.analyses);
  EXPECT_EQ(three.epochs, 1u);
  const PipelineOptions proofs_only =
      CoordinatorOptionsFromConfig(Parse("enhanced_analyses: false"), "").pipeline->options;
  const ScoringPhaseData alone = ScoringPhaseDataOf(v1::PHASE_ENHANCED_VERIFIER_RL, proofs_only);
  EXPECT_TRUE(alone.proofs);
  EXPECT_FALSE(alone.analyses);
  EXPECT_TRUE(ScoringPhaseDataOf(v1::PHASE_META_VERIFIER_RL, proofs_only).analyses);  // phase 2 keeps its data
}

// Phases 1-3 shuffle their passes from the run's seed unless told not to.
TEST(CoordinatorOptions, ThePassesAreShuffledFromTheRunsSeedUnlessToldNot) {
  DsmConfig config = Parse("group_size: 8");
  config.run.seed = 99;
  const PipelineOptions shuffled = CoordinatorOptionsFromConfig(config, "").pipeline->options;
  EXPECT_EQ(shuffled.verifier.shuffle_seed, std::optional<uint64_t>(99));
  EXPECT_EQ(shuffled.meta_verifier.shuffle_seed, std::optional<uint64_t>(99));
  const PipelineOptions in_order = CoordinatorOptionsFromConfig(Parse("shuffle: false"), "").pipeline->options;
  EXPECT_FALSE(in_order.verifier.shuffle_seed.has_value());
  EXPECT_FALSE(in_order.meta_verifier.shuffle_seed.has_value());
}

// Phase 0 runs when coordinator.warmup_epochs asks for it, with the model's tokenizer.
TEST(CoordinatorOptions, PhaseZeroOnlyWhenAskedForWithTheModelsTokenizer) {
  const CoordinatorPipelineSettings none = *CoordinatorOptionsFromConfig(Parse("group_size: 8"), "").pipeline;
  EXPECT_EQ(none.options.warmup_epochs, 0u);
  DsmConfig config = Parse("warmup_epochs: 3");
  config.model.path = "/models/qwen";
  const CoordinatorPipelineSettings warm = *CoordinatorOptionsFromConfig(config, "").pipeline;
  EXPECT_EQ(warm.options.warmup_epochs, 3u);
  EXPECT_EQ(warm.tokenizer_path, "/models/qwen/tokenizer.json");
}

// Phase 3's meta-verifications go out as many at once as a sampler decodes together.
TEST(CoordinatorOptions, PhaseThreeAsksForAsManyMetaVerificationsAsASamplerBatches) {
  auto concurrency = [](const std::string& model) {
    auto config = ParseConfig("run: {name: demo}\nmodel: {" + model +
                                  "}\ncoordinator: {pipeline: true, learner: \"h:1\", verifier: \"h:2\", "
                                  "meta_verifier: \"h:3\"}\n",
                              "test.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    const CoordinatorProcessOptions o = CoordinatorOptionsFromConfig(*config, "");
    return o.pipeline.has_value() ? o.pipeline->options.verifier.max_concurrent_calls : 0u;
  };
  EXPECT_EQ(concurrency("max_batch: 64"), 64u);
  EXPECT_EQ(concurrency("max_batch: 4"), 16u);  // never fewer than the verifications of a batch's proofs
}

// Phase 4 keeps no more problems in flight than the learner accepts groups from: groups_per_step
// groups a version, max_policy_lag versions.
TEST(CoordinatorOptions, PhaseFourWindowFollowsTheLearnersStalenessBound) {
  auto window = [](const std::string& learner) {
    auto config = ParseConfig("run: {name: demo}\ncoordinator: {pipeline: true, learner: \"h:1\", verifier: \"h:2\", "
                              "meta_verifier: \"h:3\"}\nlearner: {" + learner + "}\n",
                              "test.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return 0u;
    const CoordinatorProcessOptions o = CoordinatorOptionsFromConfig(*config, "");
    return o.pipeline.has_value() ? o.pipeline->options.generator_window : 0u;
  };
  EXPECT_EQ(window("groups_per_step: 4, max_policy_lag: 4"), 16u);
  EXPECT_EQ(window("groups_per_step: 8, max_policy_lag: 2"), 16u);
  EXPECT_EQ(window("groups_per_step: 4, max_policy_lag: 0"), 4u);  // on-policy: one step's groups
}

// Every sampling request is seeded from the run's seed; lockstep rounds, when asked for, are as
// many items as the learner accepts sampled at one version.
TEST(CoordinatorOptions, RequestsAreSeededFromTheRunAndLockstepRoundsFollowTheStalenessBound) {
  DsmConfig config = Parse("lockstep: true");
  config.run.seed = 99;
  config.learner.groups_per_step = 8;
  config.learner.max_policy_lag = 2;
  const CoordinatorPipelineSettings lockstep = *CoordinatorOptionsFromConfig(config, "").pipeline;
  EXPECT_EQ(lockstep.seed, std::optional<uint64_t>(99));
  EXPECT_EQ(lockstep.options.generator.seed, std::optional<uint64_t>(99));
  EXPECT_EQ(lockstep.options.auto_label.seed, std::optional<uint64_t>(99));
  EXPECT_EQ(lockstep.options.lockstep_round, 16u);
  EXPECT_EQ(CoordinatorOptionsFromConfig(Parse("group_size: 8"), "").pipeline->options.lockstep_round, 0u);
}

}  // namespace
}  // namespace dsm
