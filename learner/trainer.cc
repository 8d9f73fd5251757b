#include "learner/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "learner/micro_batcher.h"
#include "learner/token_logprobs.h"

namespace dsm {

struct Trainer::Param {
  std::string name;  // PEFT tensor name
  torch::Tensor tensor;
};

namespace {

// The local statistics of a step, summed over micro-batches, then over ranks.
enum StatIndex { kLoss = 0, kKlTokens, kClippedTokens, kRatioTokens, kTokens, kFailed, kNumStats };

// Counts all-reduced before a step.
enum CountIndex { kSamples = 0, kCountTokens, kRejected, kGrpoRanks, kNumCounts };

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Runs `fn`, turning LibTorch exceptions into an Internal error naming `what`.
template <typename Fn>
absl::Status Guard(const std::string& what, Fn&& fn) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

torch::optim::AdamWParamState& StateOf(torch::optim::AdamW& optimizer, const torch::Tensor& p) {
  auto& state = optimizer.state();
  const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto it = state.find(key);
  if (it == state.end()) {
    auto fresh = std::make_unique<torch::optim::AdamWParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    it = state.emplace(key, std::move(fresh)).first;
  }
  return static_cast<torch::optim::AdamWParamState&>(*it->second);
}

std::string GeneratorState() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  torch::Tensor state = gen.get_state();
  return std::string(static_cast<const char*>(state.data_ptr()), static_cast<size_t>(state.numel()));
}

}  // namespace

