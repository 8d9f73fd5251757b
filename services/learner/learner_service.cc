#include "services/learner/learner_service.h"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status_conversion.h"
#include "google/protobuf/util/time_util.h"
#include "services/adapters/watch_adapters_reactor.h"

namespace dsm {
namespace {

using google::protobuf::util::TimeUtil;

// Responses queued for writing before the stream stops reading more groups.
constexpr size_t kMaxPendingWrites = 8;

google::protobuf::Timestamp ToProto(absl::Time t) { return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t)); }
google::protobuf::Duration ToProto(double seconds) {
  return TimeUtil::NanosecondsToDuration(static_cast<int64_t>(seconds * 1e9));
}

bool IsTrainableRole(v1::AdapterRole role) {
  return role == v1::ADAPTER_ROLE_GENERATOR || role == v1::ADAPTER_ROLE_VERIFIER ||
         role == v1::ADAPTER_ROLE_META_VERIFIER;
}

std::string NewInstanceId() {
  std::random_device rd;
  return absl::StrFormat("%08x%08x", rd(), rd());
}

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

// One SubmitGroups stream. Balance = credits granted to the client minus the
// groups it sent; it never exceeds the stream window.
class SubmitGroupsReactor final : public grpc::ServerBidiReactor<v1::SubmitGroupsRequest, v1::SubmitGroupsResponse> {
 public:
  SubmitGroupsReactor(LearnerCore* core, uint32_t window) : core_(core), window_(window) {
    {
      absl::MutexLock lock(&mu_);
      v1::SubmitGroupsResponse initial;
      initial.set_credits(GrantLocked());
      pending_.push_back(std::move(initial));
      MaybeWriteLocked();
      MaybeReadLocked();
    }
    listener_ = core_->AddSpaceListener([this] { OnSpace(); });
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (finished_) return;
    if (!ok) {
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    v1::SubmitGroupsResponse response;
    if (balance_ > 0) {
      --balance_;
      *response.mutable_ack() = core_->Submit(request_.group());
    } else {
      *response.mutable_ack() = core_->RejectWithoutCredit(request_.group());
    }
    response.set_credits(GrantLocked());
    pending_.push_back(std::move(response));
    MaybeWriteLocked();
    MaybeReadLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (finished_) return;
    if (!ok) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "SubmitGroups: writing to the client failed"));
      return;
    }
    MaybeWriteLocked();
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    core_->RemoveSpaceListener(listener_);
    uint32_t unused = 0;
    {
      absl::MutexLock lock(&mu_);
      unused = balance_;
      balance_ = 0;
    }
    core_->ReleaseCredits(unused);
    delete this;
  }

 private:
  // Buffer space was freed: top the client's balance up again.
  void OnSpace() {
    absl::MutexLock lock(&mu_);
    if (finished_ || reads_done_) return;
    const uint32_t granted = GrantLocked();
    if (granted == 0) return;
    if (!pending_.empty()) {  // not written yet: add to it
      pending_.back().set_credits(pending_.back().credits() + granted);
    } else {
      v1::SubmitGroupsResponse grant;
      grant.set_credits(granted);
      pending_.push_back(std::move(grant));
    }
    MaybeWriteLocked();
  }

  uint32_t GrantLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (balance_ >= window_) return 0;
    const uint32_t granted = core_->GrantCredits(window_ - balance_);
    balance_ += granted;
    return granted;
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || pending_.empty()) return;
    current_ = std::move(pending_.front());
    pending_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || reads_done_ || finished_ || pending_.size() >= kMaxPendingWrites) return;
    reading_ = true;
    StartRead(&request_);
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || !reads_done_ || writing_ || !pending_.empty()) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  LearnerCore* const core_;
  const uint32_t window_;
  int listener_ = -1;
  absl::Mutex mu_;
  v1::SubmitGroupsRequest request_ ABSL_GUARDED_BY(mu_);
  v1::SubmitGroupsResponse current_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::SubmitGroupsResponse> pending_ ABSL_GUARDED_BY(mu_);
  uint32_t balance_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

void FillTrainMetrics(const RoleStepMetrics& m, v1::TrainMetrics* out) {
  out->set_loss(m.stats.loss);
  out->set_kl(m.stats.kl);
  out->set_grad_norm(m.stats.grad_norm);
  out->set_clip_fraction(m.stats.clip_fraction);
  out->set_reward_mean(m.reward_mean);
  out->set_reward_std(m.reward_std);
  out->set_learning_rate(m.stats.learning_rate);
  out->set_importance_ratio_mean(m.stats.ratio_mean);
  out->set_policy_lag_mean(m.policy_lag_mean);
  out->set_groups(m.groups);
  out->set_samples(static_cast<uint32_t>(m.stats.samples));
  out->set_tokens(static_cast<uint64_t>(m.stats.tokens));
  *out->mutable_step_time() = ToProto(m.stats.seconds);
}

