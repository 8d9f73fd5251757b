#include "learner/data_parallel.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <functional>
#include <iostream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "learner/trainer.h"
#include "tests/unit/learner/trainer_test_util.h"

namespace dsm {
namespace {

using ::testing::HasSubstr;

// Runs fn(rank) for every rank on its own thread and waits for all.
void RunRanks(int world_size, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) threads.emplace_back(fn, r);
  for (std::thread& t : threads) t.join();
}

DataParallelOptions Rank(int rank, int world_size, const std::string& address) {
  DataParallelOptions o;
  o.rank = rank;
  o.world_size = world_size;
  o.rendezvous_address = address;
  o.timeout = std::chrono::seconds(30);
  return o;
}

TEST(ParseHostPort, AcceptsHostPortAndBracketedIpv6) {
  auto a = ParseHostPort("10.0.0.7:29500");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "10.0.0.7");
  EXPECT_EQ(a->second, 29500);
  auto b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, "::1");
  EXPECT_EQ(b->second, 0);
  for (const char* bad : {"", "host", ":80", "host:", "host:99999", "host:x", "[::1:5"}) {
    auto s = ParseHostPort(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("rendezvous_address")) << bad;
  }
}

TEST(DataParallelOptions, ValidateNamesTheField) {
  DataParallelOptions o;
  o.world_size = 0;
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("world_size"));
  o = DataParallelOptions();
  o.world_size = 2;
  o.rank = 2;
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("rank"));
  o.rank = 1;
  o.backend = "mpi";
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("backend"));
  o.backend = "gloo";
  o.rendezvous_address = "nowhere";
  EXPECT_THAT(std::string(o.Validate().message()), HasSubstr("rendezvous_address"));
}

TEST(DataParallel, SingleRankNeedsNoNetworkAndCollectivesAreNoOps) {
  auto dp = DataParallel::Create(DataParallelOptions());
  ASSERT_TRUE(dp.ok()) << dp.status();
  std::vector<torch::Tensor> t = {torch::tensor({1.5f, 2.5f})};
  ASSERT_TRUE((*dp)->AllReduceSum(t).ok());
  EXPECT_TRUE(torch::equal(t[0], torch::tensor({1.5f, 2.5f})));
  auto s = (*dp)->BroadcastString("abc");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "abc");
  EXPECT_TRUE((*dp)->Barrier().ok());
}

