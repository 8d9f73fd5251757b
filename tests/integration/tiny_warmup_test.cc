// Phase-0 warm-up of the built-in tiny model (issue 6): a model that dsm initialises itself
// (model/model_init.h, tokenizer from tasks/chain_tokenizer.h) is taught the chain domain by
// supervised fine-tuning, then greedy-sampled on held-out problems and graded with the exact
// checker:
//   generator: prompt = short instruction + problem, completion = the canonical proof and its
//              faithful self-evaluation in the generator format; measured: share of proofs the
//              checker scores 1;
//   verifier:  prompt = short instruction + problem + a labelled proof (any flaw), completion =
//              the checker's faithful analysis; measured: share of analyses whose score equals
//              the checker's, and share in the right format.
//
// Two ways to train:
//   lora: learner/trainer.h's Trainer (Objective::kSft), which trains LoRA parameters only;
//   full: every base weight (a prototype loop here: the same SFT loss, AdamW, clipping), what
//         a full-parameter SFT mode of the trainer would do.
//
// Tests: a short full-parameter run (non-slow) and a longer one (slow) that assert the
// accuracies; a LoRA-only run that records how little LoRA on a random base learns. The
// `Experiment` test runs one configuration from environment variables (skipped without
// DSM_WARMUP_EXPERIMENT=1) and prints one CURVE line per evaluation:
//   DSM_WARMUP_MODE=lora|full DSM_WARMUP_STEPS DSM_WARMUP_LR DSM_WARMUP_RANK DSM_WARMUP_HIDDEN
//   DSM_WARMUP_LAYERS DSM_WARMUP_HEADS DSM_WARMUP_KV_HEADS DSM_WARMUP_INTERMEDIATE
//   DSM_WARMUP_BATCH (samples of each kind per step) DSM_WARMUP_EVAL_EVERY DSM_WARMUP_EVAL (problems)
//   DSM_WARMUP_SEED DSM_WARMUP_WARMUP (lr warm-up steps) DSM_WARMUP_SECONDS (training time budget)
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "learner/trainer.h"
#include "model/llama_model.h"
#include "model/lora.h"
#include "model/model_init.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "tasks/chain_analysis.h"
#include "tasks/chain_checker.h"
#include "tasks/chain_domain.h"
#include "tasks/chain_tokenizer.h"

namespace dsm {
namespace {

// The short prompts (the tiny model's context is small; the configs/prompts templates are
// ~400 tokens each).
constexpr char kGeneratorPrompt[] = "Prove the goal, then grade your proof.\n## Problem\n{problem}\n";
constexpr char kVerifierPrompt[] = "Grade the solution.\n## Problem\n{problem}\n## Solution\n{proof}\n";

std::string Fill(std::string text, const std::string& key, const std::string& value) {
  const size_t at = text.find(key);
  if (at != std::string::npos) text.replace(at, key.size(), value);
  return text;
}
std::string GeneratorPrompt(const ChainProblem& p) { return Fill(kGeneratorPrompt, "{problem}", p.statement.Text()); }
std::string VerifierPrompt(const ChainProblem& p, const std::string& proof) {
  return Fill(Fill(kVerifierPrompt, "{problem}", p.statement.Text()), "{proof}", proof);
}

enum class Mode { kLora, kFull };

struct WarmupSetup {
  Mode mode = Mode::kFull;
  int steps = 100;
  double learning_rate = 3e-3;
  int warmup_steps = 10;
  int lora_rank = 16;
  ModelInitOptions model;
  int batch = 16;       // samples of each kind (generator, verifier) per step
  int eval_every = 0;   // 0 = only before and after
  int eval_problems = 48;
  double verifier_correct_fraction = 0.3;  // share of correct proofs in verifier data
  uint64_t seed = 1;
  double max_train_seconds = 0;  // > 0: stop (and evaluate) once training took this long
};

struct EvalResult {
  int step = 0;
  double train_seconds = 0;  // training time so far (evaluations not counted)
  double loss = 0;           // last step's loss
  double generator_score1 = 0;      // share of eval proofs the checker scores 1
  double generator_mean_score = 0;
  double generator_format = 0;      // share with "## Solution" and a parsable self-evaluation
  double verifier_agreement = 0;    // share of analyses whose score is the checker's
  double verifier_format = 0;       // share with both markers and a valid boxed score
  double verifier_hallucinated = 0; // share naming a sound line or failing a correct proof
  double verifier_majority = 0;     // share of the most common true score (the "always say x" baseline)
};

std::string Describe(const EvalResult& r) {
  return absl::StrFormat(
      "step=%d train_s=%.1f loss=%.3f gen_score1=%.3f gen_mean=%.3f gen_format=%.3f ver_agree=%.3f "
      "ver_format=%.3f ver_halluc=%.3f ver_majority=%.3f",
      r.step, r.train_seconds, r.loss, r.generator_score1, r.generator_mean_score, r.generator_format,
      r.verifier_agreement, r.verifier_format, r.verifier_hallucinated, r.verifier_majority);
}

class WarmupRun {
 public:
  explicit WarmupRun(const WarmupSetup& setup) : setup_(setup) {}

