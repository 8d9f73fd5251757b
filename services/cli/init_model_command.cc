// `dsm init-model --out DIR [--hidden 128 --layers 4 --heads 4 --kv-heads 2
// --intermediate 344 --max-len 512 --vocab 1024 --mimetic 0 --mimetic-layers 0 --seed S]
// [--templates DIR]`:
// writes the built-in default model (DESIGN.md §6) — a randomly initialised
// Llama (model/model_init.h) with the chain domain's own tokenizer
// (tasks/chain_tokenizer.h), trained on the domain's texts plus every *.txt
// prompt template of --templates (default configs/prompts, skipped when that
// folder is absent; a folder given explicitly must exist). Bad flags or
// options: exit 2 with one line; a write failure: exit 1.
//
// Builds without LibTorch (-DDSM_WITH_TORCH=OFF) do not compile this file
// (services/cli/no_model_commands.cc adds no command instead).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "model/model_init.h"
#include "services/cli/app.h"
#include "tasks/chain_tokenizer.h"

namespace dsm::cli {
namespace {

constexpr char kDefaultTemplates[] = "configs/prompts";

struct InitModelFlags {
  std::string out;
  ModelInitOptions model;
  int vocab_size = 1024;
  int64_t seed = 0;
  std::string templates = kDefaultTemplates;
};

// The contents of every *.txt file in `dir`, by file name.
int ReadTemplates(const std::string& dir, bool required, std::vector<std::string>* texts) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (!required) return kExitOk;
    return UsageError("init-model: --templates: " + dir + " is not a folder");
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream contents;
    contents << in.rdbuf();
    if (!in && !in.eof()) return UsageError("init-model: --templates: cannot read " + path.string());
    texts->push_back(contents.str());
  }
  return kExitOk;
}

int InitModel(const InitModelFlags& flags) {
  ModelInitOptions options = flags.model;
  if (flags.seed < 0) return UsageError("init-model: --seed: " + std::to_string(flags.seed) + " is negative");
  options.seed = static_cast<uint64_t>(flags.seed);
  if (absl::Status s = options.Validate(); !s.ok()) return UsageError("init-model: " + std::string(s.message()));

  std::vector<std::string> templates;
  if (int rc = ReadTemplates(flags.templates, flags.templates != kDefaultTemplates, &templates); rc != kExitOk) {
    return rc;
  }
  ChainTokenizerOptions tokenizer_options;
  tokenizer_options.vocab_size = flags.vocab_size;
  tokenizer_options.seed = options.seed;
  tokenizer_options.model_max_length = static_cast<int>(options.max_position_embeddings);
  if (absl::Status s = tokenizer_options.Validate(); !s.ok()) {
    return UsageError("init-model: " + std::string(s.message()));
  }
  absl::StatusOr<ChainTokenizer> tokenizer = ChainTokenizer::Build(tokenizer_options, templates);
  if (!tokenizer.ok()) return UsageError("init-model: " + std::string(tokenizer.status().message()));

  absl::StatusOr<ModelConfig> config =
      WriteInitialModel(flags.out, options, tokenizer->TokenizerJson(), tokenizer->TokenizerConfigJson());
  if (!config.ok()) {
    std::cerr << "dsm: init-model: " << config.status().message() << "\n";
    return config.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  std::cout << "wrote " << flags.out << ": LlamaForCausalLM, " << CountModelParameters(*config)
            << " parameters (vocab " << config->vocab_size << ", hidden " << config->hidden_size << ", layers "
            << config->num_hidden_layers << ", heads " << config->num_attention_heads << "/"
            << config->num_key_value_heads << ", intermediate " << config->intermediate_size << ", context "
            << config->max_position_embeddings << ", " << templates.size() << " templates in the tokenizer corpus)\n";
  return kExitOk;
}

}  // namespace

void AddInitModelCommand(CLI::App& app, Action* action) {
  auto flags = std::make_shared<InitModelFlags>();
  CLI::App* cmd = app.add_subcommand(
      "init-model",
      "Write a fresh, randomly initialised Llama model with the chain domain's tokenizer (the built-in default)");
  cmd->add_option("--out", flags->out, "Output folder (config.json, model.safetensors, tokenizer.json)")->required();
  cmd->add_option("--hidden", flags->model.hidden_size, "Hidden size (default 128)");
  cmd->add_option("--layers", flags->model.num_hidden_layers, "Transformer layers (default 4)");
  cmd->add_option("--heads", flags->model.num_attention_heads, "Attention heads (default 4)");
  cmd->add_option("--kv-heads", flags->model.num_key_value_heads, "Key/value heads (default 2)");
  cmd->add_option("--intermediate", flags->model.intermediate_size, "MLP intermediate size (default 344)");
  cmd->add_option("--max-len", flags->model.max_position_embeddings, "Context length in tokens (default 512)");
  cmd->add_option("--vocab", flags->vocab_size, "Tokenizer vocabulary size (default 1024)");
  cmd->add_option("--init-std", flags->model.initializer_range,
                  "Std of the normal init, (0, 1] (default 0.02 as in transformers)");
  cmd->add_option("--mimetic", flags->model.mimetic_attention,
                  "Mimetic attention strength, 0..4 (default 0 = off; the built-in default uses 0.7)");
  cmd->add_option("--mimetic-layers", flags->model.mimetic_layers,
                  "Mimetic attention in the last N layers only (default 0 = all)");
  cmd->add_flag("--tie-embeddings", flags->model.tie_word_embeddings,
                "Share the input and output embeddings (default: separate; tied, a model this small cannot copy from its prompt)");
  cmd->add_option("--seed", flags->seed, "Seed of the weights and the tokenizer corpus (default 0)");
  cmd->add_option("--templates", flags->templates,
                  "Folder of prompt templates (*.txt) added to the tokenizer corpus (default configs/prompts)");
  cmd->callback([action, flags] { *action = [flags] { return InitModel(*flags); }; });
}

}  // namespace dsm::cli
