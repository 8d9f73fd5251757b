#include "tasks/chain_warmup.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <numeric>
#include <unistd.h>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "model/llama_model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "tasks/chain_checker.h"
#include "tasks/chain_sampling.h"
#include "tasks/chain_warmup_eval.h"
#include "tasks/chain_warmup_examples.h"
#include "tasks/chain_warmup_plan.h"
#include "tasks/replica_thread.h"

namespace dsm {
namespace {

namespace fs = std::filesystem;

constexpr size_t kLossWindow = 10;

absl::Status Invalid(absl::string_view field, double value, absl::string_view range) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is outside ", range));
}

// One tokenized example.
struct Sequence {
  std::vector<int64_t> prompt;      // BOS + prompt
  std::vector<int64_t> completion;  // completion + EOS
  int64_t length() const { return static_cast<int64_t>(prompt.size() + completion.size()); }
};

// Which replica takes each micro-batch: in order, each to the replica with the fewest padded
// tokens so far (the lowest on a tie), so the replicas' shares take about as long.
std::vector<std::vector<size_t>> ShareMicroBatches(const std::vector<int64_t>& padded_tokens, size_t replicas) {
  std::vector<std::vector<size_t>> shares(replicas);
  std::vector<int64_t> load(replicas, 0);
  for (size_t m = 0; m < padded_tokens.size(); ++m) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    shares[r].push_back(m);
    load[r] += padded_tokens[m];
  }
  return shares;
}