  void Init() {
    ASSERT_TRUE(SetTorchThreads(2).ok());
    // Tiny weights and Adam moments go denormal; x86 then slows down by an order of magnitude.
    at::globalContext().setFlushDenormal(true);
    ChainTokenizerOptions tok_options;
    auto chain = ChainTokenizer::Build(tok_options, {kGeneratorPrompt, kVerifierPrompt});
    ASSERT_TRUE(chain.ok()) << chain.status();
    const std::string dir = absl::StrCat(testing::TempDir(), "/tiny_warmup_", setup_.seed, "_", getpid());
    auto config = WriteInitialModel(dir, setup_.model, chain->TokenizerJson(), chain->TokenizerConfigJson());
    ASSERT_TRUE(config.ok()) << config.status();
    parameters_ = CountModelParameters(*config);
    auto model = LlamaModel::Load(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto tokenizer = Tokenizer::FromFile(dir + "/tokenizer.json");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);

    auto eval = GenerateChainProblems({}, ChainSplit::kEval, 1000000 + setup_.seed, setup_.eval_problems);
    ASSERT_TRUE(eval.ok()) << eval.status();
    eval_problems_ = std::move(*eval);

    if (setup_.mode == Mode::kLora) {
      LoraConfig lora;
      lora.r = setup_.lora_rank;
      lora.lora_alpha = 2.0 * setup_.lora_rank;
      auto adapter = LoraAdapter::Create(model_->config(), lora, setup_.seed);
      ASSERT_TRUE(adapter.ok()) << adapter.status();
      auto index = model_->AddAdapter("warmup", std::shared_ptr<LoraAdapter>(std::move(*adapter)));
      ASSERT_TRUE(index.ok()) << index.status();
      adapter_index_ = *index;
      TrainerOptions options;
      options.learning_rate = setup_.learning_rate;
      options.warmup_steps = setup_.warmup_steps;
      options.seed = setup_.seed;
      auto trainer = Trainer::Create(model_.get(), adapter_index_, options);
      ASSERT_TRUE(trainer.ok()) << trainer.status();
      trainer_ = std::move(*trainer);
    } else {
      for (auto& [name, weight] : model_->NamedWeights()) {
        weight.requires_grad_(true);
        full_params_.push_back(weight);
      }
      full_optimizer_ = std::make_unique<torch::optim::AdamW>(
          full_params_, torch::optim::AdamWOptions(setup_.learning_rate).betas({0.9, 0.99}).weight_decay(0.0));
    }
  }

  int64_t parameters() const { return parameters_; }
  double train_seconds() const { return train_seconds_; }
  int64_t trainable_parameters() const {
    int64_t n = 0;
    for (const torch::Tensor& t : setup_.mode == Mode::kLora ? model_->Parameters(adapter_index_) : full_params_) {
      n += t.numel();
    }
    return n;
  }

  // Samples of step `step`: fresh training problems every step.
  TrainingBatch MakeBatch(int step) {
    TrainingBatch batch;
    batch.objective = Objective::kSft;
    for (int j = 0; j < setup_.batch; ++j) {
      const uint64_t seed = (static_cast<uint64_t>(step) * setup_.batch + j) * 7919 + setup_.seed;
      auto problem = GenerateChainProblem({}, ChainSplit::kTrain, seed);
      EXPECT_TRUE(problem.ok());
      if (!problem.ok()) continue;
      const std::string proof = CanonicalChainProof(*problem).Text();
      const ChainVerdict verdict = CheckChainProof(problem->statement, proof);
      batch.samples.push_back(
          Sample(GeneratorPrompt(*problem), RenderChainGeneratorOutput(proof, RenderFaithfulChainAnalysis(verdict))));
      const ChainFlaw flaw = SampleChainFlaw(seed ^ 0x5555, setup_.verifier_correct_fraction);
      const LabelledChainProof labelled = MakeLabelledChainProof(*problem, flaw, seed);
      const ChainVerdict labelled_verdict = CheckChainProof(problem->statement, labelled.text);
      batch.samples.push_back(
          Sample(VerifierPrompt(*problem, labelled.text), RenderFaithfulChainAnalysis(labelled_verdict)));
    }
    return batch;
  }

