#include "model/generate_cli.h"

#include <filesystem>
#include <memory>

#include "absl/strings/str_join.h"
#include "model/llama_model.h"
#include "model/lora.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

namespace dsm {

int RunGenerateCommand(const GenerateCommand& command, std::ostream& out, std::ostream& err) {
  auto usage = [&err](absl::string_view message) {
    err << "dsm generate: " << message << "\n";
    return 2;
  };
  if (command.prompt.has_value() == command.prompt_ids.has_value()) {
    return usage("give exactly one of --prompt and --prompt-ids");
  }
  if (absl::Status s = command.params.Validate(); !s.ok()) return usage(s.message());
  if (command.threads > 0) {
    if (absl::Status s = SetTorchThreads(command.threads); !s.ok()) return usage(s.message());
  }
  absl::StatusOr<std::unique_ptr<LlamaModel>> model = LlamaModel::Load(command.model_dir);
  if (!model.ok()) return usage(model.status().message());

  std::unique_ptr<Tokenizer> tokenizer;
  const std::string tokenizer_path = command.model_dir + "/tokenizer.json";
  if (std::filesystem::exists(tokenizer_path)) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = Tokenizer::FromFile(tokenizer_path);
    if (!loaded.ok()) return usage(loaded.status().message());
    tokenizer = std::move(*loaded);
  }

  SampleRequest request;
  request.params = command.params;
  if (command.prompt) {
    if (!tokenizer) return usage("--prompt needs " + tokenizer_path + "; give --prompt-ids instead");
    request.prompt = tokenizer->Encode(*command.prompt, /*add_special_tokens=*/true);
  } else {
    request.prompt = *command.prompt_ids;
  }
  if (!command.lora_dir.empty()) {
    absl::StatusOr<std::unique_ptr<LoraAdapter>> adapter =
        LoraAdapter::Load(command.lora_dir, (*model)->config(), (*model)->dtype(), (*model)->device());
    if (!adapter.ok()) return usage(adapter.status().message());
    absl::StatusOr<int> index = (*model)->AddAdapter("lora", std::shared_ptr<LoraAdapter>(std::move(*adapter)));
    if (!index.ok()) return usage(index.status().message());
    request.adapter = *index;
  }

  SamplerOptions options;
  options.max_batch = 1;
  options.max_len = static_cast<int64_t>(request.prompt.size()) + request.params.max_tokens;
  absl::StatusOr<std::unique_ptr<Sampler>> sampler = Sampler::Create(model->get(), tokenizer.get(), options);
  if (!sampler.ok()) return usage(sampler.status().message());
  std::vector<absl::StatusOr<SampleResult>> results = (*sampler)->Generate({std::move(request)});
  if (!results[0].ok()) {
    const bool bad_input = absl::IsInvalidArgument(results[0].status());
    err << "dsm generate: " << results[0].status().message() << "\n";
    return bad_input ? 2 : 1;
  }
  out << absl::StrJoin(results[0]->tokens, ",") << "\n";
  if (tokenizer) out << results[0]->text << "\n";
  return 0;
}

}  // namespace dsm
