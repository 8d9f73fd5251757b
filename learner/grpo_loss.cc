#include "learner/grpo_loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dsm {
namespace {

std::string Shape(const torch::Tensor& t) { return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]"); }

// Checks that `t` is a defined floating [N, T] tensor, finite where `mask` is set.
absl::Status CheckPerToken(const torch::Tensor& t, const char* name, const torch::Tensor& mask) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat("GRPO loss: ", name, " is missing"));
  if (t.sizes() != mask.sizes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GRPO loss: ", name, " has shape ", Shape(t), ", expected ", Shape(mask), " (the mask's)"));
  }
  if (!t.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat("GRPO loss: ", name, " must be floating point"));
  }
  torch::NoGradGuard no_grad;
  if (!t.isfinite().logical_or(mask.to(t.device()).logical_not()).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat("GRPO loss: ", name, " has NaN or infinite values at completion tokens"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status GrpoOptions::Validate() const {
  if (!(epsilon_low >= 0 && epsilon_low < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("grpo.epsilon_low must be in [0, 1), got ", epsilon_low));
  }
  if (!(epsilon_high >= 0) || !std::isfinite(epsilon_high)) {
    return absl::InvalidArgumentError(absl::StrCat("grpo.epsilon_high must be >= 0, got ", epsilon_high));
  }
  if (!(kl_beta >= 0) || !std::isfinite(kl_beta)) {
    return absl::InvalidArgumentError(absl::StrCat("grpo.kl_beta must be >= 0, got ", kl_beta));
  }
  if (max_completion_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("grpo.max_completion_tokens must be > 0, got ", max_completion_tokens));
  }
  if (!(advantage_epsilon >= 0) || !std::isfinite(advantage_epsilon)) {
    return absl::InvalidArgumentError(absl::StrCat("grpo.advantage_epsilon must be >= 0, got ", advantage_epsilon));
  }
  return absl::OkStatus();
}

GroupAdvantages ComputeGroupAdvantages(const std::vector<double>& rewards, const GrpoOptions& options) {
  GroupAdvantages out;
  out.advantages.assign(rewards.size(), 0.0);
  if (rewards.empty()) {
    out.degenerate = true;
    return out;
  }
  const auto [lo, hi] = std::minmax_element(rewards.begin(), rewards.end());
  if (*hi - *lo <= kDegenerateRewardSpread) {
    out.degenerate = true;
    return out;
  }
  const double n = static_cast<double>(rewards.size());
  const double mean = std::accumulate(rewards.begin(), rewards.end(), 0.0) / n;
  double scale = 1.0;
  if (options.scale_rewards) {
    double ss = 0;
    for (double r : rewards) ss += (r - mean) * (r - mean);
    scale = std::sqrt(ss / (n - 1)) + options.advantage_epsilon;  // n >= 2: a lone sample is degenerate
  }
  for (size_t i = 0; i < rewards.size(); ++i) out.advantages[i] = (rewards[i] - mean) / scale;
  return out;
}

BatchAdvantages ComputeBatchAdvantages(const std::vector<std::vector<double>>& group_rewards,
                                       const GrpoOptions& options) {
  BatchAdvantages out;
  int64_t offset = 0;
  for (const std::vector<double>& rewards : group_rewards) {
    ++out.groups;
    GroupAdvantages group = ComputeGroupAdvantages(rewards, options);
    const int64_t size = static_cast<int64_t>(rewards.size());
    if (group.degenerate) ++out.degenerate_groups;
    if (group.degenerate && options.dynamic_sampling) {
      ++out.dropped_groups;
      out.dropped_samples += size;
    } else {
      for (int64_t i = 0; i < size; ++i) {
        out.kept.push_back(offset + i);
        out.advantages.push_back(group.advantages[static_cast<size_t>(i)]);
      }
    }
    offset += size;
  }
  return out;
}

absl::StatusOr<GrpoLoss> ComputeGrpoLoss(const GrpoInputs& inputs, const GrpoOptions& options) {
  if (absl::Status ok = options.Validate(); !ok.ok()) return ok;
  if (!inputs.mask.defined() || inputs.mask.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GRPO loss: mask must be a [N, T] tensor, got ", inputs.mask.defined() ? Shape(inputs.mask) : "none"));
  }
  if (!inputs.logprobs.defined()) return absl::InvalidArgumentError("GRPO loss: logprobs is missing");
  const torch::Device device = inputs.logprobs.device();
  const torch::Tensor mask = inputs.mask.detach().to(device, torch::kBool);
  const int64_t n = mask.size(0);
  const bool use_behaviour = options.importance_correction;
  const bool use_reference = inputs.reference_logprobs.defined();
  if (absl::Status ok = CheckPerToken(inputs.logprobs, "logprobs", mask); !ok.ok()) return ok;
  if (use_behaviour) {
    if (absl::Status ok = CheckPerToken(inputs.behaviour_logprobs, "behaviour_logprobs", mask); !ok.ok()) return ok;
  }
  if (options.kl_beta > 0 && !use_reference) {
    return absl::InvalidArgumentError("GRPO loss: reference_logprobs is missing (kl_beta > 0)");
  }
  if (use_reference) {
    if (absl::Status ok = CheckPerToken(inputs.reference_logprobs, "reference_logprobs", mask); !ok.ok()) return ok;
  }
  const torch::Tensor& adv_in = inputs.advantages;
  if (!adv_in.defined() || adv_in.dim() != 1 || adv_in.size(0) != n || !adv_in.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat("GRPO loss: advantages must be a floating [", n, "] tensor, got ",
                                                   adv_in.defined() ? Shape(adv_in) : "none"));
  }
  const torch::Tensor row_tokens = mask.sum(1).to(torch::kCPU);  // int64 [N]
  const int64_t tokens = row_tokens.sum().item<int64_t>();
  const int64_t longest = n == 0 ? 0 : row_tokens.max().item<int64_t>();
  {
    torch::NoGradGuard no_grad;
    if (!adv_in.isfinite().all().item<bool>()) {
      return absl::InvalidArgumentError("GRPO loss: advantages has NaN or infinite values");
    }
  }
  if (inputs.step_samples < 0 || (inputs.step_samples > 0 && inputs.step_samples < n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GRPO loss: step_samples ", inputs.step_samples, " is below this micro-batch's ", n, " samples"));
  }
  if (inputs.step_tokens < 0 || (inputs.step_tokens > 0 && inputs.step_tokens < tokens)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GRPO loss: step_tokens ", inputs.step_tokens, " is below this micro-batch's ", tokens, " tokens"));
  }
  if (options.aggregation == LossAggregation::kConstantNorm && longest > options.max_completion_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("GRPO loss: a sample has ", longest,
                                                   " completion tokens, more than max_completion_tokens ",
                                                   options.max_completion_tokens));
  }

  try {
    // Everything in float64: [N, T] element-wise work is cheap, and clip
    // decisions then do not depend on float32 rounding of the ratio.
    const auto f64 = torch::TensorOptions().dtype(torch::kDouble).device(device);
    const torch::Tensor m = mask.to(f64);
    const torch::Tensor zero = torch::zeros({}, f64);
    // Padding may hold anything: replace it before any arithmetic so that no
    // NaN reaches the loss or its gradient.
    const torch::Tensor logp = torch::where(mask, inputs.logprobs.to(torch::kDouble), zero);
    const torch::Tensor old_logp = use_behaviour
                                       ? torch::where(mask, inputs.behaviour_logprobs.detach().to(f64), zero)
                                       : logp.detach();
    const torch::Tensor adv = adv_in.detach().to(f64).unsqueeze(1);  // [N, 1]

    const torch::Tensor ratio = torch::exp(logp - old_logp);
    const torch::Tensor clipped_ratio = ratio.clamp(1.0 - options.epsilon_low, 1.0 + options.epsilon_high);
    const torch::Tensor clipped = mask.logical_and(
        (adv > 0).logical_and(ratio > 1.0 + options.epsilon_high)
            .logical_or((adv < 0).logical_and(ratio < 1.0 - options.epsilon_low)));
    // min(ρÂ, clip(ρ)Â): the clipped branch exactly where `clipped` says
    // (elsewhere the two are equal or the unclipped one is smaller).
    torch::Tensor objective = torch::where(clipped, (clipped_ratio * adv).detach(), ratio * adv);

    torch::Tensor kl;
    if (use_reference) {
      const torch::Tensor ref = torch::where(mask, inputs.reference_logprobs.detach().to(f64), zero);
      const torch::Tensor d = ref - logp;
      kl = torch::exp(d) - d - 1.0;
      if (options.kl_beta > 0) objective = objective - options.kl_beta * kl;
    }
    objective = objective * m;

    const double samples = static_cast<double>(inputs.step_samples > 0 ? inputs.step_samples : n);
    torch::Tensor total;
    switch (options.aggregation) {
      case LossAggregation::kSequenceMean: {
        const torch::Tensor per_sample = objective.sum(1) / m.sum(1).clamp_min(1.0);
        total = per_sample.sum() / std::max(samples, 1.0);
        break;
      }
      case LossAggregation::kTokenMean: {
        const double k = static_cast<double>(inputs.step_tokens > 0 ? inputs.step_tokens : tokens);
        total = objective.sum() / std::max(k, 1.0);
        break;
      }
      case LossAggregation::kConstantNorm:
        total = objective.sum() / (std::max(samples, 1.0) * static_cast<double>(options.max_completion_tokens));
        break;
    }

    GrpoLoss out;
    out.loss = (-total).to(torch::kFloat);
    out.tokens = tokens;
    torch::NoGradGuard no_grad;
    out.clipped_tokens = clipped.sum().item<int64_t>();
    if (tokens > 0) {
      const double denom = static_cast<double>(tokens);
      out.clip_fraction = static_cast<double>(out.clipped_tokens) / denom;
      out.ratio_mean = (ratio * m).sum().item<double>() / denom;
      if (use_reference) out.kl = (kl * m).sum().item<double>() / denom;
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("GRPO loss: ", e.what_without_backtrace()));
  }
}

}  // namespace dsm
