#include "services/learner/learner_metrics.h"

#include <string>
#include <vector>

namespace dsm {

absl::StatusOr<std::unique_ptr<LearnerMetrics>> LearnerMetrics::Create(MetricsRegistry& registry) {
  const std::vector<std::string> role_label = {"role"};
  auto steps = registry.AddCounter("dsm_learner_steps_total", "Optimizer steps taken.", role_label);
  auto loss = registry.AddGauge("dsm_learner_loss", "Loss of the last optimizer step.", role_label);
  auto kl = registry.AddGauge("dsm_learner_kl", "Mean k3 KL to the base model in the last step.", role_label);
  auto clip = registry.AddGauge("dsm_learner_clip_fraction",
                                "Fraction of tokens whose importance ratio was clipped in the last step.",
                                role_label);
  auto reward_mean =
      registry.AddGauge("dsm_learner_reward_mean", "Mean reward of the groups of the last step.", role_label);
  auto reward_std = registry.AddGauge("dsm_learner_reward_std",
                                      "Mean within-group reward standard deviation of the last step.", role_label);
  auto grad_norm =
      registry.AddGauge("dsm_learner_grad_norm", "Gradient L2 norm before clipping, last step.", role_label);
  auto tokens = registry.AddCounter("dsm_learner_tokens_total", "Completion tokens trained on.", role_label);
  // Steps of the tiny CPU model take ~10 ms, a 7B model on a T4 tens of
  // seconds: 5 ms .. ~80 s in powers of two.
  auto step_seconds = registry.AddHistogram("dsm_learner_step_seconds", "Wall time of one optimizer step.",
                                            role_label, ExponentialBuckets(0.005, 2, 15));
  // Versions behind: 0 is the on-policy case; max_policy_lag is small (single
  // digits), so unit buckets up to 8 then a few wider ones.
  auto policy_lag = registry.AddHistogram("dsm_learner_policy_lag",
                                          "Adapter versions between an accepted sample's and the current one.",
                                          role_label, {0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32});
  auto dropped = registry.AddCounter("dsm_learner_dropped_samples_total",
                                     "Samples dropped before training, by reason.", {"reason"});
  auto groups = registry.AddCounter("dsm_learner_groups_total", "Submitted groups, by ack result.", {"result"});
  auto bytes = registry.AddCounter("dsm_adapter_bytes_sent_total",
                                   "Adapter tensor bytes sent to WatchAdapters subscribers.");
  auto version = registry.AddGauge("dsm_adapter_version", "Newest published adapter version.", role_label);
  auto versions_sent = registry.AddCounter(
      "dsm_adapter_versions_sent_total",
      "Adapter versions sent to subscribers, by path: bulk (the bulk endpoint) or in_band (WatchAdapters chunks).",
      {"path"});
  for (const absl::Status& s :
       {steps.status(), loss.status(), kl.status(), clip.status(), reward_mean.status(), reward_std.status(),
        grad_norm.status(), tokens.status(), step_seconds.status(), policy_lag.status(), dropped.status(),
        groups.status(), bytes.status(), version.status(), versions_sent.status()}) {
    if (!s.ok()) return s;
  }
  std::unique_ptr<LearnerMetrics> m(new LearnerMetrics());
  for (v1::AdapterRole role :
       {v1::ADAPTER_ROLE_GENERATOR, v1::ADAPTER_ROLE_VERIFIER, v1::ADAPTER_ROLE_META_VERIFIER}) {
    const std::vector<absl::string_view> l = {AdapterRoleName(role)};
    RoleHandles& h = m->roles_[role];
    h.steps = &(*steps)->WithLabels(l);
    h.loss = &(*loss)->WithLabels(l);
    h.kl = &(*kl)->WithLabels(l);
    h.clip_fraction = &(*clip)->WithLabels(l);
    h.reward_mean = &(*reward_mean)->WithLabels(l);
    h.reward_std = &(*reward_std)->WithLabels(l);
    h.grad_norm = &(*grad_norm)->WithLabels(l);
    h.tokens = &(*tokens)->WithLabels(l);
    h.step_seconds = &(*step_seconds)->WithLabels(l);
    h.policy_lag = &(*policy_lag)->WithLabels(l);
    h.adapter_version = &(*version)->WithLabels(l);
  }
  const std::vector<std::pair<v1::GroupStatus, const char*>> results = {
      {v1::GROUP_STATUS_ACCEPTED, "accepted"},
      {v1::GROUP_STATUS_DUPLICATE, "duplicate"},
      {v1::GROUP_STATUS_DROPPED_STALE, "dropped_stale"},
      {v1::GROUP_STATUS_DROPPED_NO_VARIANCE, "dropped_no_variance"},
      {v1::GROUP_STATUS_REJECTED, "rejected"}};
  for (const auto& [status, name] : results) {
    m->groups_[status] = &(*groups)->WithLabels({name});
  }
  m->dropped_stale_ = &(*dropped)->WithLabels({"stale"});
  m->dropped_no_variance_ = &(*dropped)->WithLabels({"no_variance"});
  m->adapter_bytes_sent_ = &(*bytes)->Default();
  m->versions_sent_bulk_ = &(*versions_sent)->WithLabels({"bulk"});
  m->versions_sent_in_band_ = &(*versions_sent)->WithLabels({"in_band"});
  return m;
}

const LearnerMetrics::RoleHandles* LearnerMetrics::Role(v1::AdapterRole role) const {
  auto it = roles_.find(role);
  return it == roles_.end() ? nullptr : &it->second;
}

void LearnerMetrics::RecordStep(v1::AdapterRole role, const StepRecord& step) {
  const RoleHandles* h = Role(role);
  if (h == nullptr) return;
  h->steps->Increment();
  h->loss->Set(step.loss);
  h->kl->Set(step.kl);
  h->clip_fraction->Set(step.clip_fraction);
  h->reward_mean->Set(step.reward_mean);
  h->reward_std->Set(step.reward_std);
  h->grad_norm->Set(step.grad_norm);
  h->tokens->Increment(static_cast<double>(step.tokens));
  h->step_seconds->Observe(step.seconds);
}

void LearnerMetrics::RecordGroup(v1::GroupStatus status) {
  auto it = groups_.find(status);
  if (it != groups_.end()) it->second->Increment();
}

void LearnerMetrics::RecordDroppedSamples(v1::GroupStatus reason, int64_t samples) {
  if (samples <= 0) return;
  if (reason == v1::GROUP_STATUS_DROPPED_STALE) dropped_stale_->Increment(static_cast<double>(samples));
  if (reason == v1::GROUP_STATUS_DROPPED_NO_VARIANCE) {
    dropped_no_variance_->Increment(static_cast<double>(samples));
  }
}

void LearnerMetrics::RecordPolicyLag(v1::AdapterRole role, double versions) {
  if (const RoleHandles* h = Role(role)) h->policy_lag->Observe(versions);
}

void LearnerMetrics::RecordAdapterPublished(v1::AdapterRole role, uint64_t version) {
  if (const RoleHandles* h = Role(role)) h->adapter_version->Set(static_cast<double>(version));
}

void LearnerMetrics::RecordAdapterVersionSent(uint64_t bytes, bool bulk) {
  adapter_bytes_sent_->Increment(static_cast<double>(bytes));
  (bulk ? versions_sent_bulk_ : versions_sent_in_band_)->Increment();
}

}  // namespace dsm
