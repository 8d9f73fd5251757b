#include "services/learner/learner_core.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/adapter_roles.h"
#include "learner/checkpoint.h"
#include "services/learner/published_version.h"
#include "spdlog/spdlog.h"

namespace dsm {
namespace {

constexpr char kCursorPrefix[] = "accept_sequence=";

bool IsTrainableRole(v1::AdapterRole role) {
  return role == v1::ADAPTER_ROLE_GENERATOR || role == v1::ADAPTER_ROLE_VERIFIER ||
         role == v1::ADAPTER_ROLE_META_VERIFIER;
}

std::string RoleEnumName(v1::AdapterRole role) { return v1::AdapterRole_Name(role); }

// Mean and unbiased standard deviation.
std::pair<double, double> MeanStd(const std::vector<double>& v) {
  if (v.empty()) return {0, 0};
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  if (v.size() < 2) return {mean, 0};
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return {mean, std::sqrt(ss / static_cast<double>(v.size() - 1))};
}

}  // namespace

absl::Status LearnerOptions::Validate() const {
  if (roles.empty()) return absl::InvalidArgumentError("learner.roles: at least one role is required");
  std::set<v1::AdapterRole> seen;
  for (v1::AdapterRole r : roles) {
    if (!IsTrainableRole(r)) {
      return absl::InvalidArgumentError(
          absl::StrCat("learner.roles: ", RoleEnumName(r), " is not GENERATOR, VERIFIER or META_VERIFIER"));
    }
    if (!seen.insert(r).second) {
      return absl::InvalidArgumentError(absl::StrCat("learner.roles: ", RoleEnumName(r), " listed twice"));
    }
  }
  if (max_buffered_groups < 1 || max_buffered_groups > 1000000) {
    return absl::InvalidArgumentError(
        absl::StrCat("learner.max_buffered_groups: ", max_buffered_groups, " not in [1, 1000000]"));
  }
  if (groups_per_step < 1 || groups_per_step > max_buffered_groups) {
    return absl::InvalidArgumentError(absl::StrCat("learner.groups_per_step: ", groups_per_step,
                                                   " not in [1, max_buffered_groups ", max_buffered_groups, "]"));
  }
  if (max_prompt_tokens < 1) return absl::InvalidArgumentError("learner.max_prompt_tokens: must be >= 1");
  if (max_completion_tokens < 1) return absl::InvalidArgumentError("learner.max_completion_tokens: must be >= 1");
  if (max_n < 2) return absl::InvalidArgumentError(absl::StrCat("learner.max_n: ", max_n, " < 2"));
  if (max_id_bytes < 1) return absl::InvalidArgumentError("learner.max_id_bytes: must be >= 1");
  if (absl::Status s = lora.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("learner.lora: ", s.message()));
  }
  if (absl::Status s = trainer.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("learner.trainer: ", s.message()));
  }
  return absl::OkStatus();
}

LearnerCore::LearnerCore(LlamaModel* model, LearnerOptions options, AdapterPublisher* publisher,
                         LearnerMetrics* metrics)
    : model_(model), options_(std::move(options)), publisher_(publisher), metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<LearnerCore>> LearnerCore::Create(LlamaModel* model, LearnerOptions options,
                                                                 AdapterPublisher* publisher,
                                                                 LearnerMetrics* metrics) {
  if (model == nullptr || publisher == nullptr || metrics == nullptr) {
    return absl::InvalidArgumentError("LearnerCore::Create: model, publisher and metrics are required");
  }
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  std::unique_ptr<LearnerCore> core(new LearnerCore(model, std::move(options), publisher, metrics));
  if (absl::Status s = core->Init(); !s.ok()) return s;
  core->thread_ = std::thread([c = core.get()] { c->Loop(); });
  return core;
}

absl::StatusOr<std::unique_ptr<Trainer>> LearnerCore::NewTrainer(RoleState& role, bool resume) {
  TrainerOptions t = options_.trainer;
  if (!t.checkpoint_dir.empty()) t.checkpoint_dir = absl::StrCat(t.checkpoint_dir, "/", role.name);
  t.resume = t.resume && resume;
  auto trainer = Trainer::Create(model_, role.adapter_index, t);
  if (!trainer.ok()) {
    return absl::Status(trainer.status().code(),
                        absl::StrCat("creating the ", role.name, " trainer: ", trainer.status().message()));
  }
  return trainer;
}

