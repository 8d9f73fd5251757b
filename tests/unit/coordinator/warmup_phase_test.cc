// Phase 0: SFT groups from the run's labelled data, tokenized, EOS-ended,
// recorded once.
#include "services/coordinator/warmup_phase.h"

#include <gtest/gtest.h>

#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

PromptTemplate Template(const std::string& role, const std::string& body) {
  auto t = PromptTemplate::Parse("role: " + role + "\nevaluation_marker: E:\nscore_marker: S:\n---\n" + body,
                                 role + ".txt");
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

TEST(WarmupPhase, SftGroupsFromLabelledData) {
  TestDir dir;
  RunStoreOptions o;
  o.db.synchronous_full = false;
  auto store = RunStore::Open(dir.File("state.db"), o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::ImportRecordsRequest> records(5);
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
  faithful->set_analysis("no");
  faithful->set_meta_score(1);
  auto* bogus = records[4].mutable_analysis();
  bogus->set_analysis_id("a2");
  bogus->set_proof_id("good");
  bogus->set_analysis("hm");
  bogus->set_meta_score(0);
  ASSERT_TRUE((*store)->ImportRecords(records, true).ok());

  WarmupPhaseOptions options;
  options.encode = [](const std::string& text) -> absl::StatusOr<std::vector<int32_t>> {
    return std::vector<int32_t>(text.begin(), text.end());
  };
  options.eos_token_id = 2;
  options.generator_completion = [](const v1::ProblemRecord&, const v1::LabelledProof& p) { return "S" + p.proof(); };
  options.meta_completion = [](const v1::LabelledAnalysis& a) { return "M" + a.analysis(); };
  WarmupPhase phase(store->get(), {Template("generator", "G{problem}"), Template("verifier", "V{problem}{proof}"),
                                   Template("meta_verifier", "M{problem}{proof}{analysis}")},
                    options);
  auto progress = phase.RunOnce();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->verifier, 1u);       // only the faithful analysis
  EXPECT_EQ(progress->meta_verifier, 2u);  // both analyses
  EXPECT_EQ(progress->generator, 1u);      // only the proof scored 1

  auto v = (*store)->GetGroup("p1-i0-v-a1");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->objective, v1::OBJECTIVE_SFT);
  EXPECT_EQ((*v)->role, v1::ADAPTER_ROLE_VERIFIER);
  EXPECT_EQ((*v)->prompt_token_ids, (std::vector<int32_t>{'V', 'a', 'b', 'z', 'z'}));
  ASSERT_EQ((*v)->samples.size(), 1u);
  const auto& ids = (*v)->samples[0].sample.completion_token_ids();
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.end()), (std::vector<int32_t>{'n', 'o', 2}));
  auto g = (*store)->GetGroup("p1-i0-g-good");
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ((*g)->samples[0].completion_text, "Sxy");
  auto m = (*store)->GetGroup("p1-i0-m-a2");
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->prompt_token_ids.size(), 7u);  // "M" + "ab" + "xy" + "hm"

  auto again = phase.RunOnce();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->verifier + again->meta_verifier + again->generator, 0u);
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
