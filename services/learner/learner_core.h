// LearnerCore: the learner service's domain logic, free of gRPC types.
//
// Owns, over ONE shared LlamaModel (not owned): one LoRA adapter and one
// Trainer per trained role (adapter names "generator", "verifier",
// "meta_verifier"); a bounded buffer of accepted groups (at most
// max_buffered_groups, shared by every role and stream); the credit window
// of SubmitGroups (buffered + outstanding credits <= max_buffered_groups, so
// memory stays bounded whatever the clients do); and one training thread.
//
// The training thread is the only one that touches the trainers and the
// adapters' tensors: when a role has groups_per_step groups of one objective
// buffered it builds a TrainingBatch, calls Trainer::Step, then publishes the
// new adapter version on the AdapterPublisher. Checkpoint and InitAdapter are
// queued to that thread too (the *Async calls), so an RPC thread never blocks
// on a training step.
//
// Submit() validates (REJECTED naming the field), de-duplicates by group_id
// (DUPLICATE), drops groups with a sample older than max_policy_lag versions
// (DROPPED_STALE) and GRPO groups whose rewards are all equal
// (DROPPED_NO_VARIANCE, dynamic sampling), computes the GRPO advantages and
// buffers the group (ACCEPTED, with an accept_sequence).
//
// Versions: a role's published version starts at the trainer's resumed
// adapter_version (0 for a fresh start), or just above the newest version
// ever published when that is higher (published_version.h: a learner killed
// between checkpoints), and goes up by one on every publication (each
// optimizer step, each InitAdapter).
//
// Thread-safe. Space listeners are called on the training thread (or the
// thread releasing credits) with no LearnerCore lock held.
#ifndef DSM_SERVICES_LEARNER_LEARNER_CORE_H_
#define DSM_SERVICES_LEARNER_LEARNER_CORE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dsm/v1/learner.pb.h"
#include "learner/trainer.h"
#include "model/llama_model.h"
#include "model/lora.h"
#include "services/adapters/adapter_publisher.h"
#include "services/learner/learner_metrics.h"

namespace dsm {

struct LearnerOptions {
  // Roles trained (each GENERATOR, VERIFIER or META_VERIFIER, no repeats).
  std::vector<v1::AdapterRole> roles = {v1::ADAPTER_ROLE_GENERATOR, v1::ADAPTER_ROLE_VERIFIER,
                                        v1::ADAPTER_ROLE_META_VERIFIER};
  LoraConfig lora;  // every role's adapter
  // Optimizer, GRPO, checkpoint options shared by the roles' trainers. Each
  // role checkpoints into trainer.checkpoint_dir + "/" + role name.
  TrainerOptions trainer;
  uint64_t seed = 0;  // fresh adapters: role i gets seed + i

  uint32_t max_buffered_groups = 256;  // the credit window of all streams together
  uint32_t groups_per_step = 8;        // groups of one role (and objective) per optimizer step
  uint32_t max_policy_lag = 4;         // samples older than current - max_policy_lag are dropped
  uint32_t max_prompt_tokens = 4096;
  uint32_t max_completion_tokens = 4096;
  uint32_t max_n = 64;          // samples per group
  uint32_t max_id_bytes = 128;  // group_id, source
  bool start_paused = false;    // buffer only until SetPaused(false) (tests, maintenance)