absl::Status LearnerCore::Init() {
  absl::MutexLock lock(&mu_);
  paused_ = options_.start_paused;
  uint64_t i = 0;
  for (v1::AdapterRole r : options_.roles) {
    RoleState& role = roles_[r];
    role.role = r;
    role.name = AdapterRoleName(r);
    auto adapter = LoraAdapter::Create(model_->config(), options_.lora, options_.seed + i++, model_->dtype(),
                                       model_->device());
    if (!adapter.ok()) {
      return absl::Status(adapter.status().code(),
                          absl::StrCat("creating the ", role.name, " adapter: ", adapter.status().message()));
    }
    auto index = model_->AddAdapter(role.name, std::shared_ptr<LoraAdapter>(*std::move(adapter)));
    if (!index.ok()) return index.status();
    role.adapter_index = *index;
    auto trainer = NewTrainer(role, /*resume=*/true);
    if (!trainer.ok()) return trainer.status();
    role.trainer = *std::move(trainer);
    role.version = static_cast<uint64_t>(role.trainer->adapter_version());
    role.steps = static_cast<uint64_t>(role.trainer->step());
    total_steps_ += role.steps;
    const std::string& cursor = role.trainer->data_cursor();
    uint64_t seq = 0;
    if (absl::StartsWith(cursor, kCursorPrefix) &&
        absl::SimpleAtoi(absl::string_view(cursor).substr(sizeof(kCursorPrefix) - 1), &seq)) {
      accept_sequence_ = std::max(accept_sequence_, seq);
      checkpointed_sequence_ = std::max(checkpointed_sequence_, seq);
    }
    // A learner killed between two checkpoints published versions past the
    // checkpoint's: publish the resumed adapter above all of them.
    const std::string version_dir = PublishedVersionDir(role);
    if (!version_dir.empty()) {
      auto published = ReadPublishedVersion(version_dir);
      if (!published.ok()) return published.status();
      if (*published > role.version) {
        spdlog::info("learner: {} resumed at version {} but had published {}: publishing it as {}", role.name,
                     role.version, *published, *published + 1);
        role.version = *published + 1;
        role.trainer->SetAdapterVersion(static_cast<int64_t>(role.version));
      }
    }
    if (role.version > 0) {
      auto snapshot = role.trainer->SnapshotAdapter();
      if (absl::Status s = Publish(&role, *snapshot, role.version, role.steps); !s.ok()) return s;
      role.published = role.version;
      spdlog::info("learner: {} resumed from {} at version {}", role.name, role.trainer->resumed_from(),
                   role.version);
    }
  }
  return absl::OkStatus();
}

LearnerCore::~LearnerCore() { Stop(); }

void LearnerCore::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

LearnerCore::RoleState* LearnerCore::FindRole(v1::AdapterRole role) {
  auto it = roles_.find(role);
  return it == roles_.end() ? nullptr : &it->second;
}

const LearnerCore::RoleState* LearnerCore::FindRole(v1::AdapterRole role) const {
  auto it = roles_.find(role);
  return it == roles_.end() ? nullptr : &it->second;
}

