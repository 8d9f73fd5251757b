#include "learner/token_logprobs.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

// log_softmax(LmHead(hidden) / temperature) at `targets`: [M, H] -> [M] float32.
torch::Tensor ProjectLogprobs(const LlamaModel& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                              double temperature) {
  torch::Tensor logits = model.LmHead(hidden);
  if (temperature != 1.0) logits = logits / temperature;
  return torch::log_softmax(logits, -1).gather(1, targets.unsqueeze(1)).squeeze(1);
}

torch::Tensor ProjectInChunks(const LlamaModel& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                              double temperature, int64_t chunk) {
  const int64_t rows = hidden.size(0);
  if (rows <= chunk) return ProjectLogprobs(model, hidden, targets, temperature);
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t end = std::min(rows, begin + chunk);
    parts.push_back(ProjectLogprobs(model, hidden.slice(0, begin, end), targets.slice(0, begin, end), temperature));
  }
  return torch::cat(parts);
}

// ProjectInChunks as one autograd node that keeps only `hidden` and
// recomputes each chunk's logits in backward (the LM head's weights never
// require grad, so d/d hidden is the only gradient).
class CheckpointedProjection : public torch::autograd::Function<CheckpointedProjection> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& targets, const LlamaModel* model, double temperature,
                               int64_t chunk) {
    ctx->save_for_backward({hidden, targets});
    ctx->saved_data["model"] = reinterpret_cast<int64_t>(model);
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    return ProjectInChunks(*model, hidden, targets, temperature, chunk);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& hidden = saved[0];
    const torch::Tensor& targets = saved[1];
    const auto* model = reinterpret_cast<const LlamaModel*>(ctx->saved_data["model"].toInt());
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const torch::Tensor grad = grad_outputs[0];
    torch::Tensor grad_hidden = torch::zeros_like(hidden);
    torch::AutoGradMode enable_grad(true);
    const int64_t rows = hidden.size(0);
    for (int64_t begin = 0; begin < rows; begin += chunk) {
      const int64_t end = std::min(rows, begin + chunk);
      torch::Tensor h = hidden.slice(0, begin, end).detach().requires_grad_(true);
      torch::Tensor lp = ProjectLogprobs(*model, h, targets.slice(0, begin, end), temperature);
      torch::autograd::variable_list g = torch::autograd::grad({lp}, {h}, {grad.slice(0, begin, end)});
      grad_hidden.slice(0, begin, end).copy_(g[0]);
    }
    return {grad_hidden, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

absl::StatusOr<CompletionLogprobs> ComputeTokenLogprobs(const LlamaModel& model,
                                                       const std::vector<PromptCompletion>& samples,
                                                       const TokenLogprobsOptions& options) {
  if (samples.empty()) return absl::InvalidArgumentError("token logprobs: no samples");
  if (!(options.temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("token logprobs: temperature must be > 0, got ", options.temperature));
  }
  if (options.chunk_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("token logprobs: chunk_tokens must be > 0, got ", options.chunk_tokens));
  }
  const int64_t n = static_cast<int64_t>(samples.size());
  int64_t len = 0;
  int64_t tc = 0;
  for (int64_t i = 0; i < n; ++i) {
    const PromptCompletion& s = samples[static_cast<size_t>(i)];
    if (s.prompt.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("token logprobs: sample ", i, " has an empty prompt"));
    }
    len = std::max<int64_t>(len, static_cast<int64_t>(s.prompt.size() + s.completion.size()));
    tc = std::max<int64_t>(tc, static_cast<int64_t>(s.completion.size()));
  }

  // Right-padded batch; per row the positions of the hidden states that predict its completion
  // tokens (HiddenStatesAt: the model's last layer runs there only), padded with its last; and
  // for each completion token: its state's flat index in those, its id, its flat output position.
  std::vector<int64_t> ids(static_cast<size_t>(n * len), 0);
  std::vector<int64_t> attention(static_cast<size_t>(n * len), 0);
  std::vector<int64_t> at(static_cast<size_t>(n * tc), 0);
  std::vector<int64_t> source;
  std::vector<int64_t> targets;
  std::vector<int64_t> dest;
  for (int64_t i = 0; i < n; ++i) {
    const PromptCompletion& s = samples[static_cast<size_t>(i)];
    const int64_t p = static_cast<int64_t>(s.prompt.size());
    const int64_t c = static_cast<int64_t>(s.completion.size());
    for (int64_t j = 0; j < p + c; ++j) {
      ids[static_cast<size_t>(i * len + j)] = j < p ? s.prompt[static_cast<size_t>(j)] : s.completion[static_cast<size_t>(j - p)];
      attention[static_cast<size_t>(i * len + j)] = 1;
    }
    for (int64_t j = 0; j < tc; ++j) at[static_cast<size_t>(i * tc + j)] = p - 1 + std::min(j, std::max<int64_t>(c - 1, 0));
    for (int64_t j = 0; j < c; ++j) {
      source.push_back(i * tc + j);
      targets.push_back(s.completion[static_cast<size_t>(j)]);
      dest.push_back(i * tc + j);
    }
  }

  const torch::Device device = model.device();
  const auto long_cpu = torch::TensorOptions().dtype(torch::kLong);
  const auto float_opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  auto to_tensor = [&](std::vector<int64_t>& v, std::vector<int64_t> shape) {
    return torch::from_blob(v.data(), shape, long_cpu).clone().to(device);
  };
  const int64_t m = static_cast<int64_t>(targets.size());
  CompletionLogprobs out;
  if (m == 0) {
    out.logprobs = torch::zeros({n, tc}, float_opts);
    out.mask = torch::zeros({n, tc}, float_opts);
    return out;
  }

  std::optional<torch::NoGradGuard> no_grad;
  if (options.adapter < 0) no_grad.emplace();
  try {
    const torch::Tensor ids_t = to_tensor(ids, {n, len});
    const torch::Tensor attention_t = to_tensor(attention, {n, len});
    const torch::Tensor at_t = to_tensor(at, {n, tc});
    const torch::Tensor source_t = to_tensor(source, {m});
    const torch::Tensor targets_t = to_tensor(targets, {m});
    const torch::Tensor dest_t = to_tensor(dest, {m});
    const std::vector<int> adapters(static_cast<size_t>(n), options.adapter);
    ForwardOptions forward;
    forward.training = options.training;
    absl::StatusOr<torch::Tensor> hidden = model.HiddenStatesAt(ids_t, attention_t, at_t, adapters, forward);
    if (!hidden.ok()) {
      return absl::Status(hidden.status().code(), absl::StrCat("token logprobs: ", hidden.status().message()));
    }
    const torch::Tensor picked = hidden->reshape({n * tc, hidden->size(-1)}).index_select(0, source_t);  // [M, H]
    torch::Tensor values;
    if (torch::GradMode::is_enabled() && picked.requires_grad()) {
      values = CheckpointedProjection::apply(picked, targets_t, &model, options.temperature, options.chunk_tokens);
    } else {
      values = ProjectInChunks(model, picked, targets_t, options.temperature, options.chunk_tokens);
    }
    out.logprobs = torch::zeros({n * tc}, float_opts).index_copy(0, dest_t, values).view({n, tc});
    out.mask = torch::zeros({n * tc}, float_opts).index_fill_(0, dest_t, 1.0).view({n, tc});
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("token logprobs: ", e.what_without_backtrace()));
  }
}

}  // namespace dsm
