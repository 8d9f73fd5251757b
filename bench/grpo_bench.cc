// dsm_grpo_bench: throughput of one GRPO training step (Trainer::Step) on this
// machine, for BENCHMARKS.md ("GRPO training step"; driver:
// bench/run_grpo_bench.sh, Python baseline: bench/grpo_eager.py).
//
//   dsm_grpo_bench --model DIR --inputs DIR --write-inputs [--groups 8] [--group-size 8]
//                  [--prompt 64] [--completion 64] [--rank 16] [--alpha 32]
//   dsm_grpo_bench --model DIR --inputs DIR [--threads 2] [--steps 3] [--what peak,step]
//
// --write-inputs makes the fixed inputs both sides train on, in --inputs:
//   adapter/   a PEFT LoRA adapter (r 16, alpha 32, no dropout, all seven
//              linears of every layer), A as PEFT initialises it (seed 7) and B
//              drawn N(0, 0.02²) (seed 8) instead of 0, so that the policy is
//              not the reference and the KL term has a gradient;
//   batch.json groups × group-size samples of prompt + completion token ids
//              (deterministic), a reward per sample, its group advantage
//              (ComputeBatchAdvantages: (r − mean) / (std + 1e-4)) and the
//              behaviour log-probs a sampler would have sent (the adapter's
//              own log-probs minus 0.05 · ((i + t) mod 3), so ratios are not 1),
//              and the trainer options below.
//
// What one timed step is (Trainer::Step on the whole batch, one rank):
//   validate + count the batch; pack it into micro-batches by the token budget
//   (8192 = one micro-batch of 64 rows × 128 tokens here); policy forward with
//   the adapter on (autograd), per-token log-probs of the completion tokens
//   (LM head on completion positions only, 1024 at a time, recomputed in
//   backward); reference forward with the adapter off (no grad; kl_beta > 0);
//   token-level GRPO loss (DAPO aggregation: Σ over all completion tokens / K,
//   clip ε_low 0.2 / ε_high 0.28, importance ratio against the behaviour
//   log-probs, k3 KL with β 0.04); backward to the LoRA tensors only (the base
//   is frozen); global-norm clip to 1.0; one AdamW step (lr 1e-5, betas 0.9 /
//   0.99, eps 1e-8, no weight decay).
//
// "step" prints one JSON line per step (the first is a warm-up, the others are
// timed) with the loss, KL, clip fraction and grad norm, so the report can
// check that grpo_eager.py computes the same losses. "peak" prints the
// torch::mm n × n fp32 rate (best of 5), as dsm_model_bench measures it.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/malloc_tuning.h"
#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "learner/grpo_loss.h"
#include "learner/token_logprobs.h"
#include "learner/trainer.h"
#include "model/llama_model.h"
#include "model/lora.h"
#include "nlohmann/json.hpp"

namespace dsm {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "dsm_grpo_bench: " << what << "\n";
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what + ": " + std::string(v.status().ToString()));
  return std::move(*v);
}

void Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + std::string(s.ToString()));
}

struct Options {
  std::string model;
  std::string inputs;
  bool write_inputs = false;
  int threads = 2;
  int steps = 3;
  std::string what = "peak,step";
  int64_t peak_n = 2048;
  int64_t groups = 8;
  int64_t group_size = 8;
  int64_t prompt = 64;
  int64_t completion = 64;
  int64_t rank = 16;
  double alpha = 32;
};

void Emit(json obj) {
  json line = {{"impl", "dsm"}, {"torch", TORCH_VERSION}, {"threads", at::get_num_threads()}};
  line.update(obj);
  std::cout << line.dump() << std::endl;
}

// The trainer options of the benchmark (written to batch.json for Python).
TrainerOptions BenchTrainerOptions() {
  TrainerOptions o;
  o.learning_rate = 1e-5;
  o.beta1 = 0.9;
  o.beta2 = 0.99;
  o.eps = 1e-8;
  o.weight_decay = 0.0;
  o.max_grad_norm = 1.0;
  o.micro_batch_tokens = 8192;
  o.logprob_chunk_tokens = 1024;
  o.temperature = 1.0;
  o.grpo.epsilon_low = 0.2;
  o.grpo.epsilon_high = 0.28;
  o.grpo.kl_beta = 0.04;
  o.grpo.aggregation = LossAggregation::kTokenMean;
  o.grpo.importance_correction = true;
  o.grpo.scale_rewards = true;
  o.grpo.advantage_epsilon = 1e-4;
  o.seed = 1;
  return o;
}

