#include "services/adapters/adapter_publisher.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace dsm {

grpc::ByteBuffer OwningByteBuffer(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

AdapterPublisher::Subscription::Subscription(AdapterPublisher* publisher, std::vector<v1::AdapterRole> roles,
                                             std::map<v1::AdapterRole, uint64_t> held)
    : publisher_(publisher), roles_(std::move(roles)), sent_(std::move(held)) {}

bool AdapterPublisher::Subscription::Wants(v1::AdapterRole role) const {
  return roles_.empty() || std::find(roles_.begin(), roles_.end(), role) != roles_.end();
}

std::shared_ptr<const EncodedAdapterVersion> AdapterPublisher::Subscription::Next() {
  std::vector<std::shared_ptr<const EncodedAdapterVersion>> candidates;
  {
    absl::MutexLock lock(&publisher_->mu_);
    for (const auto& [role, version] : publisher_->latest_) {
      if (Wants(role)) candidates.push_back(version);
    }
  }
  absl::MutexLock lock(&mu_);
  if (cancelled_) return nullptr;
  for (const auto& candidate : candidates) {
    uint64_t& sent = sent_[candidate->role];
    if (candidate->version > sent) {
      sent = candidate->version;
      return candidate;
    }
  }
  return nullptr;
}

void AdapterPublisher::Subscription::SetWakeup(std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  wake_ = std::move(wake);
}

void AdapterPublisher::Subscription::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    wake_ = nullptr;
  }
  publisher_->Remove(this);
}

void AdapterPublisher::Subscription::Wake() {
  std::function<void()> wake;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    wake = wake_;
  }
  if (wake) wake();
}

absl::Status AdapterPublisher::Publish(const AdapterVersionData& data, std::size_t chunk_bytes) {
  AdapterPayloadLayout layout;
  absl::StatusOr<std::vector<std::string>> chunks = SerializeAdapterVersion(data, chunk_bytes, &layout);
  if (!chunks.ok()) return chunks.status();
  auto encoded = std::make_shared<EncodedAdapterVersion>();
  encoded->role = data.role;
  encoded->version = data.version;
  encoded->bytes = layout.total_bytes;
  encoded->chunks.reserve(chunks->size());
  encoded->payload.reserve(chunks->size());
  std::vector<grpc::Slice> slices;
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    grpc::ByteBuffer& buffer = encoded->chunks.emplace_back(OwningByteBuffer(std::move((*chunks)[i])));
    slices.clear();
    (void)buffer.Dump(&slices);  // one slice, the chunk; its tensor data is at its end
    const grpc::Slice& slice = slices.front();
    const std::size_t n = layout.chunk_data_bytes[i];
    encoded->payload.emplace_back(reinterpret_cast<const char*>(slice.end()) - n, n);
  }
  std::random_device random;
  for (int i = 0; i < 4; ++i) {
    const uint32_t word = random();
    encoded->ticket.append(reinterpret_cast<const char*>(&word), sizeof(word));
  }
  v1::AdapterChunk& offer = encoded->bulk_offer;
  offer.set_role(data.role);
  offer.set_version(data.version);
  offer.set_learner_step(data.learner_step);
  offer.set_adapter_config_json(data.adapter_config_json);
  *offer.mutable_published_at() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(data.published_at));
  offer.set_tensor_count(static_cast<uint32_t>(layout.tensors.size()));
  offer.set_last_chunk_of_version(true);
  v1::AdapterBulkOffer* bulk = offer.mutable_bulk();
  bulk->set_ticket(encoded->ticket);
  bulk->set_total_bytes(layout.total_bytes);
  for (v1::AdapterBulkTensor& t : layout.tensors) *bulk->add_tensors() = std::move(t);
  std::vector<std::shared_ptr<Subscription>> to_wake;
  {
    absl::MutexLock lock(&mu_);
    auto& slot = latest_[data.role];
    if (slot && slot->version >= data.version) {
      return absl::FailedPreconditionError(absl::StrCat("adapter version ", data.version, " is not above the published ",
                                                        slot->version));
    }
    previous_[data.role] = std::move(slot);
    slot = std::move(encoded);
    for (const auto& weak : subscriptions_) {
      if (auto s = weak.lock()) to_wake.push_back(std::move(s));
    }
  }
  for (const auto& s : to_wake) {
    if (s->Wants(data.role)) s->Wake();
  }
  return absl::OkStatus();
}

std::shared_ptr<AdapterPublisher::Subscription> AdapterPublisher::Subscribe(
    std::vector<v1::AdapterRole> roles, std::map<v1::AdapterRole, uint64_t> held) {
  std::shared_ptr<Subscription> s(new Subscription(this, std::move(roles), std::move(held)));
  absl::MutexLock lock(&mu_);
  subscriptions_.push_back(s);
  return s;
}

void AdapterPublisher::Remove(Subscription* subscription) {
  absl::MutexLock lock(&mu_);
  subscriptions_.erase(std::remove_if(subscriptions_.begin(), subscriptions_.end(),
                                      [subscription](const std::weak_ptr<Subscription>& w) {
                                        auto s = w.lock();
                                        return !s || s.get() == subscription;
                                      }),
                       subscriptions_.end());
}

uint64_t AdapterPublisher::latest_version(v1::AdapterRole role) const {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(role);
  return it == latest_.end() ? 0 : it->second->version;
}

std::shared_ptr<const EncodedAdapterVersion> AdapterPublisher::latest(v1::AdapterRole role) const {
  absl::MutexLock lock(&mu_);
  auto it = latest_.find(role);
  return it == latest_.end() ? nullptr : it->second;
}

std::shared_ptr<const EncodedAdapterVersion> AdapterPublisher::FindForBulk(v1::AdapterRole role, uint64_t version,
                                                                          absl::string_view ticket) const {
  absl::MutexLock lock(&mu_);
  for (const auto* versions : {&latest_, &previous_}) {
    auto it = versions->find(role);
    if (it != versions->end() && it->second && it->second->version == version && it->second->ticket == ticket) {
      return it->second;
    }
  }
  return nullptr;
}

int AdapterPublisher::subscribers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(subscriptions_.size());
}

}  // namespace dsm