absl::Status TrainerOptions::Validate() const {
  const auto bad = [](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  if (!(learning_rate >= 0) || !std::isfinite(learning_rate)) {
    return bad("learning_rate", absl::StrCat(learning_rate, " must be a finite number >= 0"));
  }
  if (warmup_steps < 0) return bad("warmup_steps", absl::StrCat(warmup_steps, " must be >= 0"));
  if (!(beta1 >= 0 && beta1 < 1)) return bad("beta1", absl::StrCat(beta1, " is outside [0, 1)"));
  if (!(beta2 >= 0 && beta2 < 1)) return bad("beta2", absl::StrCat(beta2, " is outside [0, 1)"));
  if (!(eps > 0)) return bad("eps", absl::StrCat(eps, " must be > 0"));
  if (!(weight_decay >= 0)) return bad("weight_decay", absl::StrCat(weight_decay, " must be >= 0"));
  if (!(max_grad_norm >= 0)) return bad("max_grad_norm", absl::StrCat(max_grad_norm, " must be >= 0"));
  if (micro_batch_tokens <= 0) return bad("micro_batch_tokens", absl::StrCat(micro_batch_tokens, " must be > 0"));
  if (micro_batch_max_rows < 0) {
    return bad("micro_batch_max_rows", absl::StrCat(micro_batch_max_rows, " must be >= 0"));
  }
  if (logprob_chunk_tokens <= 0) {
    return bad("logprob_chunk_tokens", absl::StrCat(logprob_chunk_tokens, " must be > 0"));
  }
  if (!(temperature > 0)) return bad("temperature", absl::StrCat(temperature, " must be > 0"));
  if (checkpoint_every_steps < 0) {
    return bad("checkpoint_every_steps", absl::StrCat(checkpoint_every_steps, " must be >= 0"));
  }
  if (keep_checkpoints < 0) return bad("keep_checkpoints", absl::StrCat(keep_checkpoints, " must be >= 0"));
  if (absl::Status s = grpo.Validate(); !s.ok()) return bad("grpo", std::string(s.message()));
  if (absl::Status s = parallel.Validate(); !s.ok()) return bad("parallel", std::string(s.message()));
  return absl::OkStatus();
}

Trainer::Trainer(LlamaModel* model, int adapter_index, const TrainerOptions& options,
                 std::unique_ptr<DataParallel> parallel)
    : model_(model), adapter_index_(adapter_index), options_(options), parallel_(std::move(parallel)) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(LlamaModel* model, int adapter_index,
                                                         const TrainerOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  auto parallel = DataParallel::Create(options.parallel);
  if (!parallel.ok()) return parallel.status();
  return Create(model, adapter_index, options, *std::move(parallel));
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(LlamaModel* model, int adapter_index,
                                                         const TrainerOptions& options,
                                                         std::unique_ptr<DataParallel> parallel) {
  if (model == nullptr) return absl::InvalidArgumentError("model: null");
  if (parallel == nullptr) return absl::InvalidArgumentError("parallel: null");
  TrainerOptions o = options;
  o.parallel.world_size = parallel->world_size();
  o.parallel.rank = parallel->rank();
  if (absl::Status s = o.Validate(); !s.ok()) return s;
  std::unique_ptr<Trainer> trainer(new Trainer(model, adapter_index, o, std::move(parallel)));
  if (absl::Status s = trainer->Init(); !s.ok()) return s;
  return trainer;
}

absl::Status Trainer::Init() {
  adapter_ = model_->adapter(adapter_index_);
  if (adapter_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("adapter index ", adapter_index_, " is not registered"));
  }
  if (model_->merged_adapter() == adapter_index_) {
    return absl::FailedPreconditionError(absl::StrCat("adapter ", adapter_index_, " is merged: unmerge it to train"));
  }
  adapter_->SetRequiresGrad(true);
  std::map<const c10::TensorImpl*, std::string> names;
  for (const auto& [name, t] : adapter_->NamedTensors()) names[t.unsafeGetTensorImpl()] = name;
  for (const torch::Tensor& p : adapter_->Parameters()) {
    auto it = names.find(p.unsafeGetTensorImpl());
    if (it == names.end()) return absl::InternalError("an adapter parameter has no PEFT name");
    if (p.scalar_type() != torch::kFloat) {
      return absl::InvalidArgumentError(absl::StrCat(it->second, ": trainable tensors must be float32, not ",
                                                     c10::toString(p.scalar_type())));
    }
    params_.push_back({it->second, p});
  }
  std::vector<torch::Tensor> tensors;
  for (const Param& p : params_) tensors.push_back(p.tensor);
  torch::optim::AdamWOptions adam(options_.learning_rate);
  adam.betas({options_.beta1, options_.beta2}).eps(options_.eps).weight_decay(options_.weight_decay);
  optimizer_ = std::make_unique<torch::optim::AdamW>(tensors, adam);
  for (const Param& p : params_) StateOf(*optimizer_, p.tensor);  // eager: broadcast and checkpoint need it

  // Resume (rank 0 reads; SyncFromRoot hands the result to every rank).
  absl::Status load_status;
  if (parallel_->rank() == 0 && options_.resume && !options_.checkpoint_dir.empty()) {
    std::vector<std::string> skipped;
    auto latest = LatestValidCheckpoint(options_.checkpoint_dir, model_->config(), &skipped);
    if (!latest.ok()) {
      load_status = latest.status();
    } else if (latest->has_value()) {
      Checkpoint& c = **latest;
      load_status = Guard("loading " + c.path, [&]() -> absl::Status {
        auto loaded = c.adapter->NamedTensors();
        if (loaded.size() != params_.size()) {
          return absl::FailedPreconditionError(
              absl::StrCat(c.path, ": the adapter has ", loaded.size(), " tensors, the trained one ", params_.size()));
        }
        if (c.adapter->scaling() != adapter_->scaling()) {
          return absl::FailedPreconditionError(absl::StrCat(c.path, ": adapter scaling ", c.adapter->scaling(),
                                                            " differs from ", adapter_->scaling()));
        }
        torch::NoGradGuard no_grad;
        for (const Param& p : params_) {
          auto it = loaded.find(p.name);
          if (it == loaded.end() || !it->second.sizes().equals(p.tensor.sizes())) {
            return absl::FailedPreconditionError(
                absl::StrCat(c.path, ": ", p.name, " is missing or has another shape"));
          }
          p.tensor.copy_(it->second);
        }
        if (absl::Status s = LoadOptimizerState(c.optimizer); !s.ok()) {
          return absl::DataLossError(absl::StrCat(c.path, ": ", s.message()));
        }
        step_ = c.state.step;
        adapter_version_ = c.state.adapter_version;
        data_cursor_ = c.state.data_cursor;
        resumed_from_ = c.path;
        if (!c.state.rng_state.empty()) {
          at::Generator gen = at::detail::getDefaultCPUGenerator();
          std::lock_guard<std::mutex> lock(gen.mutex());
          torch::Tensor state = torch::empty({static_cast<int64_t>(c.state.rng_state.size())}, torch::kUInt8);
          std::memcpy(state.data_ptr(), c.state.rng_state.data(), c.state.rng_state.size());
          gen.set_state(state);
        }
        return absl::OkStatus();
      });
    }
  }
  // Every rank learns whether rank 0 succeeded before any other collective.
  std::vector<torch::Tensor> ok = {torch::tensor({load_status.ok() ? 0.0 : 1.0}, torch::kDouble)};
  if (absl::Status s = parallel_->AllReduceSum(ok); !s.ok()) return s;
  if (!load_status.ok()) return load_status;
  if (ok[0].item<double>() != 0) return absl::AbortedError("rank 0 could not load its checkpoint");
  return SyncFromRoot();
}

absl::Status Trainer::LoadOptimizerState(const OptimizerTensors& tensors) {
  torch::NoGradGuard no_grad;
  for (const Param& p : params_) {
    auto avg = tensors.find(p.name + ".exp_avg");
    auto avg_sq = tensors.find(p.name + ".exp_avg_sq");
    auto step = tensors.find(p.name + ".step");
    if (avg == tensors.end() || avg_sq == tensors.end() || step == tensors.end()) {
      return absl::DataLossError(absl::StrCat("optimizer state of ", p.name, " is missing"));
    }
    if (!avg->second.sizes().equals(p.tensor.sizes()) || !avg_sq->second.sizes().equals(p.tensor.sizes()) ||
        step->second.numel() != 1) {
      return absl::DataLossError(absl::StrCat("optimizer state of ", p.name, " has the wrong shape"));
    }
    torch::optim::AdamWParamState& state = StateOf(*optimizer_, p.tensor);
    state.exp_avg().copy_(avg->second);
    state.exp_avg_sq().copy_(avg_sq->second);
    state.step(step->second.to(torch::kLong).item<int64_t>());
  }
  return absl::OkStatus();
}

absl::Status Trainer::SyncFromRoot() {
  if (parallel_->world_size() == 1) return absl::OkStatus();
  std::vector<torch::Tensor> meta = {torch::tensor({step_, adapter_version_}, torch::kLong)};
  std::vector<torch::Tensor> steps;
  std::vector<torch::Tensor> tensors;
  for (const Param& p : params_) {
    torch::optim::AdamWParamState& state = StateOf(*optimizer_, p.tensor);
    meta.push_back(torch::tensor({state.step()}, torch::kLong));
    tensors.push_back(p.tensor.detach());
    tensors.push_back(state.exp_avg());
    tensors.push_back(state.exp_avg_sq());
  }
  if (absl::Status s = parallel_->Broadcast(meta, 0); !s.ok()) return s;
  if (absl::Status s = parallel_->Broadcast(tensors, 0); !s.ok()) return s;
  step_ = meta[0][0].item<int64_t>();
  adapter_version_ = meta[0][1].item<int64_t>();
  for (size_t i = 0; i < params_.size(); ++i) {
    StateOf(*optimizer_, params_[i].tensor).step(meta[i + 1].item<int64_t>());
  }
  auto cursor = parallel_->BroadcastString(data_cursor_, 0);
  if (!cursor.ok()) return cursor.status();
  data_cursor_ = *std::move(cursor);
  auto resumed = parallel_->BroadcastString(resumed_from_, 0);
  if (!resumed.ok()) return resumed.status();
  resumed_from_ = *std::move(resumed);
  return absl::OkStatus();
}

double Trainer::LearningRateAt(int64_t optimizer_steps) const {
  if (options_.warmup_steps <= 0 || optimizer_steps >= options_.warmup_steps) return options_.learning_rate;
  return options_.learning_rate * static_cast<double>(optimizer_steps + 1) /
         static_cast<double>(options_.warmup_steps);
}

absl::Status Trainer::CheckSample(const TrainingBatch& batch, size_t i) const {
  const TrainingSample& s = batch.samples[i];
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("sample ", i, ": ", why));
  };
  if (s.prompt_ids.empty()) return bad("prompt_ids is empty");
  if (s.completion_ids.empty()) return bad("completion_ids is empty");
  const int64_t vocab = model_->config().vocab_size;
  for (const auto* ids : {&s.prompt_ids, &s.completion_ids}) {
    for (int64_t id : *ids) {
      if (id < 0 || id >= vocab) {
        return bad(absl::StrCat(ids == &s.prompt_ids ? "prompt_ids" : "completion_ids", ": token ", id,
                                " is outside the vocabulary [0, ", vocab, ")"));
      }
    }
  }
  if (batch.objective == Objective::kGrpo) {
    if (!std::isfinite(s.advantage)) return bad("advantage is not finite");
    if (options_.grpo.importance_correction) {
      if (s.behaviour_logprobs.size() != s.completion_ids.size()) {
        return bad(absl::StrCat("behaviour_logprobs has ", s.behaviour_logprobs.size(), " values for ",
                                s.completion_ids.size(), " completion tokens"));
      }
      for (float lp : s.behaviour_logprobs) {
        if (!std::isfinite(lp) || lp > 0) return bad(absl::StrCat("behaviour_logprobs: ", lp, " is not a log-prob"));
      }
    }
  }
  return absl::OkStatus();
}

