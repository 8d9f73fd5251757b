// The learner's training core: one optimizer step per call over this rank's
// shard of a global batch, LoRA parameters only. Pure LibTorch (the gRPC
// service sits on top of it).
//
// A step:
//  1. counts the global batch (all-reduce of samples and completion tokens,
//     plus an "input rejected" flag so every rank fails together);
//  2. reseeds the CPU generator (LoRA dropout) from (seed, step, rank);
//  3. packs the rank's samples into micro-batches by a token budget
//     (PackMicroBatches) and runs forward + backward on each, the loss
//     normalised by the GLOBAL counts, so the accumulated gradients are the
//     gradient of the whole global batch's loss whatever the packing;
//  4. sums the gradients over ranks (DataParallel::AllReduceGradients);
//  5. clips them to max_grad_norm and takes one AdamW step;
//  6. every checkpoint_every_steps steps, rank 0 writes a checkpoint.
// Two ranks therefore give the same adapter as one rank on the same global
// batch, up to the order of float additions.
//
// Objectives: GRPO (ComputeGrpoLoss on the policy's, the reference's and the
// behaviour policy's per-token log-probs) and SFT (mean negative
// log-likelihood of the completion tokens of the global batch: the phase-0
// warm-up).
//
// Determinism: the same model, initial adapter, options, data and
// intra-op thread count give a bit-identical adapter on the CPU, also across
// a restart from a checkpoint (the dropout generator is reseeded per step, so
// nothing about it has to survive the restart; its state is still saved).
// The trainer reseeds LibTorch's default generators (torch::manual_seed: the
// CPU one and, on CUDA builds, every GPU's): a learner process owns them.
//
// Thread safety: none; one thread drives a Trainer. The model's other
// adapters may serve forwards concurrently (they are never written), but the
// trained adapter's tensors change in Step(): publish SnapshotAdapter().
#ifndef DSM_LEARNER_TRAINER_H_
#define DSM_LEARNER_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/checkpoint.h"
#include "learner/data_parallel.h"
#include "learner/grpo_loss.h"
#include "model/llama_model.h"
#include "model/lora.h"

namespace dsm {

enum class Objective {
  kGrpo,  // the GRPO objective (GrpoOptions)
  kSft,   // mean NLL of the completion tokens (phase-0 warm-up)
};

// One prompt + completion. GRPO advantages are computed before the learner
// (ComputeBatchAdvantages over the prompt's group, dynamic sampling applied).
struct TrainingSample {
  std::vector<int64_t> prompt_ids;      // >= 1 token
  std::vector<int64_t> completion_ids;  // >= 1 token
  // GRPO: log π_old of each completion token, from the sampler that made the
  // sample (same temperature). Required with grpo.importance_correction,
  // ignored otherwise and by SFT.
  std::vector<float> behaviour_logprobs;
  double advantage = 0;  // GRPO: Â; ignored by SFT
};

struct TrainingBatch {
  Objective objective = Objective::kGrpo;  // the same on every rank
  std::vector<TrainingSample> samples;     // this rank's shard (may be empty on some ranks)
  // Opaque to the trainer: the caller's data position once this batch is
  // consumed. Saved with the checkpoints taken after this step; data_cursor()
  // after a restart says where to continue.
  std::string data_cursor;
};

struct TrainerOptions {
  // AdamW. LoRA wants a larger rate than full fine-tuning (DeepSeekMath-RL:
  // 1e-6 full FT); 1e-5 is TRL's GRPO default and a safe start for LoRA.
  double learning_rate = 1e-5;
  // Linear warm-up from lr/warmup_steps to lr over the optimizer's first steps
  // (a fresh optimizer, as for a replaced adapter, warms up again); 0 = none.
  int64_t warmup_steps = 0;
  double beta1 = 0.9;
  double beta2 = 0.99;        // TRL GRPO's default
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW); 0 keeps LoRA's B from being pulled to the base
  double max_grad_norm = 1.0;  // global L2 norm clip; 0 = no clipping

  // Micro-batches: rows × longest (prompt + completion) tokens per forward.
  int64_t micro_batch_tokens = 8192;
  int64_t micro_batch_max_rows = 0;  // 0 = no limit
  int64_t logprob_chunk_tokens = 1024;  // TokenLogprobsOptions::chunk_tokens

  GrpoOptions grpo;
  double temperature = 1.0;  // the sampler's temperature (GRPO log-probs use it; SFT uses 1)

  uint64_t seed = 0;  // dropout stream: reseeded from (seed, step, rank) every step

  // Checkpoints: empty dir = none. Written by rank 0 after every
  // checkpoint_every_steps-th step (0 = only on SaveCheckpoint()); the
  // newest keep_checkpoints complete ones are kept (0 = all).
  std::string checkpoint_dir;
  int64_t checkpoint_every_steps = 100;
  int keep_checkpoints = 3;
  bool resume = true;  // start from the newest valid checkpoint in checkpoint_dir

  DataParallelOptions parallel;  // world size, rank, rendezvous address

  // Names the bad field and the allowed range (also checks grpo and parallel).
  absl::Status Validate() const;
};

