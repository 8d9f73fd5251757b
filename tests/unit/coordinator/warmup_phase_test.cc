// Phase 0: SFT groups from the run's labelled data, tokenized (prompts with
// special tokens), EOS-ended, recorded once per pass, each pass shuffled.
#include "services/coordinator/warmup_phase.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

PromptTemplate Template(const std::string& role, const std::string& body) {
  auto t = PromptTemplate::Parse("role: " + role + "\nevaluation_marker: E:\nscore_marker: S:\n---\n" + body,
                                 role + ".txt");
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// RunOnce until the pass is done: the groups recorded, by role.
WarmupProgress RunPass(WarmupPhase* phase) {
  WarmupProgress total;
  while (true) {
    auto p = phase->RunOnce();
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok() || p->records == 0) return total;
    total.verifier += p->verifier;
    total.meta_verifier += p->meta_verifier;
    total.generator += p->generator;
    total.records += p->records;
  }
}

// Bytes as ids; a prompt (special tokens added) starts with 1, the BOS.
absl::StatusOr<std::vector<int32_t>> ByteIds(const std::string& text, bool add_special_tokens) {
  std::vector<int32_t> ids;
  if (add_special_tokens) ids.push_back(1);
  ids.insert(ids.end(), text.begin(), text.end());
  return ids;
}

TEST(WarmupPhase, SftGroupsFromLabelledData) {
  TestDir dir;
  RunStoreOptions o;
  o.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::ImportRecordsRequest> records(6);
  records[0].mutable_problem()->set_problem_id("p");
  records[0].mutable_problem()->set_statement("ab");
  auto* good = records[1].mutable_proof();
  good->set_proof_id("good");
  good->set_problem_id("p");
  good->set_proof("xy");
  good->set_score(1);
  auto* bad = records[2].mutable_proof();
  bad->set_proof_id("bad");
  bad->set_problem_id("p");
  bad->set_proof("zz");
  bad->set_score(0);
  auto* faithful = records[3].mutable_analysis();
  faithful->set_analysis_id("a1");
  faithful->set_proof_id("bad");
  faithful->set_analysis("E:no S:\\boxed{0}");  // the template's markers, the proof's score
  faithful->set_meta_score(1);
  auto* bogus = records[4].mutable_analysis();
  bogus->set_analysis_id("a2");
  bogus->set_proof_id("good");
  bogus->set_analysis("hm");
  bogus->set_meta_score(0);
  // Names no issue, so the meta-rubric calls it reasonable (METHOD.md), but its score is not the
  // proof's: not an analysis for the verifier to imitate.
  auto* lenient = records[5].mutable_analysis();
  lenient->set_analysis_id("a3");
  lenient->set_proof_id("bad");
  lenient->set_analysis("E:fine S:\\boxed{1}");
  lenient->set_meta_score(1);
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());

  WarmupPhaseOptions options;
  options.encode = ByteIds;
  options.eos_token_id = 2;
  options.generator_completion = [](const v1::ProblemRecord&, const v1::LabelledProof& p) { return "S" + p.proof(); };
  options.meta_completion = [](const v1::LabelledAnalysis& a) { return "M" + a.analysis(); };
  WarmupPhase phase(store->get(), {Template("generator", "G{problem}"), Template("verifier", "V{problem}{proof}"),
                                   Template("meta_verifier", "M{problem}{proof}{analysis}")},
                    options);
  const WarmupProgress progress = RunPass(&phase);
  EXPECT_EQ(progress.verifier, 1u);       // only the faithful analysis with the proof's score
  EXPECT_EQ(progress.meta_verifier, 3u);  // every analysis
  EXPECT_EQ(progress.generator, 1u);      // only the proof scored 1
  EXPECT_EQ(progress.records, 5u);        // 3 analyses, 2 proofs
  auto lenient_group = (*store)->GetGroup("p1-i0-v-a3");
  ASSERT_TRUE(lenient_group.ok());
  EXPECT_FALSE(lenient_group->has_value());

  auto v = (*store)->GetGroup("p1-i0-v-a1");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->objective, v1::OBJECTIVE_SFT);
  EXPECT_EQ((*v)->role, v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ((*v)->prompt_token_ids, (std::vector<int32_t>{1, 'V', 'a', 'b', 'z', 'z'}));  // with the BOS
  ASSERT_EQ((*v)->samples.size(), 1u);
  const auto& ids = (*v)->samples[0].sample.completion_token_ids();
  EXPECT_EQ(ids.size(), std::string("E:no S:\\boxed{0}").size() + 1);
  EXPECT_EQ(ids[ids.size() - 1], 2);  // the EOS
  EXPECT_EQ((*v)->samples[0].completion_text, "E:no S:\\boxed{0}");
  auto g = (*store)->GetGroup("p1-i0-g-good");
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ((*g)->samples[0].completion_text, "Sxy");
  auto m = (*store)->GetGroup("p1-i0-m-a2");
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->prompt_token_ids.size(), 8u);  // BOS + "M" + "ab" + "xy" + "hm"

  auto again = phase.RunOnce();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->verifier + again->meta_verifier + again->generator + again->records, 0u);
}

