#include "services/adapters/adapter_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "model/lora.h"

namespace dsm {

AdapterRegistry::AdapterRegistry(LlamaModel* model, Sampler* sampler, int keep_versions)
    : model_(model), sampler_(sampler), keep_versions_(std::max(1, keep_versions)) {}

absl::Status AdapterRegistry::Install(const AdapterVersionData& data) {
  if (data.role == v1::ADAPTER_ROLE_BASE || data.role == v1::ADAPTER_ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError("adapter role must be GENERATOR, VERIFIER or META_VERIFIER");
  }
  absl::StatusOr<LoraConfig> config = ParseLoraConfig(data.adapter_config_json);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<LoraAdapter>> adapter =
      LoraAdapter::FromTensors(model_->config(), *config, data.tensors, model_->dtype(), model_->device());
  if (!adapter.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("adapter version ", data.version, ": ",
                                                   adapter.status().message()));
  }
  std::shared_ptr<LoraAdapter> shared(std::move(*adapter));
  const std::string name = absl::StrCat(v1::AdapterRole_Name(data.role), "@", data.version);
  absl::Status status;
  absl::Notification done;
  sampler_->RunBetweenSteps([&] {
    std::vector<int> remove;
    {
      absl::MutexLock lock(&mu_);
      remove.swap(to_remove_);
    }
    for (int index : remove) (void)model_->RemoveAdapter(index);
    absl::StatusOr<int> index = model_->AddAdapter(name, shared);
    if (!index.ok()) {
      status = index.status();
    } else {
      absl::MutexLock lock(&mu_);
      auto& versions = roles_[data.role];
      if (!versions.empty() && versions.back().version >= data.version) {
        status = absl::FailedPreconditionError(absl::StrCat("adapter version ", data.version, " is not newer than ",
                                                            versions.back().version));
        to_remove_.push_back(*index);
      } else {
        versions.push_back(Installed{data.version, *index, 0});
        Retire();
      }
    }
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

absl::StatusOr<AdapterLease> AdapterRegistry::Acquire(v1::AdapterRole role) {
  if (role == v1::ADAPTER_ROLE_BASE) return AdapterLease{};
  absl::MutexLock lock(&mu_);
  auto it = roles_.find(role);
  if (it == roles_.end() || it->second.empty()) {
    return absl::NotFoundError(absl::StrCat("no adapter of role ", v1::AdapterRole_Name(role), " has arrived yet"));
  }
  Installed& newest = it->second.back();
  ++newest.leases;
  return AdapterLease{role, newest.version, newest.index};
}

void AdapterRegistry::Release(const AdapterLease& lease) {
  if (lease.index < 0) return;
  absl::MutexLock lock(&mu_);
  for (Installed& v : roles_[lease.role]) {
    if (v.index == lease.index && v.leases > 0) --v.leases;
  }
  Retire();
}

void AdapterRegistry::Retire() {
  for (auto& [role, versions] : roles_) {
    const std::size_t keep_from = versions.size() > static_cast<std::size_t>(keep_versions_)
                                      ? versions.size() - keep_versions_
                                      : 0;
    std::vector<Installed> kept;
    for (std::size_t i = 0; i < versions.size(); ++i) {
      if (i >= keep_from || versions[i].leases > 0) {
        kept.push_back(versions[i]);
      } else {
        to_remove_.push_back(versions[i].index);  // removed at the next install, between steps
      }
    }
    versions = std::move(kept);
  }
}

std::map<v1::AdapterRole, uint64_t> AdapterRegistry::versions() const {
  absl::MutexLock lock(&mu_);
  std::map<v1::AdapterRole, uint64_t> out;
  for (const auto& [role, versions] : roles_) {
    if (!versions.empty()) out[role] = versions.back().version;
  }
  return out;
}

std::vector<uint64_t> AdapterRegistry::installed(v1::AdapterRole role) const {
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> out;
  auto it = roles_.find(role);
  if (it != roles_.end()) {
    for (const auto& v : it->second) out.push_back(v.version);
  }
  return out;
}

}  // namespace dsm