absl::Status LearnerCore::ValidateGroup(const v1::ScoredGroup& g) const {
  const int64_t vocab = model_->config().vocab_size;
  const int64_t context = model_->config().max_position_embeddings;
  if (g.source().size() > options_.max_id_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("group.source: ", g.source().size(), " bytes > max_id_bytes ", options_.max_id_bytes));
  }
  if (!IsTrainableRole(g.role())) {
    return absl::InvalidArgumentError(
        absl::StrCat("group.role: ", RoleEnumName(g.role()), " is not GENERATOR, VERIFIER or META_VERIFIER"));
  }
  if (roles_.count(g.role()) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("group.role: ", RoleEnumName(g.role()), " is not trained by this learner"));
  }
  if (!v1::Objective_IsValid(g.objective())) {
    return absl::InvalidArgumentError(absl::StrCat("group.objective: unknown value ", g.objective()));
  }
  const bool sft = g.objective() == v1::OBJECTIVE_SFT;
  if (g.prompt_token_ids_size() < 1 || static_cast<uint32_t>(g.prompt_token_ids_size()) > options_.max_prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("group.prompt_token_ids: ", g.prompt_token_ids_size(),
                                                   " tokens not in [1, max_prompt_tokens ",
                                                   options_.max_prompt_tokens, "]"));
  }
  for (int j = 0; j < g.prompt_token_ids_size(); ++j) {
    const int32_t id = g.prompt_token_ids(j);
    if (id < 0 || id >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("group.prompt_token_ids[", j, "]: ", id, " not in [0, vocab_size ", vocab, ")"));
    }
  }
  const int min_n = sft ? 1 : 2;
  if (g.samples_size() < min_n || static_cast<uint32_t>(g.samples_size()) > options_.max_n) {
    return absl::InvalidArgumentError(absl::StrCat("group.samples: ", g.samples_size(), " samples not in [", min_n,
                                                   ", max_n ", options_.max_n, "]"));
  }
  if (!sft && g.has_logprob_temperature()) {
    const double t = g.logprob_temperature() == 0 ? 1.0 : g.logprob_temperature();
    if (std::abs(t - options_.trainer.temperature) > 1e-6) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "group.logprob_temperature: %g differs from the learner's temperature %g", t, options_.trainer.temperature));
    }
  }
  for (int i = 0; i < g.samples_size(); ++i) {
    const v1::ScoredSample& s = g.samples(i);
    const std::string field = absl::StrCat("group.samples[", i, "]");
    const int n = s.completion_token_ids_size();
    if (n < 1 || static_cast<uint32_t>(n) > options_.max_completion_tokens) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".completion_token_ids: ", n,
                                                     " tokens not in [1, max_completion_tokens ",
                                                     options_.max_completion_tokens, "]"));
    }
    if (g.prompt_token_ids_size() + n > context) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": prompt + completion = ", g.prompt_token_ids_size() + n,
                                                     " tokens > context_length ", context));
    }
    for (int j = 0; j < n; ++j) {
      const int32_t id = s.completion_token_ids(j);
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".completion_token_ids[", j, "]: ", id, " not in [0, vocab_size ", vocab, ")"));
      }
    }
    if (!sft) {
      if (s.behaviour_logprobs_size() != n) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".behaviour_logprobs: ", s.behaviour_logprobs_size(),
                                                       " entries != ", n, " completion tokens"));
      }
      for (int j = 0; j < n; ++j) {
        const float lp = s.behaviour_logprobs(j);
        if (!std::isfinite(lp) || lp > 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(field, ".behaviour_logprobs[", j, "]: ", lp, " is not a finite value <= 0"));
        }
      }
      if (!std::isfinite(s.reward())) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".reward: ", s.reward(), " is not finite"));
      }
    }
    if (s.loss_mask_size() > 0) {
      if (s.loss_mask_size() != n) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".loss_mask: ", s.loss_mask_size(), " entries != ", n, " completion tokens"));
      }
      int on = 0;
      for (bool b : s.loss_mask()) on += b ? 1 : 0;
      if (on == 0) return absl::InvalidArgumentError(absl::StrCat(field, ".loss_mask: no token is true"));
      if (on != n) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".loss_mask: partial masks are not supported by this learner yet"));
      }
    }
  }
  return absl::OkStatus();
}

v1::GroupAck LearnerCore::Finish(const v1::ScoredGroup& group, v1::GroupStatus status, std::string message,
                                 uint64_t accept_sequence) {
  v1::GroupAck ack;
  ack.set_group_id(group.group_id());
  ack.set_status(status);
  ack.set_message(std::move(message));
  ack.set_accept_sequence(accept_sequence);
  ack.set_learner_step(total_steps_);
  switch (status) {
    case v1::GROUP_STATUS_ACCEPTED:
      ++counters_.accepted;
      break;
    case v1::GROUP_STATUS_DUPLICATE:
      ++counters_.duplicate;
      break;
    case v1::GROUP_STATUS_DROPPED_STALE:
      ++counters_.dropped_stale;
      counters_.samples_dropped_stale += static_cast<uint64_t>(group.samples_size());
      break;
    case v1::GROUP_STATUS_DROPPED_NO_VARIANCE:
      ++counters_.dropped_no_variance;
      counters_.samples_dropped_no_variance += static_cast<uint64_t>(group.samples_size());
      break;
    default:
      ++counters_.rejected;
      break;
  }
  metrics_->RecordGroup(status);
  if (status == v1::GROUP_STATUS_DROPPED_STALE || status == v1::GROUP_STATUS_DROPPED_NO_VARIANCE) {
    metrics_->RecordDroppedSamples(status, group.samples_size());
  }
  return ack;
}

v1::GroupAck LearnerCore::RejectWithoutCredit(const v1::ScoredGroup& group) {
  absl::MutexLock lock(&mu_);
  return Finish(group, v1::GROUP_STATUS_REJECTED, "sent without credit (the client's credit balance was 0)", 0);
}