TEST(DataParallel, TwoRanksRendezvousByAddressAndReduce) {
  const uint16_t port = learner_test::FreePort();
  ASSERT_NE(port, 0);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  std::vector<absl::Status> status(2);
  std::vector<std::vector<torch::Tensor>> sums(2);
  std::vector<std::vector<torch::Tensor>> broadcasts(2);
  std::vector<std::string> strings(2);
  RunRanks(2, [&](int rank) {
    auto dp = DataParallel::Create(Rank(rank, 2, address));
    if (!dp.ok()) {
      status[rank] = dp.status();
      return;
    }
    if (rank == 0) {
      EXPECT_EQ((*dp)->store_port(), port);
    }
    const float r = static_cast<float>(rank);
    // Two dtypes in one call: one collective each.
    sums[rank] = {torch::tensor({1.0f + r, 10.0f * r}), torch::tensor({int64_t{3} + rank}),
                  torch::full({2, 2}, 0.5f + r)};
    status[rank] = (*dp)->AllReduceSum(sums[rank]);
    if (!status[rank].ok()) return;
    broadcasts[rank] = {torch::full({3}, 7.0f * (r + 1))};
    status[rank] = (*dp)->Broadcast(broadcasts[rank], 1);
    if (!status[rank].ok()) return;
    auto text = (*dp)->BroadcastString(rank == 0 ? "from rank 0" : "ignored", 0);
    status[rank] = text.status();
    if (text.ok()) strings[rank] = *text;
    if (status[rank].ok()) status[rank] = (*dp)->Barrier();
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
    EXPECT_TRUE(torch::equal(sums[r][0], torch::tensor({3.0f, 10.0f})));
    EXPECT_TRUE(torch::equal(sums[r][1], torch::tensor({int64_t{7}})));
    EXPECT_TRUE(torch::equal(sums[r][2], torch::full({2, 2}, 2.0f)));
    EXPECT_TRUE(torch::equal(broadcasts[r][0], torch::full({3}, 14.0f)));
    EXPECT_EQ(strings[r], "from rank 0");
  }
}

TEST(DataParallel, JoinsThroughACallerStore) {
  c10d::TCPStoreOptions server;
  server.port = 0;
  server.isServer = true;
  server.waitWorkers = false;
  server.numWorkers = 2;
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", server);
  const uint16_t port = store->getPort();
  ASSERT_NE(port, 0);
  std::vector<absl::Status> status(2);
  std::vector<torch::Tensor> grads(2);
  RunRanks(2, [&](int rank) {
    auto dp = rank == 0 ? DataParallel::CreateWithStore(store, Rank(0, 2, ""))
                        : DataParallel::Create(Rank(1, 2, "127.0.0.1:" + std::to_string(port)));
    if (!dp.ok()) {
      status[rank] = dp.status();
      return;
    }
    // A parameter without a gradient contributes zeros.
    torch::Tensor p = torch::zeros({2}, torch::requires_grad());
    if (rank == 1) p.mutable_grad() = torch::tensor({1.0f, -2.0f});
    status[rank] = (*dp)->AllReduceGradients({p});
    grads[rank] = p.grad();
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];
    EXPECT_TRUE(torch::equal(grads[r], torch::tensor({1.0f, -2.0f})));
  }
}

TEST(DataParallel, MissingRankZeroTimesOutWithAnError) {
  DataParallelOptions o = Rank(1, 2, "127.0.0.1:" + std::to_string(learner_test::FreePort()));
  o.timeout = std::chrono::milliseconds(1500);
  const auto start = std::chrono::steady_clock::now();
  auto dp = DataParallel::Create(o);
  EXPECT_FALSE(dp.ok());
  EXPECT_THAT(std::string(dp.status().message()), HasSubstr("rank 1")) << dp.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

// The acceptance check: two ranks (Gloo on loopback) on halves of a global
// batch give the same adapter as one rank on the whole batch.
TEST(DataParallelTrainer, TwoRanksGiveTheAdapterOfOneRank) {
  constexpr int kSteps = 3;
  constexpr int64_t kBatch = 8;
  TrainerOptions options;
  // Adam's first updates are nearly lr·sign(g), so float-order differences in
  // gradients that almost cancel show up scaled by lr (about 1e-3·lr here).
  options.learning_rate = 1e-4;
  options.micro_batch_tokens = 24;  // several micro-batches per rank
  options.seed = 5;

  // The global batches, made once from the initial policy (behaviour log-probs).
  learner_test::TinyModel single = learner_test::LoadTinyModel();
  ASSERT_NE(single.model, nullptr);
  std::vector<TrainingBatch> batches;
  for (int s = 0; s < kSteps; ++s) batches.push_back(learner_test::GrpoBatch(single, s, kBatch));

  auto one = Trainer::Create(single.model.get(), single.adapter, options);
  ASSERT_TRUE(one.ok()) << one.status();
  std::vector<double> single_loss;
  for (const TrainingBatch& b : batches) {
    auto stats = (*one)->Step(b);
    ASSERT_TRUE(stats.ok()) << stats.status();
    single_loss.push_back(stats->loss);
  }

  const std::string address = "127.0.0.1:" + std::to_string(learner_test::FreePort());
  std::vector<learner_test::TinyModel> models(2);
  for (auto& m : models) {
    m = learner_test::LoadTinyModel();
    ASSERT_NE(m.model, nullptr);
  }
  std::vector<absl::Status> status(2);
  std::vector<std::vector<StepStats>> stats(2);
  RunRanks(2, [&](int rank) {
    TrainerOptions o = options;
    o.parallel = Rank(rank, 2, address);
    auto trainer = Trainer::Create(models[rank].model.get(), models[rank].adapter, o);
    if (!trainer.ok()) {
      status[rank] = trainer.status();
      return;
    }
    EXPECT_EQ((*trainer)->world_size(), 2);
    for (const TrainingBatch& global : batches) {
      TrainingBatch shard = global;
      // Uneven shards (3 + 5): the normalisers are global, so it does not matter.
      shard.samples.assign(global.samples.begin() + (rank == 0 ? 0 : 3),
                           rank == 0 ? global.samples.begin() + 3 : global.samples.end());
      auto s = (*trainer)->Step(shard);
      if (!s.ok()) {
        status[rank] = s.status();
        return;
      }
      stats[rank].push_back(*s);
    }
  });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(status[r].ok()) << "rank " << r << ": " << status[r];

  const LoraAdapter& reference = *single.model->adapter(single.adapter);
  const double diff = learner_test::MaxAdapterDiff(reference, *models[0].model->adapter(models[0].adapter));
  std::cout << "max |adapter(2 ranks) - adapter(1 rank)| = " << diff << "\n";
  EXPECT_LE(diff, 1e-6);
  learner_test::TinyModel untrained = learner_test::LoadTinyModel();
  ASSERT_NE(untrained.model, nullptr);
  EXPECT_GT(learner_test::MaxAdapterDiff(reference, *untrained.model->adapter(untrained.adapter)), 5e-5)
      << "the adapter did not train";
  // Both ranks hold exactly the same adapter.
  EXPECT_TRUE(learner_test::SameAdapterBits(*models[0].model->adapter(models[0].adapter),
                                            *models[1].model->adapter(models[1].adapter)));
  for (int s = 0; s < kSteps; ++s) {
    EXPECT_NEAR(stats[0][s].loss, single_loss[s], 1e-6);
    EXPECT_EQ(stats[0][s].samples, kBatch);
    EXPECT_EQ(stats[1][s].tokens, stats[0][s].tokens);
  }
}

TEST(DataParallelTrainer, BadShardOnOneRankFailsTheStepOnBoth) {
  const std::string address = "127.0.0.1:" + std::to_string(learner_test::FreePort());
  std::vector<learner_test::TinyModel> models(2);
  for (auto& m : models) {
    m = learner_test::LoadTinyModel();
    ASSERT_NE(m.model, nullptr);
  }
  std::vector<absl::Status> status(2);
  std::vector<int64_t> steps(2, -1);
  RunRanks(2, [&](int rank) {
    TrainerOptions o;
    o.parallel = Rank(rank, 2, address);
    auto trainer = Trainer::Create(models[rank].model.get(), models[rank].adapter, o);
    if (!trainer.ok()) {
      status[rank] = trainer.status();
      return;
    }
    TrainingBatch batch;
    batch.objective = Objective::kSft;
    batch.samples = learner_test::SyntheticSamples(rank, 2);
    if (rank == 1) batch.samples[1].completion_ids.push_back(100000);  // outside the vocabulary
    status[rank] = (*trainer)->Step(batch).status();
    steps[rank] = (*trainer)->step();
  });
  EXPECT_EQ(status[0].code(), absl::StatusCode::kInvalidArgument) << status[0];
  EXPECT_THAT(std::string(status[0].message()), HasSubstr("another learner rank"));
  EXPECT_EQ(status[1].code(), absl::StatusCode::kInvalidArgument) << status[1];
  EXPECT_THAT(std::string(status[1].message()), HasSubstr("sample 1: completion_ids"));
  EXPECT_EQ(steps[0], 0);
  EXPECT_EQ(steps[1], 0);
}

TEST(DataParallelTrainer, RankWithoutSamplesStillTakesPartInTheStep) {
  const std::string address = "127.0.0.1:" + std::to_string(learner_test::FreePort());
  std::vector<learner_test::TinyModel> models(2);
  for (auto& m : models) {
    m = learner_test::LoadTinyModel();
    ASSERT_NE(m.model, nullptr);
  }
  std::vector<absl::StatusOr<StepStats>> stats(2, absl::UnknownError("not run"));
  RunRanks(2, [&](int rank) {
    TrainerOptions o;
    o.learning_rate = 1e-3;
    o.parallel = Rank(rank, 2, address);
    auto trainer = Trainer::Create(models[rank].model.get(), models[rank].adapter, o);
    if (!trainer.ok()) {
      stats[rank] = trainer.status();
      return;
    }
    TrainingBatch batch;
    batch.objective = Objective::kSft;
    if (rank == 0) batch.samples = learner_test::SyntheticSamples(0, 3);
    stats[rank] = (*trainer)->Step(batch);
  });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(stats[r].ok()) << "rank " << r << ": " << stats[r].status();
  EXPECT_EQ(stats[1]->samples, 3);
  EXPECT_EQ(stats[1]->micro_batches, 0);
  EXPECT_DOUBLE_EQ(stats[0]->loss, stats[1]->loss);
  EXPECT_TRUE(learner_test::SameAdapterBits(*models[0].model->adapter(models[0].adapter),
                                            *models[1].model->adapter(models[1].adapter)));
}

}  // namespace
}  // namespace dsm
