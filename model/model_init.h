// A fresh, randomly initialised Llama model written as a Hugging Face folder
// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json) that
// LlamaModel::Load reads: the built-in default model that dsm makes itself
// (DESIGN.md §6) before the phase-0 warm-up teaches it the task.
//
// Initialisation follows transformers' LlamaPreTrainedModel._init_weights:
// every linear and the embedding ~ N(0, initializer_range), RMSNorm weights 1,
// no biases; with tie_word_embeddings there is no lm_head.weight. The numbers
// come from a SplitMix64 stream of our own (Box-Muller normals), seeded per
// tensor from (seed, tensor name): the bytes depend only on the options and
// the vocabulary size, on every platform and LibTorch version.
//
// The tokenizer is given as tokenizer.json text (model/ knows nothing of how
// it was made: the CLI builds tasks/'s ChainTokenizer); its vocabulary size is
// the model's, and its BOS / EOS ids (tokenizer_config.json's bos_token /
// eos_token when given, else what model/tokenizer.h discovers) go to
// config.json.
//
// Pure functions apart from the files written; thread-safe.
#ifndef DSM_MODEL_MODEL_INIT_H_
#define DSM_MODEL_MODEL_INIT_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace dsm {

struct ModelInitOptions {
  int64_t hidden_size = 128;          // 8..8192, a multiple of num_attention_heads
  int64_t num_hidden_layers = 4;      // 1..256
  int64_t num_attention_heads = 4;    // 1..256
  int64_t num_key_value_heads = 2;    // divides num_attention_heads
  int64_t intermediate_size = 344;    // 1..65536
  int64_t max_position_embeddings = 512;  // 16..1048576
  // Separate input and output embeddings by default. Tied, a model this
  // small loses the task: while it still predicts "some variable" at every
  // variable position, the output side pulls every variable's embedding
  // toward the same hidden state (after the built-in warm-up's first 400
  // steps, pairwise cosine 0.94-0.97), the inputs become indistinguishable
  // and nothing can be copied from the prompt. Untied, each keeps its own
  // random direction on the input side.
  bool tie_word_embeddings = false;
  double rms_norm_eps = 1e-5;         // (0, 1)
  double rope_theta = 10000.0;        // > 0
  double initializer_range = 0.02;    // std of the normal init, (0, 1]
  // Mimetic attention (Trockman & Kolter, 2023, "Mimetic initialization of self-attention
  // layers"), [0, 4]; 0 = off, every attention weight normal like the rest. a > 0 starts each
  // layer's attention the way trained layers look: each query head scores a key by
  // a (x_g . y_g + x . Z y_g / sqrt(hidden)), x_g the hidden-state coordinates its key group
  // reads (all of them without GQA), so a token attends to tokens like itself from the first
  // step; and W_o W_v ~ -(a / 2)(I + Z' / sqrt(hidden)). That is the look-up "does this token
  // occur there" a verifier needs: from a normal init a 4-layer, hidden-128 model takes ~4x
  // more steps to find it (bench/experiments/lookup_probe.py). MLPs and embeddings stay normal.
  double mimetic_attention = 0;
  // How many of the last layers start mimetic when mimetic_attention > 0: 0..num_hidden_layers,
  // 0 = all of them. Mimetic attention in every layer holds back what the lower layers must
  // learn first (the built-in warm-up's generator: 0.000 at step 1200 vs 0.396); in the last
  // layer alone it does not, and the look-up is as fast (BENCHMARKS.md).
  int64_t mimetic_layers = 0;
  uint64_t seed = 0;

  // One line naming the field and the limit, e.g.
  // "num_key_value_heads: 3 does not divide num_attention_heads 4".
  absl::Status Validate() const;
};

// What the tokenizer gives the model.
struct ModelInitVocabulary {
  int64_t vocab_size = 0;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;
  std::optional<int64_t> pad_token_id;
};

// Reads tokenizer.json text (and tokenizer_config.json text, which may be
// empty) with model/tokenizer.h. Errors: the tokenizer's own, or a
// bos/eos/pad token named by the config that the tokenizer lacks.
absl::StatusOr<ModelInitVocabulary> ReadModelInitVocabulary(const std::string& tokenizer_json,
                                                            const std::string& tokenizer_config_json);

// config.json text (LlamaForCausalLM, float32) for `options` and `vocab`.
std::string ModelInitConfigJson(const ModelInitOptions& options, const ModelInitVocabulary& vocab);

// The initial weights of `config` under their HF names (float32, CPU), drawn as `options` say
// (initializer_range, mimetic_attention, mimetic_layers, seed; its architecture fields are
// config's).
std::map<std::string, torch::Tensor> InitialModelWeights(const ModelConfig& config,
                                                         const ModelInitOptions& options);

// Number of weights (elements) of a Llama model of this architecture.
int64_t CountModelParameters(const ModelConfig& config);

// Writes config.json, model.safetensors, tokenizer.json and (when not empty)
// tokenizer_config.json into `dir` (created if missing; files replaced, each
// atomically). Returns the model's config.
absl::StatusOr<ModelConfig> WriteInitialModel(const std::string& dir, const ModelInitOptions& options,
                                              const std::string& tokenizer_json,
                                              const std::string& tokenizer_config_json);

}  // namespace dsm

#endif  // DSM_MODEL_MODEL_INIT_H_