class ChainWarmupRun {
 public:
  // `replicas` (data_parallel - 1 of them, or none) hold the same weights as `model`.
  ChainWarmupRun(const ChainWarmupOptions& options, ChainWarmupTemplates templates, std::unique_ptr<LlamaModel> model,
                 std::vector<std::unique_ptr<LlamaModel>> replicas, std::unique_ptr<Tokenizer> tokenizer, int64_t eos)
      : options_(options),
        templates_(std::move(templates)),
        model_(std::move(model)),
        replicas_(std::move(replicas)),
        tokenizer_(std::move(tokenizer)),
        eos_(eos) {
    for (auto& [name, weight] : model_->NamedWeights()) {
      weight.requires_grad_(true);
      params_.push_back(weight);
    }
    for (const std::unique_ptr<LlamaModel>& replica : replicas_) {
      std::vector<torch::Tensor>& params = replica_params_.emplace_back();
      for (auto& [name, weight] : replica->NamedWeights()) {
        weight.requires_grad_(true);
        params.push_back(weight);
      }
    }
    if (!replicas_.empty()) {
      // One thread per replica, model_'s included; the caller's thread count stays for sampling
      // and evaluation (a new thread's count is set from the last at::set_num_threads).
      const int threads = at::get_num_threads();
      for (size_t r = 0; r <= replicas_.size(); ++r) replica_threads_.push_back(std::make_unique<ReplicaThread>());
      at::set_num_threads(threads);
    }
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        params_, torch::optim::AdamWOptions(options_.learning_rate).betas({0.9, 0.99}).weight_decay(
                     options_.weight_decay));
  }

  ~ChainWarmupRun() {
    for (torch::Tensor& p : params_) p.requires_grad_(false);
  }

  // One optimizer step; returns its loss.
  absl::StatusOr<double> Step(int step) {
    if (absl::Status s = MaybeRefreshOwnProofs(step); !s.ok()) return s;
    const std::vector<Sequence> batch = MakeBatch(step);
    // The loss's denominator: completion tokens, plus prompt tokens (after BOS) at their weight.
    double targets = 0;
    for (const Sequence& s : batch) {
      targets += static_cast<double>(s.completion.size()) +
                 options_.prompt_loss_weight * static_cast<double>(s.prompt.size() - 1);
    }
    std::vector<size_t> order(batch.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return batch[a].length() > batch[b].length(); });
    // micro_batch 0: the whole step at once, or one share per replica.
    const size_t replicas = replicas_.size() + 1;
    const size_t micro = options_.micro_batch > 0 ? static_cast<size_t>(options_.micro_batch)
                                                  : (order.size() + replicas - 1) / replicas;
    std::vector<std::vector<size_t>> micro_batches;
    for (size_t first = 0; first < order.size(); first += micro) {
      micro_batches.emplace_back(order.begin() + first, order.begin() + std::min(order.size(), first + micro));
    }
    const absl::StatusOr<double> accumulated = replicas_.empty()
                                                   ? Accumulate(*model_, batch, micro_batches, targets)
                                                   : AccumulateInParallel(batch, micro_batches, targets);
    if (!accumulated.ok()) return WithStep(step, accumulated.status());
    const double loss = *accumulated;
    try {
      if (options_.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(params_, options_.max_grad_norm);
      learning_rate_ = ChainWarmupLearningRate(options_, step);
      for (auto& group : optimizer_->param_groups()) group.options().set_lr(learning_rate_);
      optimizer_->step();
      optimizer_->zero_grad();
      torch::NoGradGuard no_grad;
      for (std::vector<torch::Tensor>& params : replica_params_) {
        for (size_t i = 0; i < params.size(); ++i) params[i].copy_(params_[i]);
      }
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("warm-up step ", step, ": ", e.what_without_backtrace()));
    }
    return loss;
  }

  absl::StatusOr<std::map<std::string, double>> Evaluate() {
    ChainWarmupEvalOptions eval;
    eval.domain = options_.domain;
    eval.problems = options_.eval_problems;
    eval.temperature_samples = options_.eval_temperature_samples;
    eval.seed = options_.seed;
    return EvaluateChainSkills(*model_, *tokenizer_, templates_, eval);
  }

  double learning_rate() const { return learning_rate_; }
  int own_proof_pools() const { return own_proof_pools_; }
  double own_proof_score1_rate() const {
    return own_proofs_sampled_ == 0 ? 0.0 : static_cast<double>(own_proofs_score1_) / own_proofs_sampled_;
  }
  double own_proof_seconds() const { return own_proof_seconds_; }
  const LlamaModel& model() const { return *model_; }

 private:
  // From own_proof_start × steps on, every own_proof_refresh_steps steps: a new pool of the
  // model's own temperature-1 proofs of fresh train problems. Not before the drill ends: its
  // steps show no own proof, so a pool sampled then would go unused.
  absl::Status MaybeRefreshOwnProofs(int step) {
    if (options_.own_proof_share <= 0 && options_.meta_own_proof_share <= 0) return absl::OkStatus();
    const int start =
        std::max(static_cast<int>(options_.own_proof_start * options_.steps), options_.lookup_drill_steps);
    if (step < start || (step - start) % options_.own_proof_refresh_steps != 0) return absl::OkStatus();
    const auto began = std::chrono::steady_clock::now();
    const uint64_t seed = ChainWarmupOwnProofPoolSeed(options_, step);
    absl::StatusOr<std::vector<ChainProblem>> problems =
        GenerateChainProblems(options_.domain, ChainSplit::kTrain, seed, options_.own_proof_pool);
    if (!problems.ok()) return problems.status();
    absl::StatusOr<std::vector<std::string>> proofs = SampleChainProofs(
        [this](const std::vector<ChainPrompt>& prompts) { return SampleSideBySide(prompts); }, templates_, *problems,
        1.0, seed);
    if (!proofs.ok()) {
      return absl::Status(proofs.status().code(), absl::StrCat("warm-up step ", step, ": own proofs: ", proofs.status().message()));
    }
    own_problems_ = *std::move(problems);
    own_proofs_ = *std::move(proofs);
    own_parsed_.clear();
    for (size_t i = 0; i < own_proofs_.size(); ++i) {
      own_proofs_score1_ += CheckChainProof(own_problems_[i].statement, own_proofs_[i]).score == 1 ? 1 : 0;
      if (std::optional<ChainProof> parsed = ParseChainProof(own_proofs_[i])) {
        own_parsed_.emplace_back(i, *std::move(parsed));
      }
    }
    own_proofs_sampled_ += static_cast<int>(own_proofs_.size());
    ++own_proof_pools_;
    own_proof_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    return absl::OkStatus();
  }

  // The prompts sampled side by side on model_ and the replicas, one part on each replica thread
  // (the same weights between steps); no replicas: one sampler on this thread.
  absl::StatusOr<std::vector<SampleResult>> SampleSideBySide(const std::vector<ChainPrompt>& prompts) {
    if (replica_threads_.empty()) return SampleChainPrompts(*model_, *tokenizer_, prompts, ChainSamplingOptions{});
    std::vector<const LlamaModel*> models = {model_.get()};
    for (const std::unique_ptr<LlamaModel>& replica : replicas_) models.push_back(replica.get());
    std::vector<ReplicaThread*> threads;
    for (const std::unique_ptr<ReplicaThread>& t : replica_threads_) threads.push_back(t.get());
    return SampleChainPromptsSideBySide(models, threads, *tokenizer_, prompts, ChainSamplingOptions{});
  }

  static absl::Status WithStep(int step, const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("warm-up step ", step, ": ", s.message()));
  }

  // Forward and backward of `micro_batches` of `batch` on `model` in order, gradients summed
  // into its weights' .grad; returns their summed loss (each part divided by `targets`).
  absl::StatusOr<double> Accumulate(LlamaModel& model, const std::vector<Sequence>& batch,
                                    const std::vector<std::vector<size_t>>& micro_batches, double targets) {
    double loss = 0;
    try {
      for (const std::vector<size_t>& rows : micro_batches) {
        absl::StatusOr<torch::Tensor> nll;
        {
          AutocastScope autocast(options_.precision, torch::kCPU);
          nll = SummedNll(model, batch, rows);
        }
        if (!nll.ok()) return nll.status();
        torch::Tensor part = *nll / targets;
        part.backward();
        loss += part.item<double>();
      }
    } catch (const c10::Error& e) {
      return absl::InternalError(e.what_without_backtrace());
    }
    return loss;
  }

  // The micro-batches shared out between model_ and the replicas (ShareMicroBatches), each on a
  // thread of its own; then the replicas' gradients are added to model_'s in replica order, so
  // the sum, and the run, do not depend on which thread finished first.
  absl::StatusOr<double> AccumulateInParallel(const std::vector<Sequence>& batch,
                                              const std::vector<std::vector<size_t>>& micro_batches, double targets) {
    std::vector<int64_t> padded;
    for (const std::vector<size_t>& rows : micro_batches) {
      int64_t longest = 0;
      for (size_t r : rows) longest = std::max(longest, batch[r].length());
      padded.push_back(longest * static_cast<int64_t>(rows.size()));
    }
    const size_t n = replica_threads_.size();
    const std::vector<std::vector<size_t>> shares = ShareMicroBatches(padded, n);
    std::vector<absl::StatusOr<double>> losses(n, 0.0);
    for (size_t r = 0; r < n; ++r) {
      replica_threads_[r]->Start([&, r] {
        std::vector<std::vector<size_t>> mine;
        for (size_t m : shares[r]) mine.push_back(micro_batches[m]);
        LlamaModel& model = r == 0 ? *model_ : *replicas_[r - 1];
        losses[r] = Accumulate(model, batch, mine, targets);
      });
    }
    for (const std::unique_ptr<ReplicaThread>& t : replica_threads_) t->Wait();
    double loss = 0;
    for (const absl::StatusOr<double>& l : losses) {
      if (!l.ok()) return l.status();
      loss += *l;
    }
    try {
      torch::NoGradGuard no_grad;
      for (std::vector<torch::Tensor>& params : replica_params_) {
        for (size_t i = 0; i < params.size(); ++i) {
          torch::Tensor& grad = params[i].mutable_grad();
          if (!grad.defined()) continue;
          if (params_[i].grad().defined()) {
            params_[i].mutable_grad().add_(grad);
          } else {
            params_[i].mutable_grad() = grad.clone();
          }
          grad.zero_();
        }
      }
    } catch (const c10::Error& e) {
      return absl::InternalError(e.what_without_backtrace());
    }
    return loss;
  }

  std::vector<Sequence> MakeBatch(int step) const {
    std::vector<Sequence> batch;
    const bool note_only = options_.lookup_drill_note_only && IsLookupDrillStep(options_, step);
    for (int j = 0; j < options_.batch; ++j) {
      const uint64_t seed = ChainWarmupExampleSeed(options_, step, j);
      const ChainWarmupExampleKind kind = ChainWarmupExampleKindOf(options_, step, j, !own_proofs_.empty());
      ChainWarmupExample example;
      const size_t k = static_cast<size_t>(step) * static_cast<size_t>(options_.batch) + static_cast<size_t>(j);
      if (kind == ChainWarmupExampleKind::kOwnProofVerifier) {
        example = MakeChainVerifierExample(templates_, own_problems_[k % own_problems_.size()],
                                           own_proofs_[k % own_proofs_.size()]);
      } else if (kind == ChainWarmupExampleKind::kOwnProofMetaVerifier && !own_parsed_.empty()) {
        const auto& [i, proof] = own_parsed_[k % own_parsed_.size()];
        example = MakeChainMetaVerifierExample(templates_, own_problems_[i], proof, seed);
      } else {
        absl::StatusOr<ChainProblem> problem = GenerateChainProblem(options_.domain, ChainSplit::kTrain, seed);
        // Validate() checked the domain and every seed gives a train problem for sane options.
        if (!problem.ok()) continue;
        if (kind == ChainWarmupExampleKind::kScrambledVerifier) {
          const ChainProof proof = ScrambledChainProof(*problem, seed, options_.scrambled_leading_on);
          example = MakeChainVerifierExample(templates_, *problem, proof.Text());
        } else if (kind == ChainWarmupExampleKind::kScrambledMetaVerifier) {
          const ChainProof proof = ScrambledChainProof(*problem, seed, options_.scrambled_leading_on);
          example = MakeChainMetaVerifierExample(templates_, *problem, proof, seed);
        } else if (kind == ChainWarmupExampleKind::kGenerator) {
          const ChainWarmupWriter writer = ChainWarmupWriterOf(options_, step, j);
          example = MakeChainGeneratorExample(templates_, *problem, writer.flaw, seed, writer.overclaims);
        } else {
          // kOwnProofMetaVerifier lands here while no own proof reads back: a made-up one.
          const PromptRole role =
              kind == ChainWarmupExampleKind::kVerifier ? PromptRole::kVerifier : PromptRole::kMetaVerifier;
          example = MakeChainWarmupExample(templates_, role, *problem, options_.correct_fraction, seed);
        }
      }
      const bool drill = kind == ChainWarmupExampleKind::kScrambledVerifier ||
                         kind == ChainWarmupExampleKind::kScrambledMetaVerifier;
      const bool whole = !(note_only && drill);
      Sequence s;
      for (int32_t id : tokenizer_->Encode(example.prompt, /*add_special_tokens=*/true)) s.prompt.push_back(id);
      const int lines_after = options_.lookup_drill_issue_in_mix && step >= options_.lookup_drill_steps ? 1 : 0;
      const std::string completion =
          whole ? example.completion : ChainCompletionThroughNote(example.completion, lines_after);
      for (int32_t id : tokenizer_->Encode(completion)) s.completion.push_back(id);
      if (whole) s.completion.push_back(eos_);
      batch.push_back(std::move(s));
    }
    return batch;
  }

  // Summed NLL of the completion tokens of batch[rows] (plus prompt_loss_weight × that of the
  // prompt tokens after BOS), as one right-padded forward that projects only the positions
  // before target tokens.
  absl::StatusOr<torch::Tensor> SummedNll(LlamaModel& model, const std::vector<Sequence>& batch,
                                          const std::vector<size_t>& rows) {
    int64_t longest = 0;
    for (size_t r : rows) longest = std::max(longest, batch[r].length());
    const int64_t n = static_cast<int64_t>(rows.size());
    torch::Tensor ids = torch::zeros({n, longest}, torch::kLong);
    torch::Tensor mask = torch::zeros({n, longest}, torch::kLong);
    std::vector<int64_t> positions;  // flat index (row * longest + t) of the state predicting a target
    std::vector<int64_t> targets;
    std::vector<float> weights;
    const bool prompt_targets = options_.prompt_loss_weight > 0;
    auto ia = ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < n; ++b) {
      const Sequence& s = batch[rows[static_cast<size_t>(b)]];
      int64_t t = 0;
      for (int64_t id : s.prompt) {
        if (prompt_targets && t > 0) {
          positions.push_back(b * longest + t - 1);
          targets.push_back(id);
          weights.push_back(static_cast<float>(options_.prompt_loss_weight));
        }
        ia[b][t] = id, ma[b][t] = 1, ++t;
      }
      for (int64_t id : s.completion) {
        positions.push_back(b * longest + t - 1);
        targets.push_back(id);
        weights.push_back(1.0f);
        ia[b][t] = id, ma[b][t] = 1, ++t;
      }
    }
    absl::StatusOr<torch::Tensor> hidden = model.HiddenStates(ids, mask);
    if (!hidden.ok()) return hidden.status();
    torch::Tensor picked = hidden->reshape({n * longest, -1}).index_select(0, torch::tensor(positions));
    torch::Tensor logp = torch::log_softmax(model.LmHead(picked), -1);
    torch::Tensor nll = -logp.gather(1, torch::tensor(targets).unsqueeze(1)).squeeze(1);
    return prompt_targets ? (nll * torch::tensor(weights)).sum() : nll.sum();
  }

  const ChainWarmupOptions options_;
  const ChainWarmupTemplates templates_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<std::unique_ptr<LlamaModel>> replicas_;   // data_parallel - 1 copies of model_
  std::vector<std::vector<torch::Tensor>> replica_params_;  // their weights, in params_'s order
  std::vector<std::unique_ptr<ReplicaThread>> replica_threads_;  // one per replica and model_; none at 1
  std::unique_ptr<Tokenizer> tokenizer_;
  const int64_t eos_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  double learning_rate_ = 0;
  // The current pool of own proofs (own_proof_share > 0) and its counters.
  std::vector<ChainProblem> own_problems_;
  std::vector<std::string> own_proofs_;
  // The own proofs ParseChainProof reads back: (index into own_proofs_, the proof).
  std::vector<std::pair<size_t, ChainProof>> own_parsed_;
  int own_proof_pools_ = 0;
  int own_proofs_sampled_ = 0;
  int own_proofs_score1_ = 0;
  double own_proof_seconds_ = 0;
};