// Each pass takes the analyses in its own shuffled order, records every group again under
// "-e<pass>" ids, skips held-out problems without ending the pass, and a phase made anew mid-pass
// (a restart) carries on where the cursor is.
TEST(WarmupPhase, ShuffledPassesResumeAndSkipHeldOutProblems) {
  TestDir dir;
  RunStoreOptions o;
  o.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::ImportRecordsRequest> records;
  auto add = [&](const std::string& problem, v1::DatasetSplit split, int analyses) {
    auto* p = records.emplace_back().mutable_problem();
    p->set_problem_id(problem);
    p->set_statement(problem);
    p->set_split(split);
    auto* q = records.emplace_back().mutable_proof();
    q->set_proof_id(problem + "-q");
    q->set_problem_id(problem);
    q->set_proof("proof of " + problem);
    q->set_score(0);
    for (int i = 0; i < analyses; ++i) {
      auto* a = records.emplace_back().mutable_analysis();
      a->set_analysis_id(absl::StrCat(problem, "-a", i));
      a->set_proof_id(problem + "-q");
      a->set_analysis(absl::StrCat("E:analysis ", i, " S:\\boxed{0}"));  // the proof's score 0
      a->set_meta_score(1);
    }
  };
  add("held", v1::DATASET_SPLIT_EVAL, 6);  // imported first: the first batches may be all held out
  add("train", v1::DATASET_SPLIT_TRAIN, 12);
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());
  const WarmupTemplates templates{Template("generator", "G{problem}"), Template("verifier", "V{problem}{proof}"),
                                  Template("meta_verifier", "M{problem}{proof}{analysis}")};
  WarmupPhaseOptions options;
  options.encode = ByteIds;
  options.batch = 2;
  options.shuffle_seed = 7;
  // The order pass 1 records the verifier's groups in, one analysis per RunOnce.
  auto order_of_pass = [&](uint32_t epoch) {
    std::vector<std::string> order;
    std::set<std::string> seen;
    WarmupPhaseOptions one = options;
    one.epoch = epoch;
    one.batch = 1;
    auto phase = std::make_unique<WarmupPhase>(store->get(), templates, one);
    for (int call = 0;; ++call) {
      if (call == 7) phase = std::make_unique<WarmupPhase>(store->get(), templates, one);  // a restart
      auto p = phase->RunOnce();
      EXPECT_TRUE(p.ok()) << p.status();
      if (!p.ok() || p->records == 0) break;
      for (int i = 0; i < 12; ++i) {
        const std::string id = absl::StrCat("p1-i0-v-train-a", i, epoch > 1 ? absl::StrCat("-e", epoch) : "");
        auto g = (*store)->GetGroup(id);
        if (g.ok() && g->has_value() && seen.insert(id).second) order.push_back(absl::StrCat(i));
      }
    }
    return order;
  };
  const std::vector<std::string> first = order_of_pass(1);
  const std::vector<std::string> second = order_of_pass(2);
  ASSERT_EQ(first.size(), 12u);   // every training analysis once, none held out
  ASSERT_EQ(second.size(), 12u);  // and again in the second pass
  std::vector<std::string> imported;
  for (int i = 0; i < 12; ++i) imported.push_back(absl::StrCat(i));
  EXPECT_NE(first, imported);  // shuffled
  EXPECT_NE(first, second);    // a new order each pass
  auto held = (*store)->GetGroup("p1-i0-v-held-a0");
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(held->has_value());
}

TEST(WarmupPhase, NeedsATokenizer) {
  TestDir dir;
  auto store = RunStore::Open(dir.File("state.db"), RunStoreOptions{});
  ASSERT_TRUE(store.ok());
  WarmupPhase phase(store->get(), {Template("generator", "{problem}"), Template("verifier", "{problem}{proof}"),
                                   Template("meta_verifier", "{problem}{proof}{analysis}")},
                    WarmupPhaseOptions{});
  EXPECT_EQ(phase.RunOnce().status().message(), "encode: the warm-up needs the model's tokenizer");
}

}  // namespace
}  // namespace dsm