void Trainer::ZeroGrad() {
  for (const Param& p : params_) {
    torch::Tensor& grad = const_cast<torch::Tensor&>(p.tensor).mutable_grad();
    if (grad.defined()) {
      grad.zero_();
    } else {
      grad = torch::zeros_like(p.tensor);
    }
  }
}

absl::Status Trainer::RunMicroBatch(const TrainingBatch& batch, const std::vector<size_t>& rows,
                                    int64_t global_samples, int64_t global_tokens, double* stats) {
  const bool grpo = batch.objective == Objective::kGrpo;
  std::vector<PromptCompletion> inputs;
  inputs.reserve(rows.size());
  for (size_t i : rows) inputs.push_back({batch.samples[i].prompt_ids, batch.samples[i].completion_ids});
  TokenLogprobsOptions lp_options;
  lp_options.adapter = adapter_index_;
  lp_options.temperature = grpo ? options_.temperature : 1.0;
  lp_options.training = true;
  lp_options.chunk_tokens = options_.logprob_chunk_tokens;
  auto policy = ComputeTokenLogprobs(*model_, inputs, lp_options);
  if (!policy.ok()) return policy.status();
  const torch::Tensor& mask = policy->mask;
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t tc = mask.size(1);

  torch::Tensor loss;
  if (grpo) {
    GrpoInputs in;
    in.logprobs = policy->logprobs;
    in.mask = mask;
    in.step_samples = global_samples;
    in.step_tokens = global_tokens;
    std::vector<float> advantages;
    advantages.reserve(rows.size());
    for (size_t i : rows) advantages.push_back(static_cast<float>(batch.samples[i].advantage));
    in.advantages = torch::tensor(advantages, torch::kFloat).to(mask.device());
    if (options_.grpo.importance_correction) {
      torch::Tensor behaviour = torch::zeros({n, tc}, torch::kFloat);
      auto acc = behaviour.accessor<float, 2>();
      for (int64_t r = 0; r < n; ++r) {
        const std::vector<float>& lp = batch.samples[rows[r]].behaviour_logprobs;
        for (size_t t = 0; t < lp.size(); ++t) acc[r][static_cast<int64_t>(t)] = lp[t];
      }
      in.behaviour_logprobs = behaviour.to(mask.device());
    }
    if (options_.grpo.kl_beta > 0) {
      TokenLogprobsOptions ref_options = lp_options;
      ref_options.adapter = -1;
      ref_options.training = false;
      auto reference = ComputeTokenLogprobs(*model_, inputs, ref_options);
      if (!reference.ok()) return reference.status();
      in.reference_logprobs = reference->logprobs;
    }
    auto result = ComputeGrpoLoss(in, options_.grpo);
    if (!result.ok()) return result.status();
    loss = result->loss;
    stats[kKlTokens] += result->kl * static_cast<double>(result->tokens);
    stats[kClippedTokens] += static_cast<double>(result->clipped_tokens);
    stats[kRatioTokens] += result->ratio_mean * static_cast<double>(result->tokens);
    stats[kTokens] += static_cast<double>(result->tokens);
  } else {
    // Mean NLL over the global batch's completion tokens.
    loss = -(policy->logprobs * mask).sum() / static_cast<double>(global_tokens);
    stats[kTokens] += mask.sum().item<double>();
  }
  loss.backward();
  stats[kLoss] += loss.item<double>();
  return absl::OkStatus();
}

