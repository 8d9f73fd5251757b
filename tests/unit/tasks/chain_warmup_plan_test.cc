// The warm-up's plan (tasks/chain_warmup_plan.h): the role shares laid out over each step, the
// look-up drill's steps, the verifier's and meta-verifier's own / scrambled / made-up proofs at
// their shares, the generator's writer, and the learning rate.
#include <gtest/gtest.h>

#include <map>

#include "tasks/chain_warmup_plan.h"

namespace dsm {
namespace {

using Kind = ChainWarmupExampleKind;

// Kinds over `steps` steps from `first`.
std::map<Kind, int> Count(const ChainWarmupOptions& o, int first, int steps, bool own_ready) {
  std::map<Kind, int> n;
  for (int step = first; step < first + steps; ++step) {
    for (int j = 0; j < o.batch; ++j) ++n[ChainWarmupExampleKindOf(o, step, j, own_ready)];
  }
  return n;
}

// The writers of the first 8 examples of 500 steps: how many put each flaw in, and how many
// overclaim on a flawed proof and on a flawless one.
struct WriterTally {
  std::map<ChainFlaw, int> flaws;
  int overclaimed_flawed = 0;
  int overclaimed_flawless = 0;
};
WriterTally TallyWriters(const ChainWarmupOptions& o) {
  WriterTally t;
  for (int step = 0; step < 500; ++step) {
    for (int j = 0; j < 8; ++j) {
      const ChainWarmupWriter w = ChainWarmupWriterOf(o, step, j);
      ++t.flaws[w.flaw];
      (w.flaw == ChainFlaw::kNone ? t.overclaimed_flawless : t.overclaimed_flawed) += w.overclaims;
    }
  }
  return t;
}

ChainWarmupOptions Recipe() {
  ChainWarmupOptions o;
  o.steps = 2000;
  o.batch = 16;
  o.generator_share = 2;
  o.verifier_share = 1;
  o.meta_verifier_share = 1;
  o.scrambled_proof_share = 0.3;
  o.own_proof_share = 0.5;
  o.lookup_drill_steps = 500;
  return o;
}

TEST(ChainWarmupPlan, TheDrillStepsAreAllScrambledVerifierExamples) {
  const ChainWarmupOptions o = Recipe();
  std::map<Kind, int> drill = Count(o, 0, o.lookup_drill_steps, /*own_ready=*/true);
  EXPECT_EQ(drill.size(), 1u);
  EXPECT_EQ(drill[Kind::kScrambledVerifier], o.lookup_drill_steps * o.batch);
  // The step after the drill has the shares' mix again.
  std::map<Kind, int> after = Count(o, o.lookup_drill_steps, 1, true);
  EXPECT_EQ(after[Kind::kGenerator], 8);
  EXPECT_EQ(after[Kind::kMetaVerifier], 4);
}

TEST(ChainWarmupPlan, AfterTheDrillEveryNthStepIsADrillStepAgain) {
  ChainWarmupOptions o = Recipe();
  o.lookup_drill_every = 4;
  // Steps 500, 504, ... are drill steps; the three between have the mix.
  for (int step : {500, 504, 1996}) {
    std::map<Kind, int> n = Count(o, step, 1, true);
    EXPECT_EQ(n.size(), 1u) << step;
    EXPECT_EQ(n[Kind::kScrambledVerifier], o.batch) << step;
  }
  for (int step : {501, 502, 503, 1999}) EXPECT_EQ(Count(o, step, 1, true)[Kind::kGenerator], 8) << step;
  for (int step : {0, 499, 500, 504, 1996}) EXPECT_TRUE(IsLookupDrillStep(o, step)) << step;
  for (int step : {501, 502, 503, 1999}) EXPECT_FALSE(IsLookupDrillStep(o, step)) << step;
  std::map<Kind, int> all = Count(o, o.lookup_drill_steps, 1500, true);
  EXPECT_EQ(all[Kind::kGenerator], 8 * 1125);  // 375 of the 1500 mixed-era steps drill
  // A share of the later drill steps' examples drills the meta-verifier's look-up.
  o.lookup_drill_meta_share = 0.5;
  std::map<Kind, int> both = Count(o, 504, 1, true);
  EXPECT_EQ(both[Kind::kScrambledMetaVerifier], 8);
  EXPECT_EQ(both[Kind::kScrambledVerifier], 8);
  EXPECT_EQ(Count(o, 499, 1, true)[Kind::kScrambledVerifier], 16);  // the first drill: verifier only
  o.lookup_drill_meta_share = 1.5;
  EXPECT_EQ(o.Validate().message(), "lookup_drill_meta_share: 1.5 is outside [0, 1]");
  o.lookup_drill_meta_share = 0;
  o.lookup_drill_every = -1;
  EXPECT_EQ(o.Validate().message(), "lookup_drill_every: -1 is outside 0..");
}

TEST(ChainWarmupPlan, OneLearningRateScheduleOverAllSteps) {
  ChainWarmupOptions o = Recipe();  // 2000 steps, drill 500
  o.learning_rate = 1e-3;
  o.lr_warmup_steps = 20;
  o.final_lr_fraction = 0.1;
  EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, 0), 1e-3 / 20);
  EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, 20), 1e-3);
  EXPECT_NEAR(ChainWarmupLearningRate(o, 20 + 990), 1e-3 * (0.1 + 0.9 * 0.5), 1e-9);  // half-way
  EXPECT_NEAR(ChainWarmupLearningRate(o, 1999), 1e-4, 1e-8);
  // The drill's end is mid-schedule.
  EXPECT_GT(ChainWarmupLearningRate(o, 499), 0.8e-3);
  EXPECT_LT(ChainWarmupLearningRate(o, 500), ChainWarmupLearningRate(o, 499));
}

