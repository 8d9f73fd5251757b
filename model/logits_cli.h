// `dsm logits`: the logits of a model for one sequence of token ids, written
// as a safetensors file so they can be compared with Hugging Face's.
#ifndef DSM_MODEL_LOGITS_CLI_H_
#define DSM_MODEL_LOGITS_CLI_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace dsm {

// Loads the model in `model_dir` (float32, CPU), computes the logits of `ids`
// (one sequence, no adapter) and writes `out_path`: a safetensors file with one
// F32 tensor "logits" of shape [len(ids), vocab_size].
// Returns 0 on success; 2 with one line on `err` for bad input (missing or
// invalid model folder, empty ids, an id outside the vocabulary, unwritable
// output); 1 for internal failures.
int RunLogitsCommand(const std::string& model_dir, const std::vector<int32_t>& ids,
                     const std::string& out_path, std::ostream& err);

}  // namespace dsm

#endif  // DSM_MODEL_LOGITS_CLI_H_