  // Names the bad field and the allowed range (also checks lora and trainer).
  absl::Status Validate() const;
};

// Metrics of one role's latest optimizer step.
struct RoleStepMetrics {
  StepStats stats;
  double reward_mean = 0;
  double reward_std = 0;
  double policy_lag_mean = 0;
  uint32_t groups = 0;
  absl::Time finished_at;
};

struct RoleSnapshot {
  v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
  uint64_t adapter_version = 0;
  uint32_t buffered_groups = 0;
  uint64_t optimizer_steps = 0;
  std::optional<RoleStepMetrics> last_step;
};

struct LearnerCounters {
  uint64_t accepted = 0;
  uint64_t duplicate = 0;
  uint64_t dropped_stale = 0;
  uint64_t dropped_no_variance = 0;
  uint64_t rejected = 0;
  uint64_t samples_accepted = 0;
  uint64_t samples_trained = 0;
  uint64_t tokens_trained = 0;
  uint64_t samples_dropped_stale = 0;
  uint64_t samples_dropped_no_variance = 0;
};

struct LearnerSnapshot {
  uint64_t step = 0;  // optimizer steps, all roles
  std::vector<RoleSnapshot> roles;
  LearnerCounters counters;
  uint32_t max_policy_lag = 0;
  uint32_t buffered_groups = 0;
  uint32_t outstanding_credits = 0;
  uint64_t accept_sequence = 0;
  uint64_t checkpointed_accept_sequence = 0;
  uint64_t last_checkpoint_step = 0;
  std::string last_checkpoint_path;
  std::optional<absl::Time> last_step_at;
  int world_size = 1;
};

struct CheckpointResult {
  std::string path;  // the folder holding one subfolder per role
  uint64_t step = 0;
  uint64_t accept_sequence = 0;
  absl::Time written_at;
};

struct FlushResult {
  uint64_t version = 0;  // the role's newest published version afterwards
  uint32_t steps = 0;    // optimizer steps taken by the flush
  uint32_t groups = 0;   // groups they trained on
};

// Where InitAdapter takes the new weights from (exactly one).
struct AdapterSource {
  enum class Kind { kFresh, kCopy, kLoad };
  Kind kind = Kind::kFresh;
  std::optional<uint64_t> seed;  // kFresh; unset = LearnerOptions::seed
  v1::AdapterRole copy_from = v1::ADAPTER_ROLE_UNSPECIFIED;  // kCopy
  std::string load_path;                                     // kLoad
};

class LearnerCore {
 public:
  // Adds one adapter per role to `model` and creates its trainer (resuming
  // from checkpoints when configured); publishes resumed adapters (version >
  // 0). `model`, `publisher` and `metrics` are not owned and must outlive the
  // core. Starts the training thread.
  static absl::StatusOr<std::unique_ptr<LearnerCore>> Create(LlamaModel* model, LearnerOptions options,
                                                             AdapterPublisher* publisher, LearnerMetrics* metrics);
  ~LearnerCore();  // Stop()
  LearnerCore(const LearnerCore&) = delete;
  LearnerCore& operator=(const LearnerCore&) = delete;

  // Stops the training thread; queued Checkpoint/InitAdapter calls complete
  // with UNAVAILABLE. Idempotent.
  void Stop();

  // One group sent with credit (the credit is consumed). Never blocks.
  v1::GroupAck Submit(const v1::ScoredGroup& group);
  // One group sent without credit: acked REJECTED and counted.
  v1::GroupAck RejectWithoutCredit(const v1::ScoredGroup& group);

  // Grants up to `wanted` credits (fewer when buffered + outstanding would
  // exceed max_buffered_groups). Returns how many were granted.
  uint32_t GrantCredits(uint32_t wanted);
  // Gives back credits a stream never used (the stream ended).
  void ReleaseCredits(uint32_t credits);
  // `on_space` runs when buffer space was freed (groups trained or dropped,
  // credits released). Returns an id for RemoveSpaceListener, which waits
  // for a running call of the listener to finish.
  int AddSpaceListener(std::function<void()> on_space);
  void RemoveSpaceListener(int id);

  // Pauses / resumes training (groups keep being buffered while paused).
  void SetPaused(bool paused);

  LearnerSnapshot State() const;

  // Queued to the training thread; `done` runs there (or in Stop()).
  void CheckpointAsync(std::string path, std::function<void(absl::StatusOr<CheckpointResult>)> done);
  // Replaces `role`'s adapter, resets its optimizer, drops its buffered
  // groups and publishes the result; `done` gets the new version.
  void InitAdapterAsync(v1::AdapterRole role, AdapterSource source,
                        std::function<void(absl::StatusOr<uint64_t>)> done);
  // Trains `role` on every group buffered for it now, in steps of at most
  // groups_per_step (the last one smaller), publishing after each; `done`
  // gets the role's version afterwards and what was trained. Nothing
  // buffered: the current version. FAILED_PRECONDITION with several ranks
  // (their steps must match; they flush by training full batches only).
  // With a checkpoint_dir, a flush that trained writes the role's checkpoint.
  void FlushAsync(v1::AdapterRole role, std::function<void(absl::StatusOr<FlushResult>)> done);
  // Blocking forms (tests, CLI).
  absl::StatusOr<CheckpointResult> Checkpoint(std::string path);
  absl::StatusOr<uint64_t> InitAdapter(v1::AdapterRole role, AdapterSource source);
  absl::StatusOr<FlushResult> Flush(v1::AdapterRole role);