v1::GroupAck LearnerCore::Submit(const v1::ScoredGroup& group) {
  absl::MutexLock lock(&mu_);
  if (outstanding_credits_ > 0) --outstanding_credits_;
  if (group.group_id().empty()) {
    return Finish(group, v1::GROUP_STATUS_REJECTED, "group.group_id: empty", 0);
  }
  if (group.group_id().size() > options_.max_id_bytes) {
    return Finish(group, v1::GROUP_STATUS_REJECTED,
                  absl::StrCat("group.group_id: ", group.group_id().size(), " bytes > max_id_bytes ",
                               options_.max_id_bytes),
                  0);
  }
  if (accepted_ids_.contains(group.group_id())) {
    return Finish(group, v1::GROUP_STATUS_DUPLICATE, "", 0);
  }
  if (absl::Status s = ValidateGroup(group); !s.ok()) {
    return Finish(group, v1::GROUP_STATUS_REJECTED, std::string(s.message()), 0);
  }
  RoleState* role = FindRole(group.role());
  const bool sft = group.objective() == v1::OBJECTIVE_SFT;
  PendingGroup pending;
  pending.group_id = group.group_id();
  pending.objective = sft ? Objective::kSft : Objective::kGrpo;
  std::vector<double> rewards;
  for (int i = 0; i < group.samples_size(); ++i) {
    const v1::ScoredSample& s = group.samples(i);
    if (!sft && s.adapter_version() + options_.max_policy_lag < role->version) {
      return Finish(group, v1::GROUP_STATUS_DROPPED_STALE,
                    absl::StrCat("group.samples[", i, "].adapter_version: ", s.adapter_version(),
                                 " is more than max_policy_lag ", options_.max_policy_lag,
                                 " versions older than the current version ", role->version),
                    0);
    }
    rewards.push_back(s.reward());
  }
  GroupAdvantages advantages;
  if (!sft) {
    advantages = ComputeGroupAdvantages(rewards, options_.trainer.grpo);
    if (advantages.degenerate && options_.trainer.grpo.dynamic_sampling) {
      return Finish(group, v1::GROUP_STATUS_DROPPED_NO_VARIANCE,
                    absl::StrCat("group.samples: every reward equals ", rewards.front(),
                                 " (no variance, dropped by dynamic sampling)"),
                    0);
    }
    std::tie(pending.reward_mean, pending.reward_std) = MeanStd(rewards);
  }
  for (int i = 0; i < group.samples_size(); ++i) {
    const v1::ScoredSample& s = group.samples(i);
    TrainingSample t;
    t.prompt_ids.assign(group.prompt_token_ids().begin(), group.prompt_token_ids().end());
    t.completion_ids.assign(s.completion_token_ids().begin(), s.completion_token_ids().end());
    if (!sft) {
      t.behaviour_logprobs.assign(s.behaviour_logprobs().begin(), s.behaviour_logprobs().end());
      t.advantage = advantages.advantages[static_cast<size_t>(i)];
      const double lag =
          s.adapter_version() >= role->version ? 0.0 : static_cast<double>(role->version - s.adapter_version());
      pending.lag_sum += lag;
      metrics_->RecordPolicyLag(role->role, lag);
    }
    pending.samples.push_back(std::move(t));
  }
  pending.accept_sequence = ++accept_sequence_;
  accepted_ids_.insert(group.group_id());
  counters_.samples_accepted += static_cast<uint64_t>(group.samples_size());
  ++buffered_;
  const uint64_t seq = pending.accept_sequence;
  role->queues[pending.objective].push_back(std::move(pending));
  return Finish(group, v1::GROUP_STATUS_ACCEPTED, "", seq);
}

uint32_t LearnerCore::GrantCredits(uint32_t wanted) {
  absl::MutexLock lock(&mu_);
  const uint32_t used = buffered_ + outstanding_credits_;
  const uint32_t room = used >= options_.max_buffered_groups ? 0 : options_.max_buffered_groups - used;
  const uint32_t granted = std::min(wanted, room);
  outstanding_credits_ += granted;
  return granted;
}

void LearnerCore::ReleaseCredits(uint32_t credits) {
  if (credits == 0) return;
  {
    absl::MutexLock lock(&mu_);
    outstanding_credits_ -= std::min(credits, outstanding_credits_);
  }
  NotifySpace();
}

int LearnerCore::AddSpaceListener(std::function<void()> on_space) {
  absl::MutexLock lock(&listeners_mu_);
  const int id = next_listener_id_++;
  listeners_[id] = std::move(on_space);
  return id;
}

void LearnerCore::RemoveSpaceListener(int id) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

void LearnerCore::NotifySpace() {
  absl::MutexLock lock(&listeners_mu_);
  for (auto& [id, fn] : listeners_) fn();
}

void LearnerCore::SetPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
}

uint64_t LearnerCore::adapter_version(v1::AdapterRole role) const {
  absl::MutexLock lock(&mu_);
  const RoleState* r = FindRole(role);
  return r == nullptr ? 0 : r->published;
}