// Writes the model's weights and `model_dir`'s config and tokenizer files to `out_dir` through a
// temp folder beside it.
absl::Status WriteWarmedModel(const LlamaModel& model, const fs::path& model_dir, const fs::path& out_dir) {
  const fs::path parent = out_dir.has_parent_path() ? out_dir.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return absl::InternalError(absl::StrCat(parent.string(), ": cannot create: ", ec.message()));
  const fs::path temp = parent / absl::StrCat(".", out_dir.filename().string(), ".tmp-", getpid());
  fs::remove_all(temp, ec);
  fs::create_directories(temp, ec);
  if (ec) return absl::InternalError(absl::StrCat(temp.string(), ": cannot create: ", ec.message()));
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, w] : model.NamedWeights()) weights[name] = w.detach();
  absl::Status s = WriteSafetensors((temp / "model.safetensors").string(), weights, {{"format", "pt"}});
  for (const char* file : {"tokenizer.json", "tokenizer_config.json", "config.json"}) {
    if (!s.ok()) break;
    if (!fs::exists(model_dir / file)) continue;
    absl::StatusOr<std::string> contents = ReadFileToString((model_dir / file).string());
    s = contents.ok() ? WriteFileAtomically((temp / file).string(), *contents) : contents.status();
  }
  if (s.ok()) {
    const fs::path old = parent / absl::StrCat(".", out_dir.filename().string(), ".old-", getpid());
    if (fs::exists(out_dir)) fs::rename(out_dir, old, ec);
    if (!ec) fs::rename(temp, out_dir, ec);
    if (ec) s = absl::InternalError(absl::StrCat(out_dir.string(), ": cannot replace: ", ec.message()));
    fs::remove_all(old, ec);
  }
  if (!s.ok()) fs::remove_all(temp, ec);
  return s;
}

}  // namespace

