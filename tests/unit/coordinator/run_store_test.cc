// RunStore: the run row and its events, evaluations, cursors, datasets
// (import rules of ImportRecordsResponse), training groups; reopening.
#include "services/coordinator/run_store.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/unit/coordinator/test_dir.h"

namespace dsm {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

class RunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    RunStoreOptions o;
    o.db.synchronous_full = false;
    o.limits.max_import_errors = 2;
    auto s = RunStore::Open(RunStore::StatePath(dir_.path() + "/runs", "r1"), o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  TestDir dir_;
  std::unique_ptr<RunStore> store_;
};

v1::ImportRecordsRequest Problem(const std::string& id, const std::string& statement,
                                 v1::DatasetSplit split = v1::DATASET_SPLIT_UNSPECIFIED, uint64_t line = 0) {
  v1::ImportRecordsRequest r;
  r.set_line(line);
  r.set_source_file("f.jsonl");
  r.mutable_problem()->set_problem_id(id);
  r.mutable_problem()->set_statement(statement);
  r.mutable_problem()->set_split(split);
  return r;
}

v1::ImportRecordsRequest Proof(const std::string& id, const std::string& problem_id, double score, uint64_t line = 0) {
  v1::ImportRecordsRequest r;
  r.set_line(line);
  r.set_source_file("f.jsonl");
  r.mutable_proof()->set_proof_id(id);
  r.mutable_proof()->set_problem_id(problem_id);
  r.mutable_proof()->set_proof("a=b; b=c; so a=c");
  r.mutable_proof()->set_score(score);
  return r;
}

v1::ImportRecordsRequest Analysis(const std::string& id, const std::string& proof_id, double meta_score) {
  v1::ImportRecordsRequest r;
  r.mutable_analysis()->set_analysis_id(id);
  r.mutable_analysis()->set_proof_id(proof_id);
  r.mutable_analysis()->set_analysis("Here is my evaluation ... \\boxed{1}");
  r.mutable_analysis()->set_meta_score(meta_score);
  return r;
}

TEST_F(RunStoreTest, RunLifecycleWithEvents) {
  EXPECT_EQ(store_->GetRun().status().code(), absl::StatusCode::kNotFound);
  auto created = store_->CreateRun("r1", "seed: 1\n", v1::RUN_STATE_PENDING, kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->state(), v1::RUN_STATE_PENDING);
  EXPECT_FALSE(created->has_started_at());
  EXPECT_EQ(created->last_event_sequence(), 1u);
  EXPECT_EQ(store_->CreateRun("r1", "x", v1::RUN_STATE_PENDING, kT0).status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->SetRunState(v1::RUN_STATE_RUNNING, "started", kT0 + absl::Seconds(1)).ok());
  ASSERT_TRUE(store_->StartPhase(v1::PHASE_VERIFIER_RL, 1, kT0 + absl::Seconds(2)).ok());
  v1::PhaseProgress p;
  p.set_done(3);
  p.set_total(10);
  p.set_unit("steps");
  ASSERT_TRUE(store_->SetProgress(p, kT0 + absl::Seconds(3)).ok());
  auto failed = store_->SetRunState(v1::RUN_STATE_FAILED, "learner unreachable", kT0 + absl::Seconds(4));
  ASSERT_TRUE(failed.ok());
  Reopen();
  v1::RunStatus s = store_->GetRun().value();
  EXPECT_EQ(s.name(), "r1");
  EXPECT_EQ(s.config_yaml(), "seed: 1\n");
  EXPECT_EQ(s.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(s.error(), "learner unreachable");
  EXPECT_EQ(s.phase(), v1::PHASE_VERIFIER_RL);
  EXPECT_EQ(s.iteration(), 1u);
  EXPECT_EQ(s.progress().done(), 3u);
  EXPECT_EQ(s.progress().unit(), "steps");
  EXPECT_EQ(s.started_at().seconds(), 1700000001);
  EXPECT_EQ(s.finished_at().seconds(), 1700000004);
  EXPECT_EQ(s.last_event_sequence(), 4u);
  auto events = store_->EventsFrom(2, 100).value();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].sequence(), 2u);
  EXPECT_EQ(events[0].state_changed().state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(events[1].phase_started().phase(), v1::PHASE_VERIFIER_RL);
  EXPECT_EQ(events[2].state_changed().message(), "learner unreachable");
  EXPECT_EQ(events[2].time().seconds(), 1700000004);
  // Resume clears the error and the finish time.
  v1::RunStatus resumed = store_->SetRunState(v1::RUN_STATE_RUNNING, "resumed", kT0 + absl::Seconds(5)).value();
  EXPECT_EQ(resumed.error(), "");
  EXPECT_FALSE(resumed.has_finished_at());
}

TEST_F(RunStoreTest, RunNameRules) {
  EXPECT_TRUE(RunStore::ValidateRunName("tiny-1_a").ok());
  EXPECT_EQ(std::string(RunStore::ValidateRunName("Tiny").message()),
            "name: \"Tiny\" has a character outside [a-z0-9_-]");
  EXPECT_EQ(std::string(RunStore::ValidateRunName("").message()), "name: 0 bytes not in [1, 64]");
  EXPECT_EQ(RunStore::StatePath("runs", "tiny"), "runs/tiny/state.db");
}

TEST_F(RunStoreTest, EvaluationsReplaceARedo) {
  ASSERT_TRUE(store_->CreateRun("r1", "", v1::RUN_STATE_RUNNING, kT0).ok());
  v1::Evaluation e;
  e.set_phase(v1::PHASE_VERIFIER_RL);
  e.set_iteration(1);
  e.set_point(v1::EVALUATION_POINT_BEFORE);
  (*e.mutable_metrics())["verifier_accuracy"] = 0.5;
  ASSERT_TRUE(store_->RecordEvaluation(e, kT0).ok());
  (*e.mutable_metrics())["verifier_accuracy"] = 0.55;  // redone after a restart
  ASSERT_TRUE(store_->RecordEvaluation(e, kT0).ok());
  e.set_point(v1::EVALUATION_POINT_AFTER);
  (*e.mutable_metrics())["verifier_accuracy"] = 0.8;
  ASSERT_TRUE(store_->RecordEvaluation(e, kT0).ok());
  v1::RunStatus s = store_->GetRun().value();
  ASSERT_EQ(s.evaluations_size(), 2);
  EXPECT_EQ(s.evaluations(0).metrics().at("verifier_accuracy"), 0.55);
  EXPECT_EQ(s.evaluations(1).metrics().at("verifier_accuracy"), 0.8);
}

TEST_F(RunStoreTest, CursorsPersist) {
  const std::string name = RunStore::CursorName(v1::PHASE_GENERATOR_RL, 2, "problems");
  EXPECT_EQ(name, "phase=5/iteration=2/problems");
  EXPECT_EQ(store_->GetCursor(name).value(), 0);
  ASSERT_TRUE(store_->SetCursor(name, 17, kT0).ok());
  ASSERT_TRUE(store_->SetCursor(name, 18, kT0).ok());
  Reopen();
  EXPECT_EQ(store_->GetCursor(name).value(), 18);
}

TEST_F(RunStoreTest, ImportSkipsBadRecordsAndCountsDuplicates) {
  std::vector<v1::ImportRecordsRequest> batch = {
      Problem("p1", "Show a=c", v1::DATASET_SPLIT_UNSPECIFIED, 1),
      Problem("p2", "Show b=d", v1::DATASET_SPLIT_EVAL, 2),
      Proof("pr1", "p1", 1, 3),
      Proof("pr2", "p9", 0, 4),                               // unknown problem
      Proof("pr3", "p1", 0.7, 5),                             // bad score
      Problem("p1", "Show a=c", v1::DATASET_SPLIT_TRAIN, 6),  // identical: duplicate
      Problem("p2", "Different", v1::DATASET_SPLIT_EVAL, 7),  // conflict
  };
  v1::ImportRecordsResponse r = store_->ImportRecords(batch, /*atomic=*/false).value();
  EXPECT_EQ(r.received(), 7u);
  EXPECT_EQ(r.imported(), 3u);
  EXPECT_EQ(r.duplicates(), 1u);
  EXPECT_EQ(r.error_count(), 3u);
  ASSERT_EQ(r.errors_size(), 2);  // max_import_errors = 2
  EXPECT_EQ(FormatImportError(r.errors(0)), "f.jsonl:4: proof.problem_id: \"p9\" is not an imported problem");
  EXPECT_EQ(FormatImportError(r.errors(1)), "f.jsonl:5: proof.score: 0.7 is not one of 0, 0.5, 1");
  EXPECT_TRUE(r.committed());
  DatasetCounts n = store_->CountRecords().value();
  EXPECT_EQ(n.problems_train, 1u);
  EXPECT_EQ(n.problems_eval, 1u);
  EXPECT_EQ(n.proofs, 1u);
  auto proofs = store_->Proofs(0, 10).value();
  ASSERT_EQ(proofs.size(), 1u);
  EXPECT_EQ(proofs[0].record.labeller(), "human");
  auto eval = store_->Problems(v1::DATASET_SPLIT_EVAL, 0, 10).value();
  ASSERT_EQ(eval.size(), 1u);
  EXPECT_EQ(eval[0].record.statement(), "Show b=d");
}

TEST_F(RunStoreTest, AtomicImportCommitsNothingOnError) {
  std::vector<v1::ImportRecordsRequest> batch = {Problem("p1", "S", v1::DATASET_SPLIT_TRAIN, 1),
                                                 Proof("pr1", "p1", 1, 2), Analysis("a1", "pr1", 0.5),
                                                 Analysis("a2", "nope", 1)};
  v1::ImportRecordsResponse r = store_->ImportRecords(batch, /*atomic=*/true).value();
  EXPECT_FALSE(r.committed());
  EXPECT_EQ(r.imported(), 0u);
  EXPECT_EQ(r.error_count(), 1u);
  EXPECT_EQ(r.errors(0).field(), "analysis.proof_id");
  EXPECT_EQ(store_->CountRecords().value().problems_train, 0u);
  batch.pop_back();
  r = store_->ImportRecords(batch, /*atomic=*/true).value();
  EXPECT_TRUE(r.committed());
  EXPECT_EQ(r.imported(), 3u);
  EXPECT_EQ(store_->Analyses(0, 10).value().size(), 1u);
}

TEST_F(RunStoreTest, AutoLabelsMoveTheCursorInTheSameTransaction) {
  ASSERT_TRUE(store_->ImportRecords({Problem("p1", "S")}, false).ok());
  v1::LabelledProof label;
  label.set_proof_id("auto-1");
  label.set_problem_id("p1");
  label.set_proof("a=b so a=c");
  label.set_score(0.5);
  ASSERT_TRUE(store_->AddAutoLabels({label}, 1, CursorUpdate{"phase=6/iteration=1/proofs", 4}, kT0).ok());
  v1::LabelledProof bad = label;
  bad.set_proof_id("auto-2");
  bad.set_problem_id("p404");
  absl::Status s = store_->AddAutoLabels({bad}, 1, CursorUpdate{"phase=6/iteration=1/proofs", 5}, kT0);
  EXPECT_EQ(std::string(s.message()), "proof.problem_id: \"p404\" is not an imported problem");
  EXPECT_EQ(store_->GetCursor("phase=6/iteration=1/proofs").value(), 4);  // not moved
  auto proofs = store_->Proofs(0, 10).value();
  ASSERT_EQ(proofs.size(), 1u);
  EXPECT_EQ(proofs[0].iteration, 1u);
  EXPECT_EQ(proofs[0].record.labeller(), "auto");
  EXPECT_TRUE(store_->HasProofText("p1", "a=b so a=c").value());
  EXPECT_FALSE(store_->HasProofText("p1", "other").value());
  EXPECT_EQ(store_->CountRecords().value().auto_labelled_proofs, 1u);
}

// Problems by their labels: a proof labelled by phase 5 ("auto") leaves a problem unlabelled.
TEST_F(RunStoreTest, ListsProblemsWithOrWithoutLabelledProofs) {
  const std::vector<v1::ImportRecordsRequest> records = {
      Problem("p1", "S1", v1::DATASET_SPLIT_TRAIN), Problem("p2", "S2", v1::DATASET_SPLIT_TRAIN),
      Problem("p3", "S3", v1::DATASET_SPLIT_TRAIN), Problem("p4", "S4", v1::DATASET_SPLIT_EVAL),
      Proof("pr1", "p1", 1)};
  ASSERT_TRUE(store_->ImportRecords(records, false).ok());
  v1::LabelledProof label;
  label.set_proof_id("auto-1");
  label.set_problem_id("p3");
  label.set_proof("a=b so a=c");
  label.set_score(1);
  ASSERT_TRUE(store_->AddAutoLabels({label}, 1, std::nullopt, kT0).ok());
  auto ids = [&](ProblemLabels labels, int64_t after) {
    absl::StatusOr<std::vector<StoredProblem>> problems = store_->Problems(v1::DATASET_SPLIT_TRAIN, after, 10, labels);
    std::vector<std::string> out;
    if (!problems.ok()) return std::vector<std::string>{std::string(problems.status().message())};
    for (const StoredProblem& p : *problems) out.push_back(p.record.problem_id());
    return out;
  };
  EXPECT_EQ(ids(ProblemLabels::kAny, 0), (std::vector<std::string>{"p1", "p2", "p3"}));
  EXPECT_EQ(ids(ProblemLabels::kUnlabelled, 0), (std::vector<std::string>{"p2", "p3"}));
  EXPECT_EQ(ids(ProblemLabels::kLabelled, 0), (std::vector<std::string>{"p1"}));
  absl::StatusOr<std::vector<StoredProblem>> all = store_->Problems(v1::DATASET_SPLIT_TRAIN, 0, 10);
  ASSERT_TRUE(all.ok() && all->size() == 3u);
  const int64_t p2_seq = (*all)[1].seq;
  EXPECT_EQ(ids(ProblemLabels::kUnlabelled, p2_seq), (std::vector<std::string>{"p3"}));
  EXPECT_TRUE(ids(ProblemLabels::kLabelled, p2_seq).empty());
}

TEST_F(RunStoreTest, GroupsRoundTripAndAreIdempotent) {
  GroupRecord g;
  g.group_id = "r1/2/1/p1/lease-1";
  g.role = v1::ADAPTER_ROLE_VERIFIER;
  g.phase = v1::PHASE_VERIFIER_RL;
  g.iteration = 1;
  g.problem_id = "p1";
  g.prompt_token_ids = {1, 2, 3};
  g.logprob_temperature = 0.7f;
  g.source = "verifier_rl";
  for (int i = 0; i < 2; ++i) {
    SampleRecord s;
    s.sample.add_completion_token_ids(10 + i);
    s.sample.add_completion_token_ids(20 + i);
    s.sample.add_behaviour_logprobs(-0.5f);
    s.sample.add_behaviour_logprobs(-1.25f);
    s.sample.add_loss_mask(true);
    s.sample.add_loss_mask(i == 0);
    s.sample.set_adapter_version(7);
    s.sample.set_reward(i * 0.5);
    s.sample.set_finish_reason(v1::FINISH_REASON_STOP_TOKEN);
    s.completion_text = absl::StrCat("text", i);
    s.reward_parts = {{"r_format", 1.0}, {"r_score", i * 0.5}};
    g.samples.push_back(s);
  }
  EXPECT_TRUE(store_->RecordGroup(g, CursorUpdate{"c", 1}, kT0).value());
  EXPECT_FALSE(store_->RecordGroup(g, CursorUpdate{"c", 2}, kT0).value());  // stored once
  EXPECT_EQ(store_->GetCursor("c").value(), 2);
  Reopen();
  auto pending = store_->GroupsWithStatus(kGroupPending, 10).value();
  ASSERT_EQ(pending.size(), 1u);
  const GroupRecord& back = pending[0];
  EXPECT_EQ(back.prompt_token_ids, (std::vector<int32_t>{1, 2, 3}));
  ASSERT_EQ(back.samples.size(), 2u);
  EXPECT_EQ(back.samples[1].sample.completion_token_ids(1), 21);
  EXPECT_EQ(back.samples[1].sample.behaviour_logprobs(1), -1.25f);
  EXPECT_FALSE(back.samples[1].sample.loss_mask(1));
  EXPECT_EQ(back.samples[1].sample.reward(), 0.5);
  EXPECT_EQ(back.samples[1].completion_text, "text1");
  EXPECT_EQ(back.samples[1].reward_parts.at("r_score"), 0.5);
  v1::ScoredGroup sg = RunStore::ToScoredGroup(back);
  EXPECT_EQ(sg.group_id(), g.group_id);
  EXPECT_EQ(sg.samples_size(), 2);
  EXPECT_EQ(sg.logprob_temperature(), 0.7f);
  EXPECT_EQ(sg.source(), "verifier_rl");
  ASSERT_TRUE(store_->SetGroupStatus(g.group_id, v1::GROUP_STATUS_ACCEPTED, 42).ok());
  EXPECT_TRUE(store_->GroupsWithStatus(kGroupPending, 10).value().empty());
  EXPECT_EQ(store_->GetGroup(g.group_id).value()->accept_sequence, 42u);
  EXPECT_EQ(store_->SetGroupStatus("nope", 1, 0).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dsm