json OptionsJson(const TrainerOptions& o) {
  return {{"learning_rate", o.learning_rate}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
          {"weight_decay", o.weight_decay}, {"max_grad_norm", o.max_grad_norm},
          {"temperature", o.temperature}, {"epsilon_low", o.grpo.epsilon_low},
          {"epsilon_high", o.grpo.epsilon_high}, {"kl_beta", o.grpo.kl_beta}, {"aggregation", "token"},
          {"importance_correction", o.grpo.importance_correction}};
}

void WriteInputs(const Options& opt, const LlamaModel& model) {
  std::filesystem::create_directories(opt.inputs);
  LoraConfig config;
  config.r = opt.rank;
  config.lora_alpha = opt.alpha;
  config.lora_dropout = 0.0;
  std::shared_ptr<LoraAdapter> adapter = Check(LoraAdapter::Create(model.config(), config, 7), "adapter");
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(8);
    for (auto& [name, t] : adapter->NamedTensors()) {
      if (name.find("lora_B") != std::string::npos) t.copy_(torch::randn(t.sizes()) * 0.001);
    }
  }
  Check(adapter->Save(opt.inputs + "/adapter"), "saving the adapter");

  // Samples: token ids from a fixed formula; a reward per sample, advantages per group.
  const int64_t vocab = model.config().vocab_size;
  const int64_t n = opt.groups * opt.group_size;
  std::vector<TrainingSample> samples(static_cast<size_t>(n));
  std::vector<std::vector<double>> rewards(static_cast<size_t>(opt.groups));
  for (int64_t i = 0; i < n; ++i) {
    TrainingSample& s = samples[static_cast<size_t>(i)];
    const int64_t g = i / opt.group_size;
    for (int64_t t = 0; t < opt.prompt; ++t) s.prompt_ids.push_back((g * 7919 + t * 104729 + 17) % (vocab - 3) + 3);
    for (int64_t t = 0; t < opt.completion; ++t) {
      s.completion_ids.push_back((i * 6151 + t * 15485863 + 101) % (vocab - 3) + 3);
    }
    rewards[static_cast<size_t>(g)].push_back(static_cast<double>((g * 5 + (i % opt.group_size) * 3) % 7) / 6.0);
  }
  const TrainerOptions options = BenchTrainerOptions();
  const BatchAdvantages adv = ComputeBatchAdvantages(rewards, options.grpo);
  if (static_cast<int64_t>(adv.kept.size()) != n) Die("a synthetic group has equal rewards");
  for (size_t k = 0; k < adv.kept.size(); ++k) samples[static_cast<size_t>(adv.kept[k])].advantage = adv.advantages[k];

  // Behaviour log-probs: the adapter's own, perturbed a little.
  const int index = Check(const_cast<LlamaModel&>(model).AddAdapter("init", adapter), "AddAdapter");
  std::vector<PromptCompletion> inputs;
  for (const TrainingSample& s : samples) inputs.push_back({s.prompt_ids, s.completion_ids});
  TokenLogprobsOptions lp_options;
  lp_options.adapter = index;
  torch::NoGradGuard no_grad;
  CompletionLogprobs lp = Check(ComputeTokenLogprobs(model, inputs, lp_options), "behaviour log-probs");
  auto acc = lp.logprobs.accessor<float, 2>();
  json list = json::array();
  for (int64_t i = 0; i < n; ++i) {
    TrainingSample& s = samples[static_cast<size_t>(i)];
    for (int64_t t = 0; t < opt.completion; ++t) {
      s.behaviour_logprobs.push_back(acc[i][t] - 0.05f * static_cast<float>((i + t) % 3));
    }
    list.push_back({{"prompt_ids", s.prompt_ids}, {"completion_ids", s.completion_ids},
                    {"behaviour_logprobs", s.behaviour_logprobs}, {"advantage", s.advantage},
                    {"reward", rewards[static_cast<size_t>(i / opt.group_size)][static_cast<size_t>(i % opt.group_size)]}});
  }
  json batch = {{"groups", opt.groups}, {"group_size", opt.group_size}, {"prompt", opt.prompt},
                {"completion", opt.completion}, {"lora_r", opt.rank}, {"lora_alpha", opt.alpha},
                {"options", OptionsJson(options)}, {"samples", list}};
  std::ofstream(opt.inputs + "/batch.json") << batch.dump();
  Emit({{"kind", "grpo_inputs"}, {"dir", opt.inputs}, {"samples", n}, {"prompt", opt.prompt},
        {"completion", opt.completion}, {"lora_r", opt.rank}});
}