absl::Status ChainWarmupOptions::Validate() const {
  if (absl::Status s = domain.Validate(); !s.ok()) return absl::InvalidArgumentError(absl::StrCat("domain.", s.message()));
  if (steps < 1 || steps > 1000000) return Invalid("steps", steps, "1..1000000");
  if (!(max_seconds >= 0)) return Invalid("max_seconds", max_seconds, "[0, inf)");
  if (!(learning_rate > 0 && learning_rate <= 1)) return Invalid("learning_rate", learning_rate, "(0, 1]");
  if (lr_warmup_steps < 0 || lr_warmup_steps > steps) return Invalid("lr_warmup_steps", lr_warmup_steps, "0..steps");
  if (!(final_lr_fraction >= 0 && final_lr_fraction <= 1)) {
    return Invalid("final_lr_fraction", final_lr_fraction, "[0, 1]");
  }
  if (batch < 1 || batch > 4096) return Invalid("batch", batch, "1..4096");
  const std::pair<const char*, double> shares[] = {
      {"generator_share", generator_share}, {"verifier_share", verifier_share}, {"meta_verifier_share", meta_verifier_share}};
  for (const auto& [name, share] : shares) {
    if (!(share >= 0 && share <= 1e6)) return Invalid(name, share, "[0, 1e6]");
  }
  if (generator_share + verifier_share + meta_verifier_share <= 0) {
    return absl::InvalidArgumentError("generator_share, verifier_share, meta_verifier_share: all 0");
  }
  if (!(correct_fraction >= 0 && correct_fraction <= 1)) return Invalid("correct_fraction", correct_fraction, "[0, 1]");
  if (!(generator_flaw_share >= 0 && generator_flaw_share <= 1)) {
    return Invalid("generator_flaw_share", generator_flaw_share, "[0, 1]");
  }
  if (!(generator_overclaim_share >= 0 && generator_overclaim_share <= 1)) {
    return Invalid("generator_overclaim_share", generator_overclaim_share, "[0, 1]");
  }
  if (!(scrambled_proof_share >= 0 && scrambled_proof_share <= 1)) {
    return Invalid("scrambled_proof_share", scrambled_proof_share, "[0, 1]");
  }
  if (lookup_drill_steps < 0 || lookup_drill_steps > steps) {
    return Invalid("lookup_drill_steps", lookup_drill_steps, "0..steps");
  }
  if (lookup_drill_every < 0) return Invalid("lookup_drill_every", lookup_drill_every, "0..");
  if (!(lookup_drill_meta_share >= 0 && lookup_drill_meta_share <= 1)) {
    return Invalid("lookup_drill_meta_share", lookup_drill_meta_share, "[0, 1]");
  }
  if (!(prompt_loss_weight >= 0 && prompt_loss_weight <= 1)) {
    return Invalid("prompt_loss_weight", prompt_loss_weight, "[0, 1]");
  }
  if (!(weight_decay >= 0 && weight_decay < 1)) return Invalid("weight_decay", weight_decay, "[0, 1)");
  if (!(max_grad_norm >= 0)) return Invalid("max_grad_norm", max_grad_norm, "[0, inf)");
  if (micro_batch < 0) return Invalid("micro_batch", micro_batch, "0..");
  if (data_parallel < 1 || data_parallel > 64) return Invalid("data_parallel", data_parallel, "1..64");
  if (prompts_dir.empty()) return absl::InvalidArgumentError("prompts_dir: empty");
  if (eval_problems < 1 || eval_problems > 10000) return Invalid("eval_problems", eval_problems, "1..10000");
  if (eval_temperature_samples < 0 || eval_temperature_samples > 64) {
    return Invalid("eval_temperature_samples", eval_temperature_samples, "0..64");
  }
  if (eval_every < 0) return Invalid("eval_every", eval_every, "0..");
  if (!(own_proof_share >= 0 && own_proof_share <= 1)) return Invalid("own_proof_share", own_proof_share, "[0, 1]");
  if (!(meta_own_proof_share >= 0 && meta_own_proof_share <= 1)) {
    return Invalid("meta_own_proof_share", meta_own_proof_share, "[0, 1]");
  }
  if (!(meta_scrambled_proof_share >= 0 && meta_scrambled_proof_share <= 1)) {
    return Invalid("meta_scrambled_proof_share", meta_scrambled_proof_share, "[0, 1]");
  }
  if (!(own_proof_start >= 0 && own_proof_start < 1)) return Invalid("own_proof_start", own_proof_start, "[0, 1)");
  if (own_proof_pool < 1 || own_proof_pool > 4096) return Invalid("own_proof_pool", own_proof_pool, "1..4096");
  if (own_proof_refresh_steps < 1) return Invalid("own_proof_refresh_steps", own_proof_refresh_steps, "1..");
  return absl::OkStatus();
}