  double Step(int step) {
    const auto start = std::chrono::steady_clock::now();
    const TrainingBatch batch = MakeBatch(step);
    double loss = 0;
    if (setup_.mode == Mode::kLora) {
      auto stats = trainer_->Step(batch);
      EXPECT_TRUE(stats.ok()) << stats.status();
      if (stats.ok()) loss = stats->loss;
    } else {
      loss = FullStep(batch, step);
    }
    train_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    last_loss_ = loss;
    return loss;
  }

  EvalResult Evaluate(int step) {
    EvalResult r;
    r.step = step;
    r.train_seconds = train_seconds_;
    r.loss = last_loss_;
    SamplerOptions options;
    options.max_batch = 64;
    options.max_len = 320;
    auto sampler = Sampler::Create(model_.get(), tokenizer_.get(), options);
    EXPECT_TRUE(sampler.ok()) << sampler.status();
    if (!sampler.ok()) return r;
    const int adapter = setup_.mode == Mode::kLora ? adapter_index_ : -1;
    std::vector<SampleRequest> requests;
    std::vector<LabelledChainProof> proofs;
    for (size_t i = 0; i < eval_problems_.size(); ++i) {
      const ChainProblem& p = eval_problems_[i];
      requests.push_back(Request(GeneratorPrompt(p), 200, adapter));
      const ChainFlaw flaw = SampleChainFlaw(p.seed ^ 0xabcd, 0.4);
      proofs.push_back(MakeLabelledChainProof(p, flaw, p.seed + 17));
      requests.push_back(Request(VerifierPrompt(p, proofs.back().text), 100, adapter));
    }
    torch::NoGradGuard no_grad;
    std::vector<absl::StatusOr<SampleResult>> results = (*sampler)->Generate(std::move(requests));
    const double n = static_cast<double>(eval_problems_.size());
    int true_scores[3] = {0, 0, 0};
    for (size_t i = 0; i < eval_problems_.size(); ++i) {
      const ChainProblem& p = eval_problems_[i];
      const absl::StatusOr<SampleResult>& gen = results[2 * i];
      const absl::StatusOr<SampleResult>& ver = results[2 * i + 1];
      EXPECT_TRUE(gen.ok() && ver.ok());
      if (!gen.ok() || !ver.ok()) continue;
      // Generator: the proof between "## Solution" and "## Self Evaluation".
      const std::string& text = gen->text;
      const size_t solution = text.find("## Solution\n");
      const size_t self_eval = text.find("## Self Evaluation");
      const size_t begin = solution == std::string::npos ? 0 : solution + 12;
      const std::string proof =
          text.substr(begin, self_eval == std::string::npos || self_eval < begin ? std::string::npos : self_eval - begin);
      const ChainVerdict verdict = CheckChainProof(p.statement, proof);
      r.generator_score1 += verdict.score == 1 ? 1 : 0;
      r.generator_mean_score += verdict.score;
      if (solution != std::string::npos && self_eval != std::string::npos) {
        const ChainAnalysisClaims claims = ReadChainAnalysis(text.substr(self_eval), verdict.final_line);
        r.generator_format += claims.format_ok() ? 1 : 0;
      }
      // Verifier.
      const ChainVerdict truth = CheckChainProof(p.statement, proofs[i].text);
      const ChainAnalysisAssessment a = AssessChainAnalysis(truth, ver->text);
      r.verifier_agreement += a.claims.format_ok() && a.score_agrees ? 1 : 0;
      r.verifier_format += a.claims.format_ok() ? 1 : 0;
      r.verifier_hallucinated += a.hallucinated ? 1 : 0;
      ++true_scores[truth.score == 0 ? 0 : truth.score == 1 ? 2 : 1];
      if (i < 3 && std::getenv("DSM_WARMUP_SHOW") != nullptr) {
        std::printf("SAMPLE problem: %s\nSAMPLE gen (score %.1f):\n%s\nSAMPLE proof (truth %.1f):\n%s\nSAMPLE ver:\n%s\n",
                    p.statement.Text().c_str(), verdict.score, text.c_str(), truth.score, proofs[i].text.c_str(),
                    ver->text.c_str());
      }
    }
    r.generator_score1 /= n;
    r.generator_mean_score /= n;
    r.generator_format /= n;
    r.verifier_agreement /= n;
    r.verifier_format /= n;
    r.verifier_hallucinated /= n;
    r.verifier_majority = std::max({true_scores[0], true_scores[1], true_scores[2]}) / n;
    return r;
  }