LearnerSnapshot LearnerCore::State() const {
  absl::MutexLock lock(&mu_);
  LearnerSnapshot out;
  out.step = total_steps_;
  for (v1::AdapterRole r : options_.roles) {
    const RoleState& role = roles_.at(r);
    RoleSnapshot s;
    s.role = r;
    s.adapter_version = role.published;
    for (const auto& [objective, queue] : role.queues) s.buffered_groups += static_cast<uint32_t>(queue.size());
    s.optimizer_steps = role.steps;
    s.last_step = role.last_step;
    out.roles.push_back(std::move(s));
  }
  out.counters = counters_;
  out.max_policy_lag = options_.max_policy_lag;
  out.buffered_groups = buffered_;
  out.outstanding_credits = outstanding_credits_;
  out.accept_sequence = accept_sequence_;
  out.checkpointed_accept_sequence = checkpointed_sequence_;
  out.last_checkpoint_step = last_checkpoint_step_;
  out.last_checkpoint_path = last_checkpoint_path_;
  out.last_step_at = last_step_at_;
  out.world_size = options_.trainer.parallel.world_size;
  return out;
}

bool LearnerCore::HasWork() const {
  for (const auto& [r, role] : roles_) {
    for (const auto& [objective, queue] : role.queues) {
      if (queue.size() >= options_.groups_per_step) return true;
    }
  }
  return false;
}

uint64_t LearnerCore::DurableSequence() const {
  uint64_t first_pending = accept_sequence_ + 1;
  for (const auto& [r, role] : roles_) {
    for (const auto& [objective, queue] : role.queues) {
      for (const PendingGroup& g : queue) first_pending = std::min(first_pending, g.accept_sequence);
    }
  }
  return first_pending - 1;
}

void LearnerCore::Enqueue(Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      return;
    }
  }
  task(false);
}

void LearnerCore::Loop() {
  while (true) {
    Task task;
    RoleState* role = nullptr;
    Objective objective = Objective::kGrpo;
    std::vector<PendingGroup> groups;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty() || (!paused_ && HasWork());
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) break;
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      } else {
        for (auto& [r, state] : roles_) {
          for (auto& [obj, queue] : state.queues) {
            if (queue.size() < options_.groups_per_step) continue;
            for (uint32_t i = 0; i < options_.groups_per_step; ++i) {
              groups.push_back(std::move(queue.front()));
              queue.pop_front();
            }
            role = &state;
            objective = obj;
            break;
          }
          if (role != nullptr) break;
        }
      }
    }
    if (task) {
      task(true);
      continue;
    }
    if (role != nullptr) {
      const auto n = static_cast<uint32_t>(groups.size());
      TrainStep(role, objective, std::move(groups));
      {
        absl::MutexLock lock(&mu_);
        buffered_ -= n;  // the groups were held until trained
      }
      NotifySpace();
    }
  }
  std::deque<Task> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(tasks_);
  }
  for (Task& t : left) t(false);
}

void LearnerCore::TrainStep(RoleState* role, Objective objective, std::vector<PendingGroup> groups) {
  TrainingBatch batch;
  batch.objective = objective;
  double reward_mean = 0, reward_std = 0, lag_sum = 0;
  uint64_t max_seq = 0;
  for (PendingGroup& g : groups) {
    reward_mean += g.reward_mean;
    reward_std += g.reward_std;
    lag_sum += g.lag_sum;
    max_seq = std::max(max_seq, g.accept_sequence);
    for (TrainingSample& s : g.samples) batch.samples.push_back(std::move(s));
  }
  {
    absl::MutexLock lock(&mu_);
    // Groups are trained in acceptance order per role, not across roles: the
    // cursor is only advisory (the restart resumes the sequence from it).
    batch.data_cursor = absl::StrCat(kCursorPrefix, std::max(max_seq, DurableSequence()));
  }
  auto stats = role->trainer->Step(batch);
  if (!stats.ok()) {
    spdlog::error("learner: {} step failed, {} groups dropped: {}", role->name, groups.size(),
                  std::string(stats.status().message()));
    return;
  }
  RoleStepMetrics m;
  m.stats = *stats;
  m.groups = static_cast<uint32_t>(groups.size());
  m.reward_mean = reward_mean / static_cast<double>(groups.size());
  m.reward_std = reward_std / static_cast<double>(groups.size());
  m.policy_lag_mean = batch.samples.empty() ? 0 : lag_sum / static_cast<double>(batch.samples.size());
  m.finished_at = absl::Now();
  uint64_t version = 0, total_steps = 0;
  {
    absl::MutexLock lock(&mu_);
    version = ++role->version;
    ++role->steps;
    total_steps = ++total_steps_;
    role->last_step = m;
    last_step_at_ = m.finished_at;
    counters_.samples_trained += static_cast<uint64_t>(stats->samples);
    counters_.tokens_trained += static_cast<uint64_t>(stats->tokens);
    if (!stats->checkpoint.empty()) {
      last_checkpoint_path_ = stats->checkpoint;
      last_checkpoint_step_ = total_steps;
    }
  }
  spdlog::debug(
      "learner: {} step {} (version {}): {} groups, {} samples, {} tokens, reward {:.4f} (std {:.4f}), lag {:.2f}, "
      "loss {:.4g}, kl {:.4g}, clip {:.4f}, grad norm {:.4f}, lr {:.3g}",
      role->name, stats->step, version, m.groups, stats->samples, stats->tokens, m.reward_mean, m.reward_std,
      m.policy_lag_mean, stats->loss, stats->kl, stats->clip_fraction, stats->grad_norm, stats->learning_rate);
  metrics_->RecordStep(role->role, {stats->loss, stats->kl, stats->clip_fraction, m.reward_mean, m.reward_std,
                                    stats->grad_norm, stats->tokens, stats->seconds});
  auto snapshot = role->trainer->SnapshotAdapter();
  if (absl::Status s = Publish(role, *snapshot, version, total_steps); !s.ok()) {
    spdlog::error("learner: publishing {} version {}: {}", role->name, version, std::string(s.message()));
    return;
  }
  MarkPublished(role, version);
}