struct StepStats {
  int64_t step = 0;  // optimizer steps taken, this one included
  double loss = 0;   // the global batch's loss (sum over ranks and micro-batches)
  double kl = 0;     // GRPO: mean k3 KL over the global batch's tokens
  double clip_fraction = 0;
  double ratio_mean = 0;
  double grad_norm = 0;  // global L2 norm before clipping
  double learning_rate = 0;
  int64_t samples = 0;  // global
  int64_t tokens = 0;   // global completion tokens
  int64_t micro_batches = 0;  // this rank's
  int64_t padded_tokens = 0;  // this rank's rows × longest, summed over micro-batches
  double seconds = 0;         // wall time of the step on this rank
  std::string checkpoint;     // the folder written after this step, if any
  std::string checkpoint_error;  // why that write failed (the step itself stands)
};

class Trainer {
 public:
  // Trains adapter `adapter_index` of `model` (not owned; it must outlive the
  // trainer, and the adapter must not be merged or removed meanwhile). Makes
  // the adapter's tensors trainable. Joins the data-parallel group
  // (options.parallel), then, with options.resume, rank 0 loads the newest
  // valid checkpoint of options.checkpoint_dir (skipping damaged ones) and
  // broadcasts adapter, optimizer state, step and data cursor to every rank;
  // without one, rank 0's adapter is broadcast so that all ranks start equal.
  // Errors: invalid options, unknown adapter, a checkpoint adapter that does
  // not match the model's (rank, targets), rendezvous failures.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(LlamaModel* model, int adapter_index,
                                                         const TrainerOptions& options);
  // Same with a group the caller joined already (options.parallel is then
  // ignored: the group's rank and size count).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(LlamaModel* model, int adapter_index,
                                                         const TrainerOptions& options,
                                                         std::unique_ptr<DataParallel> parallel);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One optimizer step on the global batch whose shard `batch` is. Every rank
  // must call it with the same objective. Errors (nothing updated, step not
  // counted, on every rank alike): InvalidArgument for bad samples (the
  // message names the sample and field) or an empty global batch;
  // Internal/Unavailable for forward or collective failures (after one of
  // those the group should be torn down: restart and resume).
  absl::StatusOr<StepStats> Step(const TrainingBatch& batch);

  // Writes a checkpoint of the current state now (rank 0; other ranks return
  // an empty path) and prunes old ones. FailedPrecondition without a
  // checkpoint_dir.
  absl::StatusOr<std::string> SaveCheckpoint();

  int64_t step() const { return step_; }
  // Bumped by one every step (the version the caller publishes the adapter as).
  int64_t adapter_version() const { return adapter_version_; }
  // For a caller that replaced the adapter's weights and published them as
  // `version`: the next step then bumps from there, and checkpoints record it.
  void SetAdapterVersion(int64_t version) { adapter_version_ = version; }
  // For a trainer that replaces another one on the same checkpoint folder
  // (a fresh optimizer for a replaced adapter): step numbers and the data
  // cursor carry on from the previous trainer, so the replacement's
  // checkpoints are the newest ones there. The learning-rate warm-up counts
  // the optimizer's own steps, so a replacement warms up again.
  void ContinueFrom(int64_t step, std::string data_cursor) {
    step_ = step;
    data_cursor_ = std::move(data_cursor);
  }
  const std::string& data_cursor() const { return data_cursor_; }
  // The checkpoint folder training resumed from, or "" for a fresh start.
  const std::string& resumed_from() const { return resumed_from_; }
  int rank() const { return parallel_->rank(); }
  int world_size() const { return parallel_->world_size(); }
  // A detached copy of the trained adapter, to publish or save.
  std::unique_ptr<LoraAdapter> SnapshotAdapter() const;
  // The optimizer state as a checkpoint stores it (PEFT name + ".exp_avg", ...).
  OptimizerTensors OptimizerState() const;

 private:
  struct Param;
  Trainer(LlamaModel* model, int adapter_index, const TrainerOptions& options,
          std::unique_ptr<DataParallel> parallel);

  absl::Status Init();
  absl::Status LoadOptimizerState(const OptimizerTensors& tensors);
  absl::Status SyncFromRoot();
  double LearningRateAt(int64_t optimizer_steps) const;
  absl::Status CheckSample(const TrainingBatch& batch, size_t i) const;
  // Forward + backward of one micro-batch; adds to the local statistics.
  absl::Status RunMicroBatch(const TrainingBatch& batch, const std::vector<size_t>& rows, int64_t global_samples,
                             int64_t global_tokens, double* stats);
  void ZeroGrad();

  LlamaModel* model_;
  int adapter_index_;
  TrainerOptions options_;
  std::unique_ptr<DataParallel> parallel_;
  std::shared_ptr<LoraAdapter> adapter_;
  std::vector<Param> params_;  // LoraAdapter::Parameters() order, with PEFT names
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t step_ = 0;
  int64_t adapter_version_ = 0;
  std::string data_cursor_;
  std::string resumed_from_;
};

}  // namespace dsm

#endif  // DSM_LEARNER_TRAINER_H_