// The host of a call's :authority ("host:port", "[v6]:port" or "host").
std::string AuthorityHost(grpc::string_ref authority) {
  const std::string a(authority.data(), authority.size());
  if (!a.empty() && a.front() == '[') return a.substr(0, a.find(']') + 1);
  const std::size_t colon = a.find(':');
  return colon == std::string::npos || a.find(':', colon + 1) != std::string::npos ? a : a.substr(0, colon);
}

}  // namespace

LearnerService::LearnerService(LearnerCore* core, AdapterPublisher* publisher, LearnerMetrics* metrics,
                               LearnerServiceOptions options)
    : core_(core),
      publisher_(publisher),
      metrics_(metrics),
      options_(std::move(options)),
      instance_id_(NewInstanceId()),
      started_at_(absl::Now()) {}

uint32_t LearnerService::StreamWindow() const {
  const uint32_t cap = core_->options().max_buffered_groups;
  return options_.stream_credit_window == 0 ? cap : std::min(cap, options_.stream_credit_window);
}

grpc::ServerBidiReactor<v1::SubmitGroupsRequest, v1::SubmitGroupsResponse>* LearnerService::SubmitGroups(
    grpc::CallbackServerContext* /*context*/) {
  return new SubmitGroupsReactor(core_, StreamWindow());
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* LearnerService::WatchAdapters(grpc::CallbackServerContext* context,
                                                                          const grpc::ByteBuffer* raw_request) {
  absl::StatusOr<v1::WatchAdaptersRequest> parsed = ParseWatchAdaptersRequest(*raw_request);
  if (!parsed.ok()) return FailWatchAdapters(ToGrpcStatus(parsed.status()));
  const v1::WatchAdaptersRequest& request = *parsed;
  const std::vector<v1::AdapterRole> trained = core_->roles();
  auto is_trained = [&trained](v1::AdapterRole r) {
    return std::find(trained.begin(), trained.end(), r) != trained.end();
  };
  std::vector<v1::AdapterRole> roles;
  for (int i = 0; i < request.roles_size(); ++i) {
    const auto r = static_cast<v1::AdapterRole>(request.roles(i));
    if (!IsTrainableRole(r) || !is_trained(r)) {
      return FailWatchAdapters(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("roles[", i, "]: ", v1::AdapterRole_Name(r), " is not a role this learner trains")));
    }
    roles.push_back(r);
  }
  std::map<v1::AdapterRole, uint64_t> held;
  for (int i = 0; i < request.held_size(); ++i) {
    const v1::AdapterVersion& h = request.held(i);
    if (!held.emplace(h.role(), h.version()).second) {
      return FailWatchAdapters(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("held[", i, "]: a second entry for ", v1::AdapterRole_Name(h.role()))));
    }
  }
  const uint32_t max_id = core_->options().max_id_bytes;
  if (request.subscriber_id().size() > max_id) {
    return FailWatchAdapters(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                          absl::StrCat("subscriber_id: ", request.subscriber_id().size(),
                                                       " bytes > max_id_bytes ", max_id)));
  }
  std::string bulk_endpoint;
  if (request.accept_bulk() && options_.bulk_port > 0) {
    const std::string host =
        !options_.bulk_host.empty() ? options_.bulk_host : AuthorityHost(context->ExperimentalGetAuthority());
    if (!host.empty()) bulk_endpoint = absl::StrCat(host, ":", options_.bulk_port);
  }
  LearnerMetrics* metrics = metrics_;
  return StartWatchAdapters(
      publisher_->Subscribe(std::move(roles), std::move(held)),
      [metrics](const EncodedAdapterVersion& v) { metrics->RecordAdapterVersionSent(v.bytes, /*bulk=*/false); },
      std::move(bulk_endpoint));
}