void LearnerCore::MarkPublished(RoleState* role, uint64_t version) {
  absl::MutexLock lock(&mu_);
  role->published = std::max(role->published, version);
}

std::string LearnerCore::PublishedVersionDir(const RoleState& role) const {
  if (options_.trainer.checkpoint_dir.empty() || options_.trainer.parallel.rank != 0) return "";
  return absl::StrCat(options_.trainer.checkpoint_dir, "/", role.name);
}

absl::Status LearnerCore::Publish(RoleState* role, const LoraAdapter& adapter, uint64_t version, uint64_t step) {
  // Recorded before any sampler can hold it (see published_version.h).
  if (const std::string dir = PublishedVersionDir(*role); !dir.empty()) {
    if (absl::Status s = WritePublishedVersion(dir, version); !s.ok()) return s;
  }
  AdapterVersionData data;
  data.role = role->role;
  data.version = version;
  data.learner_step = step;
  data.adapter_config_json = LoraConfigToJson(adapter.config());
  for (auto& [name, tensor] : adapter.NamedTensors()) data.tensors[name] = tensor.detach().to(torch::kCPU);
  data.published_at = absl::Now();
  absl::Status s = publisher_->Publish(data);
  if (s.ok()) metrics_->RecordAdapterPublished(role->role, version);
  return s;
}

void LearnerCore::CheckpointAsync(std::string path, std::function<void(absl::StatusOr<CheckpointResult>)> done) {
  Enqueue([this, path = std::move(path), done = std::move(done)](bool run) {
    if (!run) return done(absl::UnavailableError("the learner is shutting down"));
    done(DoCheckpoint(path));
  });
}

void LearnerCore::InitAdapterAsync(v1::AdapterRole role, AdapterSource source,
                                   std::function<void(absl::StatusOr<uint64_t>)> done) {
  Enqueue([this, role, source = std::move(source), done = std::move(done)](bool run) {
    if (!run) return done(absl::UnavailableError("the learner is shutting down"));
    done(DoInitAdapter(role, source));
  });
}

void LearnerCore::FlushAsync(v1::AdapterRole role, std::function<void(absl::StatusOr<FlushResult>)> done) {
  Enqueue([this, role, done = std::move(done)](bool run) {
    if (!run) return done(absl::UnavailableError("the learner is shutting down"));
    done(DoFlush(role));
  });
}

absl::StatusOr<FlushResult> LearnerCore::Flush(v1::AdapterRole role) {
  std::promise<absl::StatusOr<FlushResult>> promise;
  auto future = promise.get_future();
  FlushAsync(role, [&promise](absl::StatusOr<FlushResult> r) { promise.set_value(std::move(r)); });
  return future.get();
}