  // Prompt and completion lengths in tokens of a few training samples (for the report).
  std::string LengthSummary() {
    const TrainingBatch batch = MakeBatch(0);
    int64_t gen_prompt = 0, gen_completion = 0, ver_prompt = 0, ver_completion = 0, longest = 0;
    for (size_t i = 0; i < batch.samples.size(); ++i) {
      const TrainingSample& s = batch.samples[i];
      (i % 2 == 0 ? gen_prompt : ver_prompt) += static_cast<int64_t>(s.prompt_ids.size());
      (i % 2 == 0 ? gen_completion : ver_completion) += static_cast<int64_t>(s.completion_ids.size());
      longest = std::max<int64_t>(longest, static_cast<int64_t>(s.prompt_ids.size() + s.completion_ids.size()));
    }
    const double k = static_cast<double>(batch.samples.size() / 2);
    return absl::StrFormat("mean tokens: generator prompt %.1f + completion %.1f; verifier prompt %.1f + "
                           "completion %.1f; longest sample %d",
                           gen_prompt / k, gen_completion / k, ver_prompt / k, ver_completion / k, longest);
  }

 private:
  TrainingSample Sample(const std::string& prompt, const std::string& completion) {
    TrainingSample s;
    for (int32_t id : tokenizer_->Encode(prompt, /*add_special_tokens=*/true)) s.prompt_ids.push_back(id);
    for (int32_t id : tokenizer_->Encode(completion)) s.completion_ids.push_back(id);
    s.completion_ids.push_back(ChainTokenizer::kEosId);
    return s;
  }

  SampleRequest Request(const std::string& prompt, int max_tokens, int adapter) {
    SampleRequest r;
    r.prompt = tokenizer_->Encode(prompt, /*add_special_tokens=*/true);
    r.params.temperature = 0;
    r.params.max_tokens = max_tokens;
    r.adapter = adapter;
    return r;
  }

  // The prototype full-parameter SFT step: mean NLL of the batch's completion tokens.
  double FullStep(const TrainingBatch& batch, int step) {
    const int64_t rows = static_cast<int64_t>(batch.samples.size());
    int64_t longest = 0;
    for (const TrainingSample& s : batch.samples) {
      longest = std::max<int64_t>(longest, static_cast<int64_t>(s.prompt_ids.size() + s.completion_ids.size()));
    }
    torch::Tensor ids = torch::zeros({rows, longest}, torch::kLong);
    torch::Tensor mask = torch::zeros({rows, longest}, torch::kLong);
    torch::Tensor target_mask = torch::zeros({rows, longest}, torch::kFloat);
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    auto ta = target_mask.accessor<float, 2>();
    for (int64_t b = 0; b < rows; ++b) {
      const TrainingSample& s = batch.samples[static_cast<size_t>(b)];
      int64_t t = 0;
      for (int64_t id : s.prompt_ids) ia[b][t] = id, ma[b][t] = 1, ++t;
      for (int64_t id : s.completion_ids) ia[b][t] = id, ma[b][t] = 1, ta[b][t] = 1, ++t;
    }
    auto logits = model_->Logits(ids, mask, {}, ForwardOptions{true});
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return 0;
    torch::Tensor logp = torch::log_softmax(logits->narrow(1, 0, longest - 1), -1);
    torch::Tensor next = ids.narrow(1, 1, longest - 1).unsqueeze(-1);
    torch::Tensor token_logp = logp.gather(-1, next).squeeze(-1);
    torch::Tensor weights = target_mask.narrow(1, 1, longest - 1);
    torch::Tensor loss = -(token_logp * weights).sum() / weights.sum();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(full_params_, 1.0);
    const double lr = setup_.warmup_steps > 0 && step < setup_.warmup_steps
                          ? setup_.learning_rate * (step + 1) / setup_.warmup_steps
                          : setup_.learning_rate;
    for (auto& group : full_optimizer_->param_groups()) group.options().set_lr(lr);
    full_optimizer_->step();
    full_optimizer_->zero_grad();
    return loss.item<double>();
  }

