// `dsm generate`: sample one completion from a Hugging Face model folder
// (optionally with a PEFT LoRA adapter) and print it.
#ifndef DSM_MODEL_GENERATE_CLI_H_
#define DSM_MODEL_GENERATE_CLI_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "model/sampling.h"

namespace dsm {

struct GenerateCommand {
  std::string model_dir;
  std::optional<std::string> prompt;          // text (needs model_dir/tokenizer.json)
  std::optional<std::vector<int32_t>> prompt_ids;
  std::string lora_dir;                       // empty = base model
  SamplingParams params;                      // max_tokens, temperature, top_p, seed
  int threads = 0;                            // LibTorch threads; 0 = leave as is
};

// Prints the generated ids comma-separated on one line and, when the model
// folder has a tokenizer.json, the decoded text on the next line. Returns 0;
// 2 with one line on `err` for bad input (missing folder, bad ids, prompt text
// without a tokenizer, bad sampling values); 1 when generation itself fails.
int RunGenerateCommand(const GenerateCommand& command, std::ostream& out, std::ostream& err);

}  // namespace dsm

#endif  // DSM_MODEL_GENERATE_CLI_H_
