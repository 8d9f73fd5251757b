// `dsm tokenize`, `dsm logits`, `dsm generate`: the model runtime from the
// command line (and how it is checked from outside).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "model/generate_cli.h"
#include "model/logits_cli.h"
#include "model/tokenizer_cli.h"
#include "services/cli/app.h"

namespace dsm::cli {
namespace {

// "1,2,3" -> ids; false (with `*error` set) on anything else.
bool ParseIds(const std::string& text, std::vector<int32_t>* ids, std::string* error) {
  ids->clear();
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id) || id < 0) {
      *error = "\"" + std::string(part) + "\" in \"" + text + "\" is not a token id";
      return false;
    }
    ids->push_back(id);
  }
  return true;
}

struct TokenizeFlags {
  std::string tokenizer;
  bool decode = false;
};

struct LogitsFlags {
  std::string model;
  std::string ids;
  std::string out;
};

struct GenerateFlags {
  GenerateCommand command;
  std::string prompt;
  std::string prompt_ids;
};

}  // namespace

void AddModelCommands(CLI::App& app, Action* action) {
  auto tokenize = std::make_shared<TokenizeFlags>();
  CLI::App* tok = app.add_subcommand(
      "tokenize", "Read UTF-8 text on stdin, print its token ids (no special tokens added) on one line");
  tok->add_option("--tokenizer", tokenize->tokenizer, "A Hugging Face tokenizer.json")->required();
  tok->add_flag("--decode", tokenize->decode, "Read ids (space- or comma-separated) and print their text");
  tok->callback([action, tokenize] {
    *action = [tokenize] {
      return RunTokenizeCommand(tokenize->tokenizer, tokenize->decode, std::cin, std::cout, std::cerr);
    };
  });

  auto logits = std::make_shared<LogitsFlags>();
  CLI::App* lg = app.add_subcommand(
      "logits", "Write the logits of a token sequence ([ids, vocab], F32 tensor `logits`) to a safetensors file");
  lg->add_option("--model", logits->model, "A Hugging Face model folder (config.json + safetensors)")->required();
  lg->add_option("--ids", logits->ids, "Comma-separated token ids, e.g. 1,2,3")->required();
  lg->add_option("--out", logits->out, "Output .safetensors file")->required();
  lg->callback([action, logits] {
    *action = [logits] {
      std::vector<int32_t> ids;
      std::string error;
      if (!ParseIds(logits->ids, &ids, &error)) return UsageError("logits: --ids: " + error);
      return RunLogitsCommand(logits->model, ids, logits->out, std::cerr);
    };
  });

  auto generate = std::make_shared<GenerateFlags>();
  GenerateCommand& g = generate->command;
  g.params.temperature = 1.0;
  g.params.max_tokens = 64;
  CLI::App* gen = app.add_subcommand(
      "generate", "Sample a completion; print its ids (comma-separated) and, with a tokenizer, its text");
  gen->add_option("--model", g.model_dir, "A Hugging Face model folder")->required();
  CLI::Option* text = gen->add_option("--prompt", generate->prompt, "Prompt text (needs tokenizer.json)");
  CLI::Option* ids = gen->add_option("--prompt-ids", generate->prompt_ids, "Prompt token ids, e.g. 1,2,3");
  text->excludes(ids);
  gen->add_option("--max-tokens", g.params.max_tokens, "New tokens at most")->check(CLI::Range(1, 1 << 20));
  gen->add_option("--temperature", g.params.temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0));
  gen->add_option("--top-p", g.params.top_p, "Nucleus sampling mass")->check(CLI::Range(1e-6, 1.0));
  gen->add_option("--top-k", g.params.top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  gen->add_option("--seed", g.params.seed, "Same seed, same output");
  gen->add_option("--lora", g.lora_dir, "A PEFT adapter folder (adapter_config.json + adapter_model.safetensors)");
  gen->add_option("--threads", g.threads, "LibTorch threads (default: LibTorch's)")->check(CLI::Range(1, 256));
  gen->callback([action, generate, text, ids] {
    *action = [generate, text, ids] {
      GenerateCommand command = generate->command;
      if (text->count() > 0) command.prompt = generate->prompt;
      if (ids->count() > 0) {
        std::vector<int32_t> parsed;
        std::string error;
        if (!ParseIds(generate->prompt_ids, &parsed, &error)) return UsageError("generate: --prompt-ids: " + error);
        command.prompt_ids = parsed;
      }
      return RunGenerateCommand(command, std::cout, std::cerr);
    };
  });
}

}  // namespace dsm::cli