TrainingBatch ReadBatch(const std::string& path) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path + " (run with --write-inputs first)");
  json j = json::parse(in);
  TrainingBatch batch;
  batch.objective = Objective::kGrpo;
  for (const json& s : j.at("samples")) {
    TrainingSample& t = batch.samples.emplace_back();
    t.prompt_ids = s.at("prompt_ids").get<std::vector<int64_t>>();
    t.completion_ids = s.at("completion_ids").get<std::vector<int64_t>>();
    t.behaviour_logprobs = s.at("behaviour_logprobs").get<std::vector<float>>();
    t.advantage = s.at("advantage").get<double>();
  }
  return batch;
}

void Peak(const Options& opt) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const torch::Tensor a = torch::randn({opt.peak_n, opt.peak_n});
  const torch::Tensor b = torch::randn({opt.peak_n, opt.peak_n});
  torch::Tensor c = torch::mm(a, b);
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    c = torch::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double n = static_cast<double>(opt.peak_n);
  Emit({{"kind", "mm_peak"}, {"n", opt.peak_n}, {"flops", 2.0 * n * n * n / best}});
}

void Steps(const Options& opt, LlamaModel& model) {
  const ModelConfig& cfg = model.config();
  std::shared_ptr<LoraAdapter> adapter = Check(LoraAdapter::Load(opt.inputs + "/adapter", cfg), "loading the adapter");
  const int index = Check(model.AddAdapter("policy", adapter), "AddAdapter");
  std::unique_ptr<Trainer> trainer = Check(Trainer::Create(&model, index, BenchTrainerOptions()), "Trainer::Create");
  const TrainingBatch batch = ReadBatch(opt.inputs + "/batch.json");
  int64_t tokens = 0;
  for (const TrainingSample& s : batch.samples) tokens += static_cast<int64_t>(s.prompt_ids.size() + s.completion_ids.size());
  int64_t lora_params = 0;
  for (const torch::Tensor& p : adapter->Parameters()) lora_params += p.numel();
  for (int i = 0; i <= opt.steps; ++i) {
    const auto t0 = Clock::now();
    StepStats stats = Check(trainer->Step(batch), "Trainer::Step");
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    Emit({{"kind", "grpo_step"}, {"step", i + 1}, {"warmup", i == 0}, {"seconds", seconds},
          {"samples", stats.samples}, {"completion_tokens", stats.tokens}, {"tokens", tokens},
          {"micro_batches", stats.micro_batches}, {"loss", stats.loss}, {"kl", stats.kl},
          {"clip_fraction", stats.clip_fraction}, {"ratio_mean", stats.ratio_mean},
          {"grad_norm", stats.grad_norm}, {"lora_params", lora_params}});
  }
}

int Main(int argc, char** argv) {
  Options opt;
  CLI::App app{"GRPO training-step benchmark"};
  app.add_option("--model", opt.model, "HF model folder (bench/make_model.py)")->required();
  app.add_option("--inputs", opt.inputs, "folder of the adapter + batch")->required();
  app.add_flag("--write-inputs", opt.write_inputs, "write the fixed adapter and batch, then exit");
  app.add_option("--threads", opt.threads);
  app.add_option("--steps", opt.steps, "timed steps after the warm-up step");
  app.add_option("--what", opt.what, "peak,step");
  app.add_option("--peak-n", opt.peak_n);
  app.add_option("--groups", opt.groups);
  app.add_option("--group-size", opt.group_size);
  app.add_option("--prompt", opt.prompt);
  app.add_option("--completion", opt.completion);
  app.add_option("--rank", opt.rank);
  app.add_option("--alpha", opt.alpha);
  CLI11_PARSE(app, argc, argv);
  Check(SetTorchThreads(opt.threads), "threads");
  std::unique_ptr<LlamaModel> model = Check(LlamaModel::Load(opt.model), "loading " + opt.model);
  if (opt.write_inputs) {
    WriteInputs(opt, *model);
    return 0;
  }
  for (absl::string_view what : absl::StrSplit(opt.what, ',', absl::SkipEmpty())) {
    if (what == "peak") {
      Peak(opt);
    } else if (what == "step") {
      Steps(opt, *model);
    } else {
      Die("unknown --what " + std::string(what));
    }
  }
  return 0;
}

}  // namespace
}  // namespace dsm

int main(int argc, char** argv) {
  dsm::RetainFreedMemory();  // as the dsm binary does
  return dsm::Main(argc, argv);
}
