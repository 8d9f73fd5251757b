// Learner checkpoints: everything needed to continue training exactly where
// it stopped.
//
// Layout under the checkpoint root:
//   step-00000123/
//     adapter/adapter_config.json        PEFT layout (LoraAdapter::Save): loads in
//     adapter/adapter_model.safetensors  peft.PeftModel.from_pretrained as is
//     optimizer.safetensors              "<PEFT name>.exp_avg", ".exp_avg_sq" (float32,
//                                        the parameter's shape), ".step" (int64 [1])
//     trainer_state.json                 step, adapter version, data cursor, seed,
//                                        RNG state, world size
//     .complete                          manifest: size and FNV-1a 64 of every file
// A checkpoint is written into a hidden temp folder (.tmp-step-...) in the
// same root, every file fsynced, the manifest last, then renamed into place
// and the root fsynced: a crash leaves either the old set of checkpoints or
// the new one, never a half-written step-* folder. Readers still verify every
// file against the manifest (sizes, hashes, parse), so a truncated or
// corrupted folder is skipped, never loaded.
//
// Thread safety: the functions are independent; two writers must not share a
// root (only rank 0 of a learner writes).
#ifndef DSM_LEARNER_CHECKPOINT_H_
#define DSM_LEARNER_CHECKPOINT_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/lora.h"
#include "model/model_config.h"

namespace dsm {

struct TrainerState {
  int64_t step = 0;             // optimizer steps taken
  int64_t adapter_version = 0;  // the version the adapter was published as
  std::string data_cursor;      // opaque to the learner: the caller's position in its data
  uint64_t seed = 0;
  std::string rng_state;        // raw bytes of the CPU generator state (may be empty)
  int world_size = 1;
};

// An optimizer's state in a device-independent form: PEFT tensor name ->
// per-parameter tensors (see the layout above).
using OptimizerTensors = std::map<std::string, torch::Tensor>;

struct Checkpoint {
  std::string path;  // the step-* folder
  TrainerState state;
  std::unique_ptr<LoraAdapter> adapter;  // float32 on the CPU
  OptimizerTensors optimizer;            // CPU tensors
};

// "step-00000123" for step 123.
std::string CheckpointFolderName(int64_t step);

// Writes a checkpoint of `state.step` under `root` (created if missing) and
// returns its folder. An existing folder for the same step is replaced.
absl::StatusOr<std::string> WriteCheckpoint(const std::string& root, const LoraAdapter& adapter,
                                            const OptimizerTensors& optimizer, const TrainerState& state);

// Reads and verifies one step-* folder. Errors: NotFound (no manifest: never
// completed), DataLoss (size/hash mismatch, unparsable file), InvalidArgument
// (an adapter that does not fit `model`).
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path, const ModelConfig& model);

// The step-* folders under `root`, oldest first (complete or not). Missing root: empty.
std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& root);

// The newest checkpoint that verifies, or nullopt when there is none (a
// missing root is not an error). Folders that fail to verify are skipped and,
// when `skipped` is given, reported there as "path: reason".
absl::StatusOr<std::optional<Checkpoint>> LatestValidCheckpoint(const std::string& root, const ModelConfig& model,
                                                                std::vector<std::string>* skipped = nullptr);

// Keeps the `keep` newest complete checkpoints (those with a manifest) and
// removes every older step-* folder, plus leftover temp folders. keep <= 0
// keeps everything.
absl::Status PruneCheckpoints(const std::string& root, int keep);

}  // namespace dsm

#endif  // DSM_LEARNER_CHECKPOINT_H_