  WarmupSetup setup_;
  int64_t parameters_ = 0;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<ChainProblem> eval_problems_;
  int adapter_index_ = -1;
  std::unique_ptr<Trainer> trainer_;
  std::vector<torch::Tensor> full_params_;
  std::unique_ptr<torch::optim::AdamW> full_optimizer_;
  double train_seconds_ = 0;
  double last_loss_ = 0;
};

// Trains `setup.steps` steps, evaluating before, every eval_every steps and at the end.
std::vector<EvalResult> RunWarmup(const WarmupSetup& setup) {
  std::vector<EvalResult> curve;
  WarmupRun run(setup);
  run.Init();
  if (testing::Test::HasFatalFailure()) return curve;
  std::printf("SETUP mode=%s hidden=%lld layers=%lld heads=%lld kv=%lld inter=%lld params=%lld trainable=%lld "
              "lr=%g rank=%d batch=%dx2 steps=%d\n%s\n",
              setup.mode == Mode::kLora ? "lora" : "full", static_cast<long long>(setup.model.hidden_size),
              static_cast<long long>(setup.model.num_hidden_layers),
              static_cast<long long>(setup.model.num_attention_heads),
              static_cast<long long>(setup.model.num_key_value_heads),
              static_cast<long long>(setup.model.intermediate_size), static_cast<long long>(run.parameters()),
              static_cast<long long>(run.trainable_parameters()), setup.learning_rate, setup.lora_rank, setup.batch,
              setup.steps, run.LengthSummary().c_str());
  auto record = [&](int step) {
    curve.push_back(run.Evaluate(step));
    std::printf("CURVE %s\n", Describe(curve.back()).c_str());
    std::fflush(stdout);
  };
  record(0);
  for (int step = 0; step < setup.steps; ++step) {
    const double loss = run.Step(step);
    const int done = step + 1;
    if (done % 50 == 0) {
      std::printf("PROGRESS step=%d train_s=%.1f loss=%.3f\n", done, run.train_seconds(), loss);
      std::fflush(stdout);
    }
    const bool out_of_time = setup.max_train_seconds > 0 && run.train_seconds() > setup.max_train_seconds;
    if (done == setup.steps || out_of_time || (setup.eval_every > 0 && done % setup.eval_every == 0)) record(done);
    if (out_of_time) break;
  }
  return curve;
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}
double EnvDouble(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atof(v);
}

// 100 full-parameter steps of 8 + 8 samples (about 30 s of training on 2 free cores) teach
// the random model both output formats: what LoRA alone does not do in the same steps.
TEST(TinyWarmup, FullParameterSftLearnsTheFormatsFast) {
  WarmupSetup s;
  s.mode = Mode::kFull;
  s.steps = 100;
  s.batch = 8;
  s.learning_rate = 2e-3;
  s.eval_problems = 24;
  const std::vector<EvalResult> curve = RunWarmup(s);
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_EQ(curve[0].generator_format, 0);
  EXPECT_EQ(curve[0].verifier_format, 0);
  EXPECT_LT(curve[1].loss, 0.6);
  EXPECT_GE(curve[1].generator_format, 0.9);
  EXPECT_GE(curve[1].verifier_format, 0.9);
}

TEST(TinyWarmup, Experiment) {
  if (std::getenv("DSM_WARMUP_EXPERIMENT") == nullptr) GTEST_SKIP() << "set DSM_WARMUP_EXPERIMENT=1";
  WarmupSetup s;
  const char* mode = std::getenv("DSM_WARMUP_MODE");
  s.mode = mode != nullptr && std::string(mode) == "lora" ? Mode::kLora : Mode::kFull;
  s.steps = EnvInt("DSM_WARMUP_STEPS", s.steps);
  s.learning_rate = EnvDouble("DSM_WARMUP_LR", s.learning_rate);
  s.warmup_steps = EnvInt("DSM_WARMUP_WARMUP", s.warmup_steps);
  s.lora_rank = EnvInt("DSM_WARMUP_RANK", s.lora_rank);
  s.model.hidden_size = EnvInt("DSM_WARMUP_HIDDEN", 128);
  s.model.num_hidden_layers = EnvInt("DSM_WARMUP_LAYERS", 4);
  s.model.num_attention_heads = EnvInt("DSM_WARMUP_HEADS", 4);
  s.model.num_key_value_heads = EnvInt("DSM_WARMUP_KV_HEADS", 2);
  s.model.intermediate_size = EnvInt("DSM_WARMUP_INTERMEDIATE", 344);
  s.batch = EnvInt("DSM_WARMUP_BATCH", s.batch);
  s.eval_every = EnvInt("DSM_WARMUP_EVAL_EVERY", 50);
  s.eval_problems = EnvInt("DSM_WARMUP_EVAL", s.eval_problems);
  s.seed = static_cast<uint64_t>(EnvInt("DSM_WARMUP_SEED", 1));
  s.max_train_seconds = EnvDouble("DSM_WARMUP_SECONDS", 0);
  RunWarmup(s);
}

}  // namespace
}  // namespace dsm
