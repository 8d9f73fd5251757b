#include "model/logits_cli.h"

#include <torch/torch.h>

#include "absl/status/status.h"
#include "model/llama_model.h"
#include "model/safetensors.h"

namespace dsm {

int RunLogitsCommand(const std::string& model_dir, const std::vector<int32_t>& ids,
                     const std::string& out_path, std::ostream& err) {
  if (ids.empty()) {
    err << "dsm logits: no token ids given\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(model_dir, {torch::kFloat, torch::kCPU});
  if (!model.ok()) {
    err << "dsm logits: " << model.status().message() << "\n";
    return 2;
  }
  const int64_t vocab = (*model)->config().vocab_size;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      err << "dsm logits: id " << ids[i] << " at position " << i << " is outside the vocabulary [0, " << vocab
          << ")\n";
      return 2;
    }
  }
  std::vector<int64_t> wide(ids.begin(), ids.end());
  torch::Tensor input = torch::tensor(wide, torch::kLong).view({1, static_cast<int64_t>(wide.size())});
  torch::NoGradGuard no_grad;
  absl::StatusOr<torch::Tensor> logits = (*model)->Logits(input, torch::Tensor());
  if (!logits.ok()) {
    err << "dsm logits: " << logits.status().message() << "\n";
    return absl::IsInvalidArgument(logits.status()) ? 2 : 1;
  }
  absl::Status written = WriteSafetensors(out_path, {{"logits", logits->squeeze(0).contiguous()}});
  if (!written.ok()) {
    err << "dsm logits: " << written.message() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace dsm