absl::StatusOr<ChainWarmupResult> WarmUpChainModel(const std::string& model_dir, const std::string& out_dir,
                                                   const ChainWarmupOptions& options,
                                                   const std::function<void(const ChainWarmupProgress&)>& progress) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (out_dir.empty()) return absl::InvalidArgumentError("out_dir: empty");
  absl::StatusOr<ChainWarmupTemplates> templates = ChainWarmupTemplates::Load(options.prompts_dir);
  if (!templates.ok()) return templates.status();
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(model_dir);
  if (!model.ok()) return model.status();
  if ((*model)->dtype() != torch::kFloat) {
    return absl::InvalidArgumentError(absl::StrCat(model_dir, ": the warm-up trains float32 weights"));
  }
  if ((*model)->config().eos_token_ids.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(model_dir, "/config.json: no eos_token_id"));
  }
  const int64_t eos = (*model)->config().eos_token_ids.front();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::FromFile(model_dir + "/tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.status();

  // Tiny weights and Adam moments go denormal, and x86 then slows down by an order of magnitude.
  at::globalContext().setFlushDenormal(true);
  std::vector<std::unique_ptr<LlamaModel>> replicas;
  for (int r = 1; r < options.data_parallel; ++r) {
    absl::StatusOr<std::unique_ptr<LlamaModel>> replica = LlamaModel::Load(model_dir);
    if (!replica.ok()) return replica.status();
    replicas.push_back(*std::move(replica));
  }
  torch::manual_seed(options.seed);
  ChainWarmupRun run(options, *std::move(templates), *std::move(model), std::move(replicas), *std::move(tokenizer),
                     eos);

  ChainWarmupResult result;
  std::deque<double> recent;
  auto mean_recent = [&recent] {
    return recent.empty() ? 0.0 : std::accumulate(recent.begin(), recent.end(), 0.0) / recent.size();
  };
  auto evaluate = [&]() -> absl::Status {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<std::map<std::string, double>> held_out = run.Evaluate();
    result.eval_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!held_out.ok()) return held_out.status();
    result.curve.push_back(ChainWarmupEvaluation{result.steps, result.seconds, mean_recent(), *held_out});
    return absl::OkStatus();
  };

  for (int step = 0; step < options.steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<double> loss = run.Step(step);
    if (!loss.ok()) return loss.status();
    result.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.steps = step + 1;
    recent.push_back(*loss);
    if (recent.size() > kLossWindow) recent.pop_front();
    const bool out_of_time = options.max_seconds > 0 && result.seconds >= options.max_seconds;
    const bool last = out_of_time || result.steps == options.steps;
    const ChainWarmupEvaluation* evaluation = nullptr;
    if (!last && options.eval_every > 0 && result.steps % options.eval_every == 0) {
      if (absl::Status s = evaluate(); !s.ok()) return s;
      evaluation = &result.curve.back();
    }
    if (progress) {
      progress(ChainWarmupProgress{result.steps, options.steps, *loss, result.seconds, run.learning_rate(), evaluation});
    }
    if (out_of_time) break;
  }
  result.final_loss = mean_recent();
  result.own_proof_pools = run.own_proof_pools();
  result.own_proof_score1_rate = run.own_proof_score1_rate();
  result.own_proof_seconds = run.own_proof_seconds();
  if (absl::Status s = evaluate(); !s.ok()) return s;
  result.held_out = result.curve.back().held_out;
  if (absl::Status s = WriteWarmedModel(run.model(), model_dir, out_dir); !s.ok()) return s;
  return result;
}

}  // namespace dsm