grpc::ServerUnaryReactor* LearnerService::GetState(grpc::CallbackServerContext* context,
                                                   const v1::GetStateRequest* /*request*/,
                                                   v1::LearnerState* response) {
  const LearnerSnapshot s = core_->State();
  response->set_step(s.step);
  for (const RoleSnapshot& r : s.roles) {
    v1::RoleState* out = response->add_roles();
    out->set_role(r.role);
    out->set_adapter_version(r.adapter_version);
    out->set_buffered_groups(r.buffered_groups);
    out->set_optimizer_steps(r.optimizer_steps);
    if (r.last_step.has_value()) FillTrainMetrics(*r.last_step, out->mutable_last_step());
  }
  v1::GroupCounters* c = response->mutable_counters();
  c->set_accepted(s.counters.accepted);
  c->set_duplicate(s.counters.duplicate);
  c->set_dropped_stale(s.counters.dropped_stale);
  c->set_dropped_no_variance(s.counters.dropped_no_variance);
  c->set_rejected(s.counters.rejected);
  c->set_samples_accepted(s.counters.samples_accepted);
  c->set_samples_trained(s.counters.samples_trained);
  c->set_tokens_trained(s.counters.tokens_trained);
  response->set_world_size(static_cast<uint32_t>(s.world_size));
  response->set_ranks_ready(static_cast<uint32_t>(s.world_size));
  response->set_max_policy_lag(s.max_policy_lag);
  response->set_last_checkpoint_step(s.last_checkpoint_step);
  response->set_last_checkpoint_path(s.last_checkpoint_path);
  response->set_checkpointed_accept_sequence(s.checkpointed_accept_sequence);
  response->set_accept_sequence(s.accept_sequence);
  response->set_outstanding_credits(s.outstanding_credits);
  if (s.last_step_at.has_value()) *response->mutable_last_step_at() = ToProto(*s.last_step_at);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* LearnerService::Checkpoint(grpc::CallbackServerContext* context,
                                                     const v1::CheckpointRequest* request,
                                                     v1::CheckpointResponse* response) {
  auto* reactor = context->DefaultReactor();
  core_->CheckpointAsync(request->path(), [reactor, response](absl::StatusOr<CheckpointResult> r) {
    if (r.ok()) {
      response->set_path(r->path);
      response->set_step(r->step);
      response->set_accept_sequence(r->accept_sequence);
      *response->mutable_written_at() = ToProto(r->written_at);
    }
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* LearnerService::InitAdapter(grpc::CallbackServerContext* context,
                                                      const v1::InitAdapterRequest* request,
                                                      v1::InitAdapterResponse* response) {
  auto* reactor = context->DefaultReactor();
  AdapterSource source;
  switch (request->source_case()) {
    case v1::InitAdapterRequest::kFresh:
      source.kind = AdapterSource::Kind::kFresh;
      if (request->fresh().has_seed()) source.seed = request->fresh().seed();
      break;
    case v1::InitAdapterRequest::kCopyFrom:
      source.kind = AdapterSource::Kind::kCopy;
      source.copy_from = request->copy_from();
      break;
    case v1::InitAdapterRequest::kLoadPath:
      source.kind = AdapterSource::Kind::kLoad;
      source.load_path = request->load_path();
      break;
    default:
      reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError("source: one of fresh, copy_from, load_path is required")));
      return reactor;
  }
  const v1::AdapterRole role = request->role();
  core_->InitAdapterAsync(role, std::move(source), [reactor, response, role](absl::StatusOr<uint64_t> version) {
    if (version.ok()) {
      response->mutable_published()->set_role(role);
      response->mutable_published()->set_version(*version);
    }
    reactor->Finish(ToGrpcStatus(version.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* LearnerService::Flush(grpc::CallbackServerContext* context, const v1::FlushRequest* request,
                                                v1::FlushResponse* response) {
  auto* reactor = context->DefaultReactor();
  const v1::AdapterRole role = request->role();
  core_->FlushAsync(role, [reactor, response, role](absl::StatusOr<FlushResult> flushed) {
    if (flushed.ok()) {
      response->mutable_published()->set_role(role);
      response->mutable_published()->set_version(flushed->version);
      response->set_steps(flushed->steps);
      response->set_groups(flushed->groups);
    }
    reactor->Finish(ToGrpcStatus(flushed.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* LearnerService::GetServerInfo(grpc::CallbackServerContext* context,
                                                        const v1::GetServerInfoRequest* /*request*/,
                                                        v1::ServerInfo* response) {
  const LearnerOptions& o = core_->options();
  const ModelConfig& config = core_->model().config();
  response->set_service(v1::Learner::service_full_name());
  response->set_dsm_version(DSM_VERSION);
  v1::ModelInfo* model = response->mutable_model();
  model->set_name(options_.model_name);
  model->set_architecture(config.architecture);
  model->set_vocab_size(static_cast<uint32_t>(config.vocab_size));
  model->set_context_length(static_cast<uint32_t>(config.max_position_embeddings));
  const torch::ScalarType dtype = core_->model().dtype();
  model->set_dtype(dtype == torch::kFloat ? "float32" : dtype == torch::kBFloat16 ? "bfloat16" : "float16");
  model->set_device(core_->model().device().str());
  for (v1::AdapterRole r : core_->roles()) {
    response->add_roles(r);
    v1::AdapterVersion* v = response->add_adapter_versions();
    v->set_role(r);
    v->set_version(core_->adapter_version(r));
  }
  v1::ServerLimits* limits = response->mutable_limits();
  limits->set_max_prompt_tokens(o.max_prompt_tokens);
  limits->set_max_completion_tokens(o.max_completion_tokens);
  limits->set_max_n(o.max_n);
  limits->set_max_message_bytes(options_.max_message_bytes);
  limits->set_max_id_bytes(o.max_id_bytes);
  limits->set_max_adapter_chunk_bytes(static_cast<uint32_t>(kMaxAdapterChunkBytes));
  limits->set_max_buffered_groups(o.max_buffered_groups);
  response->set_instance_id(instance_id_);
  response->set_hostname(Hostname());
  *response->mutable_started_at() = ToProto(started_at_);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dsm