TEST(ChainWarmupPlan, TheLearningRateRestartsAfterTheDrill) {
  ChainWarmupOptions o = Recipe();
  o.learning_rate = 1e-3;
  o.lr_warmup_steps = 20;
  o.final_lr_fraction = 0.1;
  o.lr_restart_after_drill = true;
  // The drill: warm-up, peak, cosine down to the floor at its last step.
  EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, 0), 1e-3 / 20);
  EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, 20), 1e-3);
  EXPECT_NEAR(ChainWarmupLearningRate(o, 499), 1e-4, 1e-6);
  // The rest: the same again over steps 500..1999.
  EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, 500), 1e-3 / 20);
  EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, 520), 1e-3);
  EXPECT_NEAR(ChainWarmupLearningRate(o, 520 + 740), 1e-3 * (0.1 + 0.9 * 0.5), 1e-9);
  EXPECT_NEAR(ChainWarmupLearningRate(o, 1999), 1e-4, 1e-8);
  // No drill, or a drill of every step: one schedule, as without the option.
  ChainWarmupOptions plain = o;
  plain.lr_restart_after_drill = false;
  for (int drill : {0, 2000}) {
    o.lookup_drill_steps = plain.lookup_drill_steps = drill;
    for (int step : {0, 19, 20, 500, 1400, 1999}) {
      EXPECT_DOUBLE_EQ(ChainWarmupLearningRate(o, step), ChainWarmupLearningRate(plain, step)) << drill << " " << step;
    }
  }
}

TEST(ChainWarmupPlan, EveryStepHasTheRoleSharesMix) {
  ChainWarmupOptions o = Recipe();
  o.lookup_drill_steps = 0;
  for (int step : {0, 7, 1999}) {
    std::map<Kind, int> n = Count(o, step, 1, true);
    EXPECT_EQ(n[Kind::kGenerator], 8) << step;
    EXPECT_EQ(n[Kind::kMetaVerifier] + n[Kind::kScrambledMetaVerifier] + n[Kind::kOwnProofMetaVerifier], 4) << step;
    EXPECT_EQ(n[Kind::kVerifier] + n[Kind::kScrambledVerifier] + n[Kind::kOwnProofVerifier], 4) << step;
  }
}

TEST(ChainWarmupPlan, VerifierProofsComeAtTheirShares) {
  ChainWarmupOptions o = Recipe();
  o.lookup_drill_steps = 0;
  // 1000 steps x 4 verifier examples.
  std::map<Kind, int> no_pool = Count(o, 0, 1000, /*own_ready=*/false);
  EXPECT_EQ(no_pool[Kind::kOwnProofVerifier], 0);
  EXPECT_NEAR(no_pool[Kind::kScrambledVerifier] / 4000.0, 0.3, 0.03);
  std::map<Kind, int> pool = Count(o, 0, 1000, /*own_ready=*/true);
  EXPECT_NEAR(pool[Kind::kOwnProofVerifier] / 4000.0, 0.5, 0.03);
  // The rest: 30% of the other half scrambled.
  EXPECT_NEAR(pool[Kind::kScrambledVerifier] / 4000.0, 0.15, 0.03);
  // Deterministic in (seed, step, j); another seed gives another draw.
  EXPECT_EQ(ChainWarmupExampleKindOf(o, 123, 9, true), ChainWarmupExampleKindOf(o, 123, 9, true));
  ChainWarmupOptions other = o;
  other.seed = 99;
  int differ = 0;
  for (int step = 0; step < 100; ++step) {
    for (int j = 8; j < 12; ++j) differ += ChainWarmupExampleKindOf(o, step, j, true) != ChainWarmupExampleKindOf(other, step, j, true);
  }
  EXPECT_GT(differ, 50);
}