absl::StatusOr<FlushResult> LearnerCore::DoFlush(v1::AdapterRole r) {
  RoleState* role = nullptr;
  std::vector<std::pair<Objective, std::vector<PendingGroup>>> batches;
  {
    absl::MutexLock lock(&mu_);
    role = FindRole(r);
    if (role == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("role: ", RoleEnumName(r), " is not trained by this learner"));
    }
    bool buffered = false;
    for (const auto& [objective, queue] : role->queues) buffered |= !queue.empty();
    if (buffered && options_.trainer.parallel.world_size > 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("Flush: ", options_.trainer.parallel.world_size,
                       " learner ranks train only full batches (groups_per_step), so every rank steps together"));
    }
    for (auto& [objective, queue] : role->queues) {
      while (!queue.empty()) {
        std::vector<PendingGroup> groups;
        while (!queue.empty() && groups.size() < options_.groups_per_step) {
          groups.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        batches.emplace_back(objective, std::move(groups));
      }
    }
  }
  FlushResult result;
  for (auto& [objective, groups] : batches) {
    const auto n = static_cast<uint32_t>(groups.size());
    TrainStep(role, objective, std::move(groups));
    {
      absl::MutexLock lock(&mu_);
      buffered_ -= n;
    }
    ++result.steps;
    result.groups += n;
  }
  if (!batches.empty()) NotifySpace();
  // A flush ends a phase: its last adapter is kept on disk too, not only every
  // checkpoint_every_steps steps (dsm eval and a restarted learner start from it).
  if (const std::string root = PublishedVersionDir(*role); !root.empty() && role->trainer->step() > 0) {
    const auto written = ListCheckpoints(root);
    if (written.empty() || written.back().first != role->trainer->step()) {
      if (absl::StatusOr<std::string> saved = role->trainer->SaveCheckpoint(); !saved.ok()) {
        spdlog::warn("learner: {} checkpoint after Flush: {}", role->name, std::string(saved.status().message()));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  result.version = role->version;
  return result;
}

absl::StatusOr<CheckpointResult> LearnerCore::Checkpoint(std::string path) {
  std::promise<absl::StatusOr<CheckpointResult>> promise;
  auto future = promise.get_future();
  CheckpointAsync(std::move(path), [&promise](absl::StatusOr<CheckpointResult> r) { promise.set_value(std::move(r)); });
  return future.get();
}

absl::StatusOr<uint64_t> LearnerCore::InitAdapter(v1::AdapterRole role, AdapterSource source) {
  std::promise<absl::StatusOr<uint64_t>> promise;
  auto future = promise.get_future();
  InitAdapterAsync(role, std::move(source), [&promise](absl::StatusOr<uint64_t> r) { promise.set_value(std::move(r)); });
  return future.get();
}

absl::StatusOr<std::unique_ptr<LoraAdapter>> LearnerCore::SnapshotAdapter(v1::AdapterRole role) const {
  std::promise<absl::StatusOr<std::unique_ptr<LoraAdapter>>> promise;
  auto future = promise.get_future();
  const_cast<LearnerCore*>(this)->Enqueue([this, role, &promise](bool run) {
    if (!run) return promise.set_value(absl::UnavailableError("the learner is shutting down"));
    const RoleState* r = nullptr;
    {
      absl::MutexLock lock(&mu_);
      r = FindRole(role);
    }
    if (r == nullptr) {
      return promise.set_value(
          absl::NotFoundError(absl::StrCat("role: ", RoleEnumName(role), " is not trained by this learner")));
    }
    promise.set_value(r->trainer->SnapshotAdapter());
  });
  return future.get();
}

absl::StatusOr<CheckpointResult> LearnerCore::DoCheckpoint(const std::string& path) {
  const std::string& root = options_.trainer.checkpoint_dir;
  if (root.empty()) {
    return absl::FailedPreconditionError("checkpoint_dir: not configured, the learner cannot write checkpoints");
  }
  if (!path.empty() && path != root) {
    return absl::InvalidArgumentError(
        absl::StrCat("path: only the configured checkpoint folder ", root, " is supported, not ", path));
  }
  std::vector<RoleState*> roles;
  CheckpointResult result;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [r, role] : roles_) roles.push_back(&role);
    result.step = total_steps_;
    result.accept_sequence = DurableSequence();
  }
  for (RoleState* role : roles) {
    auto written = role->trainer->SaveCheckpoint();
    if (!written.ok()) {
      return absl::InternalError(absl::StrCat("checkpoint of ", role->name, " in ", root, "/", role->name, ": ",
                                              written.status().message()));
    }
  }
  result.path = root;
  result.written_at = absl::Now();
  absl::MutexLock lock(&mu_);
  checkpointed_sequence_ = std::max(checkpointed_sequence_, result.accept_sequence);
  last_checkpoint_step_ = result.step;
  last_checkpoint_path_ = root;
  return result;
}