absl::StatusOr<StepStats> Trainer::Step(const TrainingBatch& batch) {
  const auto start = std::chrono::steady_clock::now();
  StepStats out;
  // 1. Validate and count; every rank learns whether any rank rejected its shard.
  absl::Status input_status;
  double local_tokens = 0;
  for (size_t i = 0; i < batch.samples.size() && input_status.ok(); ++i) {
    input_status = CheckSample(batch, i);
    local_tokens += static_cast<double>(batch.samples[i].completion_ids.size());
  }
  std::vector<torch::Tensor> counts = {torch::zeros({kNumCounts}, torch::kDouble)};
  {
    auto c = counts[0].accessor<double, 1>();
    c[kSamples] = static_cast<double>(batch.samples.size());
    c[kCountTokens] = local_tokens;
    c[kRejected] = input_status.ok() ? 0 : 1;
    c[kGrpoRanks] = batch.objective == Objective::kGrpo ? 1 : 0;
  }
  if (absl::Status s = parallel_->AllReduceSum(counts); !s.ok()) return s;
  auto c = counts[0].accessor<double, 1>();
  if (!input_status.ok()) return input_status;
  if (c[kRejected] > 0) return absl::InvalidArgumentError("another learner rank rejected its part of the batch");
  if (c[kGrpoRanks] != 0 && c[kGrpoRanks] != parallel_->world_size()) {
    return absl::InvalidArgumentError("learner ranks disagree on the objective of the step");
  }
  out.samples = static_cast<int64_t>(c[kSamples]);
  out.tokens = static_cast<int64_t>(c[kCountTokens]);
  if (out.samples == 0) return absl::InvalidArgumentError("the global batch has no samples");

  // 2. Dropout stream of this step.
  // torch::manual_seed seeds the CPU generator and, on CUDA builds, every GPU's.
  torch::manual_seed(SplitMix64(options_.seed ^ SplitMix64(static_cast<uint64_t>(step_) * 1000003ull +
                                                           static_cast<uint64_t>(parallel_->rank()))));

  // 3. Micro-batches: forward + backward with the global normalisers.
  std::vector<int64_t> lengths;
  lengths.reserve(batch.samples.size());
  for (const TrainingSample& s : batch.samples) {
    lengths.push_back(static_cast<int64_t>(s.prompt_ids.size() + s.completion_ids.size()));
  }
  auto micro = PackMicroBatches(lengths, {options_.micro_batch_tokens, options_.micro_batch_max_rows});
  if (!micro.ok()) return micro.status();
  ZeroGrad();
  double stats[kNumStats] = {0};
  absl::Status compute_status = Guard("training step", [&]() -> absl::Status {
    torch::AutoGradMode grad_mode(true);
    for (const MicroBatch& mb : *micro) {
      absl::Status s = RunMicroBatch(batch, mb.indices, out.samples, out.tokens, stats);
      if (!s.ok()) return s;
      out.padded_tokens += mb.padded_tokens();
      ++out.micro_batches;
    }
    return absl::OkStatus();
  });
  stats[kFailed] = compute_status.ok() ? 0 : 1;
  std::vector<torch::Tensor> reduced = {torch::from_blob(stats, {kNumStats}, torch::kDouble).clone()};
  if (absl::Status s = parallel_->AllReduceSum(reduced); !s.ok()) return s;
  auto r = reduced[0].accessor<double, 1>();
  if (!compute_status.ok() || r[kFailed] > 0) {
    ZeroGrad();
    return compute_status.ok() ? absl::AbortedError("another learner rank failed its part of the step")
                               : compute_status;
  }
  out.loss = r[kLoss];
  if (r[kTokens] > 0) {
    out.kl = r[kKlTokens] / r[kTokens];
    out.clip_fraction = r[kClippedTokens] / r[kTokens];
    out.ratio_mean = r[kRatioTokens] / r[kTokens];
  }

  // 4-5. Sum gradients over ranks, clip, step.
  std::vector<torch::Tensor> tensors;
  tensors.reserve(params_.size());
  for (const Param& p : params_) tensors.push_back(p.tensor);
  if (absl::Status s = parallel_->AllReduceGradients(tensors); !s.ok()) return s;
  absl::Status update = Guard("optimizer step", [&]() -> absl::Status {
    const double max_norm =
        options_.max_grad_norm > 0 ? options_.max_grad_norm : std::numeric_limits<double>::infinity();
    out.grad_norm = torch::nn::utils::clip_grad_norm_(tensors, max_norm);
    if (!std::isfinite(out.grad_norm)) {
      ZeroGrad();
      return absl::InternalError(absl::StrCat("gradient norm is ", out.grad_norm, ": step skipped"));
    }
    // The warm-up counts this optimizer's steps (its AdamW state, checkpointed with it), not
    // step_: a trainer that replaces an adapter starts from fresh moments and warms up again.
    out.learning_rate = LearningRateAt(params_.empty() ? step_ : StateOf(*optimizer_, params_[0].tensor).step());
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(out.learning_rate);
    optimizer_->step();
    ZeroGrad();
    return absl::OkStatus();
  });
  if (!update.ok()) return update;
  ++step_;
  ++adapter_version_;
  data_cursor_ = batch.data_cursor;
  out.step = step_;

  // 6. Checkpoint.
  if (!options_.checkpoint_dir.empty() && options_.checkpoint_every_steps > 0 &&
      step_ % options_.checkpoint_every_steps == 0 && parallel_->rank() == 0) {
    auto path = SaveCheckpoint();
    if (path.ok()) {
      out.checkpoint = *path;
    } else {
      out.checkpoint_error = std::string(path.status().message());
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

absl::StatusOr<std::string> Trainer::SaveCheckpoint() {
  if (options_.checkpoint_dir.empty()) return absl::FailedPreconditionError("no checkpoint_dir configured");
  if (parallel_->rank() != 0) return std::string();
  TrainerState state;
  state.step = step_;
  state.adapter_version = adapter_version_;
  state.data_cursor = data_cursor_;
  state.seed = options_.seed;
  state.world_size = parallel_->world_size();
  std::unique_ptr<LoraAdapter> snapshot;
  OptimizerTensors optimizer;
  absl::Status s = Guard("snapshotting the trainer", [&]() -> absl::Status {
    state.rng_state = GeneratorState();
    snapshot = SnapshotAdapter();
    optimizer = OptimizerState();
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  auto path = WriteCheckpoint(options_.checkpoint_dir, *snapshot, optimizer, state);
  if (!path.ok()) return path.status();
  if (s = PruneCheckpoints(options_.checkpoint_dir, options_.keep_checkpoints); !s.ok()) return s;
  return path;
}

std::unique_ptr<LoraAdapter> Trainer::SnapshotAdapter() const { return adapter_->Clone(); }

OptimizerTensors Trainer::OptimizerState() const {
  OptimizerTensors out;
  for (const Param& p : params_) {
    auto& state = StateOf(*optimizer_, p.tensor);
    out[p.name + ".exp_avg"] = state.exp_avg().detach().to(torch::kCPU).clone();
    out[p.name + ".exp_avg_sq"] = state.exp_avg_sq().detach().to(torch::kCPU).clone();
    out[p.name + ".step"] = torch::tensor({state.step()}, torch::kLong);
  }
  return out;
}

}  // namespace dsm