TEST(ChainWarmupPlan, TheWritersFlawComesAtItsShare) {
  ChainWarmupOptions o = Recipe();
  EXPECT_EQ(TallyWriters(o).flaws[ChainFlaw::kNone], 4000);  // the default writer is flawless
  o.generator_flaw = ChainFlaw::kMissingFinalLine;
  o.generator_flaw_share = 0.6;
  const WriterTally t = TallyWriters(o);
  EXPECT_EQ(t.flaws.size(), 2u);
  EXPECT_NEAR(t.flaws.at(ChainFlaw::kMissingFinalLine) / 4000.0, 0.6, 0.03);
  EXPECT_EQ(ChainWarmupWriterOf(o, 77, 3).flaw, ChainWarmupWriterOf(o, 77, 3).flaw);
  o.generator_flaw_share = 1.5;
  EXPECT_EQ(o.Validate().message(), "generator_flaw_share: 1.5 is outside [0, 1]");
}

TEST(ChainWarmupPlan, TheWriterOverclaimsOnItsShareOfFlawedProofsOnly) {
  ChainWarmupOptions o = Recipe();
  o.generator_flaw = ChainFlaw::kMissingFinalLine;
  o.generator_flaw_share = 0.6;
  const WriterTally honest = TallyWriters(o);
  EXPECT_EQ(honest.overclaimed_flawed, 0);  // the default writer is honest
  o.generator_overclaim_share = 0.75;
  const WriterTally t = TallyWriters(o);
  EXPECT_EQ(t.flaws, honest.flaws);  // the flaw's draw is its own: unchanged
  const int flawed = t.flaws.at(ChainFlaw::kMissingFinalLine);
  EXPECT_NEAR(static_cast<double>(t.overclaimed_flawed) / flawed, 0.75, 0.03);
  EXPECT_EQ(t.overclaimed_flawless, 0);  // a flawless proof's self-evaluation is the faithful one
  EXPECT_EQ(ChainWarmupWriterOf(o, 77, 3).overclaims, ChainWarmupWriterOf(o, 77, 3).overclaims);
  o.generator_overclaim_share = -0.5;
  EXPECT_EQ(o.Validate().message(), "generator_overclaim_share: -0.5 is outside [0, 1]");
}

TEST(ChainWarmupPlan, ValidateNamesADrillLongerThanTheRun) {
  ChainWarmupOptions o = Recipe();
  o.lookup_drill_steps = 2001;
  EXPECT_EQ(o.Validate().message(), "lookup_drill_steps: 2001 is outside 0..steps");
  o.lookup_drill_steps = -1;
  EXPECT_EQ(o.Validate().message(), "lookup_drill_steps: -1 is outside 0..steps");
  o.lookup_drill_steps = 2000;
  EXPECT_TRUE(o.Validate().ok());
}

TEST(ChainWarmupPlan, MetaVerifierProofsComeAtTheirOwnShares) {
  ChainWarmupOptions o = Recipe();
  o.lookup_drill_steps = 0;
  // Off by default: every meta-verifier example a made-up proof, pool or not.
  std::map<Kind, int> off = Count(o, 0, 1000, /*own_ready=*/true);
  EXPECT_EQ(off[Kind::kMetaVerifier], 4000);
  o.meta_own_proof_share = 0.6;
  o.meta_scrambled_proof_share = 0.5;
  std::map<Kind, int> no_pool = Count(o, 0, 1000, /*own_ready=*/false);
  EXPECT_EQ(no_pool[Kind::kOwnProofMetaVerifier], 0);
  EXPECT_NEAR(no_pool[Kind::kScrambledMetaVerifier] / 4000.0, 0.5, 0.03);
  std::map<Kind, int> pool = Count(o, 0, 1000, /*own_ready=*/true);
  EXPECT_NEAR(pool[Kind::kOwnProofMetaVerifier] / 4000.0, 0.6, 0.03);
  EXPECT_NEAR(pool[Kind::kScrambledMetaVerifier] / 4000.0, 0.2, 0.03);
  // The verifier's examples keep their own shares.
  EXPECT_NEAR(pool[Kind::kOwnProofVerifier] / 4000.0, 0.5, 0.03);
  EXPECT_NEAR(pool[Kind::kScrambledVerifier] / 4000.0, 0.15, 0.03);
  ChainWarmupOptions bad = o;
  bad.meta_own_proof_share = -0.1;
  EXPECT_EQ(bad.Validate().message(), "meta_own_proof_share: -0.1 is outside [0, 1]");
  bad = o;
  bad.meta_scrambled_proof_share = 2;
  EXPECT_EQ(bad.Validate().message(), "meta_scrambled_proof_share: 2 is outside [0, 1]");
}

}  // namespace
}  // namespace dsm