  // Snapshot of `role`'s adapter (the training thread's copy may move on).
  absl::StatusOr<std::unique_ptr<LoraAdapter>> SnapshotAdapter(v1::AdapterRole role) const;

  const LearnerOptions& options() const { return options_; }
  const LlamaModel& model() const { return *model_; }
  std::vector<v1::AdapterRole> roles() const { return options_.roles; }
  // The newest version of `role` handed to the samplers (0: none yet).
  uint64_t adapter_version(v1::AdapterRole role) const;

 private:
  // A buffered group, converted and with its advantages.
  struct PendingGroup {
    std::string group_id;
    uint64_t accept_sequence = 0;
    Objective objective = Objective::kGrpo;
    std::vector<TrainingSample> samples;
    double reward_mean = 0;
    double reward_std = 0;
    double lag_sum = 0;
  };
  struct RoleState {
    v1::AdapterRole role = v1::ADAPTER_ROLE_UNSPECIFIED;
    std::string name;
    int adapter_index = -1;
    std::unique_ptr<Trainer> trainer;  // training thread only
    uint64_t version = 0;              // newest trained (published right after)
    uint64_t published = 0;            // newest handed to the samplers: what State() reports
    uint64_t steps = 0;
    std::map<Objective, std::deque<PendingGroup>> queues;
    std::optional<RoleStepMetrics> last_step;
  };
  using Task = std::function<void(bool run)>;  // run = false: the core is stopping

  LearnerCore(LlamaModel* model, LearnerOptions options, AdapterPublisher* publisher, LearnerMetrics* metrics);
  absl::Status Init();
  absl::StatusOr<std::unique_ptr<Trainer>> NewTrainer(RoleState& role, bool resume);
  // Validation of one group; the message names the field and the limit.
  absl::Status ValidateGroup(const v1::ScoredGroup& group) const;
  v1::GroupAck Finish(const v1::ScoredGroup& group, v1::GroupStatus status, std::string message,
                      uint64_t accept_sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RoleState* FindRole(v1::AdapterRole role) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const RoleState* FindRole(v1::AdapterRole role) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();
  // Trains one step of `role` on `groups`, publishes; returns false on error.
  void TrainStep(RoleState* role, Objective objective, std::vector<PendingGroup> groups);
  // Records the version (PublishedVersionDir) and hands it to the publisher; the caller then
  // marks it published (MarkPublished, or directly in Init, which holds mu_ throughout).
  absl::Status Publish(RoleState* role, const LoraAdapter& adapter, uint64_t version, uint64_t step);
  // role->published = max(itself, version): what State() and adapter_version() report.
  void MarkPublished(RoleState* role, uint64_t version) ABSL_LOCKS_EXCLUDED(mu_);
  // Where `role`'s published_version file lives; "" without a checkpoint
  // folder or on ranks other than 0.
  std::string PublishedVersionDir(const RoleState& role) const;
  absl::StatusOr<CheckpointResult> DoCheckpoint(const std::string& path);
  absl::StatusOr<uint64_t> DoInitAdapter(v1::AdapterRole role, const AdapterSource& source);
  absl::StatusOr<FlushResult> DoFlush(v1::AdapterRole role);
  void Enqueue(Task task);
  void NotifySpace();
  uint64_t DurableSequence() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LlamaModel* const model_;
  const LearnerOptions options_;
  AdapterPublisher* const publisher_;
  LearnerMetrics* const metrics_;

  mutable absl::Mutex mu_;
  std::map<v1::AdapterRole, RoleState> roles_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> accepted_ids_ ABSL_GUARDED_BY(mu_);
  LearnerCounters counters_ ABSL_GUARDED_BY(mu_);
  uint32_t buffered_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t outstanding_credits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t accept_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t total_steps_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Time> last_step_at_ ABSL_GUARDED_BY(mu_);
  uint64_t checkpointed_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_checkpoint_step_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_checkpoint_path_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex listeners_mu_;  // held while a listener runs
  std::map<int, std::function<void()>> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_id_ ABSL_GUARDED_BY(listeners_mu_) = 0;

  std::thread thread_;
};

}  // namespace dsm

#endif  // DSM_SERVICES_LEARNER_LEARNER_CORE_H_