absl::StatusOr<uint64_t> LearnerCore::DoInitAdapter(v1::AdapterRole r, const AdapterSource& source) {
  RoleState* role = nullptr;
  RoleState* from = nullptr;
  {
    absl::MutexLock lock(&mu_);
    role = FindRole(r);
    if (source.kind == AdapterSource::Kind::kCopy) from = FindRole(source.copy_from);
  }
  if (role == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("role: ", RoleEnumName(r), " is not trained by this learner"));
  }
  std::unique_ptr<LoraAdapter> fresh;
  switch (source.kind) {
    case AdapterSource::Kind::kFresh: {
      auto a = LoraAdapter::Create(model_->config(), options_.lora, source.seed.value_or(options_.seed),
                                   model_->dtype(), model_->device());
      if (!a.ok()) return a.status();
      fresh = *std::move(a);
      break;
    }
    case AdapterSource::Kind::kCopy:
      if (source.copy_from == r) {
        return absl::InvalidArgumentError(absl::StrCat("copy_from: ", RoleEnumName(r), " is the role being replaced"));
      }
      if (from == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("copy_from: ", RoleEnumName(source.copy_from), " is not trained by this learner"));
      }
      fresh = from->trainer->SnapshotAdapter();
      break;
    case AdapterSource::Kind::kLoad: {
      if (source.load_path.empty()) return absl::InvalidArgumentError("load_path: empty");
      auto a = LoraAdapter::Load(source.load_path, model_->config(), model_->dtype(), model_->device());
      if (!a.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("load_path: ", source.load_path, ": ", a.status().message()));
      }
      fresh = *std::move(a);
      const LoraConfig& c = fresh->config();
      if (c.r != options_.lora.r || c.lora_alpha != options_.lora.lora_alpha ||
          c.use_rslora != options_.lora.use_rslora) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "load_path: adapter r %d, lora_alpha %g does not match the learner's r %d, lora_alpha %g", c.r,
            c.lora_alpha, options_.lora.r, options_.lora.lora_alpha));
      }
      break;
    }
  }
  std::shared_ptr<LoraAdapter> current = model_->adapter(role->adapter_index);
  auto dst = current->NamedTensors();
  auto src = fresh->NamedTensors();
  if (dst.size() != src.size()) {
    return absl::InvalidArgumentError(absl::StrCat("adapter: ", src.size(), " tensors, the learner's has ", dst.size(),
                                                   " (target_modules differ)"));
  }
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    if (it == src.end() || !it->second.sizes().equals(t.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat("adapter: tensor ", name, " missing or of another shape"));
    }
  }
  const int64_t trained_steps = role->trainer->step();
  role->trainer.reset();  // before touching the tensors it trains
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : dst) t.copy_(src.at(name));
  }
  auto trainer = NewTrainer(*role, /*resume=*/false);
  if (!trainer.ok()) {
    // Cannot happen with the options the first trainer was made with; keep
    // the role usable anyway is impossible without a trainer.
    spdlog::critical("learner: recreating the {} trainer: {}", role->name, std::string(trainer.status().message()));
    std::abort();
  }
  role->trainer = *std::move(trainer);
  uint32_t dropped = 0;
  {
    // The new trainer counts on from the version this adapter is published as.
    absl::MutexLock lock(&mu_);
    role->trainer->SetAdapterVersion(static_cast<int64_t>(role->version + 1));
  }
  uint64_t version = 0, step = 0;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [objective, queue] : role->queues) {
      dropped += static_cast<uint32_t>(queue.size());
      queue.clear();
    }
    buffered_ -= dropped;
    version = ++role->version;
    step = total_steps_;
    // The dropped groups count as consumed.
    role->trainer->ContinueFrom(trained_steps, absl::StrCat(kCursorPrefix, DurableSequence()));
  }
  // Durable before anyone sees it: a restart resumes from the replacement,
  // not from the replaced adapter's checkpoints.
  if (!options_.trainer.checkpoint_dir.empty()) {
    auto written = role->trainer->SaveCheckpoint();
    if (!written.ok()) {
      return absl::InternalError(absl::StrCat("checkpoint of the new ", role->name,
                                              " adapter: ", written.status().message()));
    }
    absl::MutexLock lock(&mu_);
    last_checkpoint_path_ = *written;
  }
  auto snapshot = role->trainer->SnapshotAdapter();
  if (absl::Status s = Publish(role, *snapshot, version, step); !s.ok()) return s;
  MarkPublished(role, version);
  if (dropped > 0) {
    spdlog::info("learner: InitAdapter({}) dropped {} buffered groups", role->name, dropped);
    NotifySpace();
  }
  return version;
}

}  // namespace dsm
