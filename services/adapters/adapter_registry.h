// AdapterRegistry: the adapter versions a sampler holds, per role. A streamed
// version is installed into the shared LlamaModel as an adapter of its own
// (between two decode steps of the Sampler), so a sequence keeps the adapter
// index it was admitted with and never mixes two versions. A version stays
// while any sequence uses it or while it is among the newest `keep_versions`;
// older, unused versions are removed.
//
// Thread-safe. Install() may be called from any thread (e.g. the subscriber's);
// the model is touched only inside Sampler::RunBetweenSteps.
#ifndef DSM_SERVICES_ADAPTERS_ADAPTER_REGISTRY_H_
#define DSM_SERVICES_ADAPTERS_ADAPTER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "model/llama_model.h"
#include "model/sampler.h"
#include "services/adapters/adapter_codec.h"

namespace dsm {

// An adapter version pinned for one sequence; release it when the sequence ends.
struct AdapterLease {
  v1::AdapterRole role = v1::ADAPTER_ROLE_BASE;
  uint64_t version = 0;
  int index = -1;  // LlamaModel adapter index; -1 = base model
};

class AdapterRegistry {
 public:
  // `model` and `sampler` must outlive the registry.
  AdapterRegistry(LlamaModel* model, Sampler* sampler, int keep_versions = 2);

  // Builds the LoRA adapter from `data` and installs it between sampler steps.
  // Fails (nothing installed) if the tensors do not fit the model; returns
  // when the version is usable.
  absl::Status Install(const AdapterVersionData& data);

  // Pins the newest version of `role` (BASE = the base model, always there).
  // NotFound when no version of the role has arrived yet.
  absl::StatusOr<AdapterLease> Acquire(v1::AdapterRole role);
  void Release(const AdapterLease& lease);

  // Newest installed version per role.
  std::map<v1::AdapterRole, uint64_t> versions() const;
  // Installed versions of `role`, oldest first (for tests and metrics).
  std::vector<uint64_t> installed(v1::AdapterRole role) const;

 private:
  struct Installed {
    uint64_t version;
    int index;
    int leases = 0;
  };
  // Removes versions that are neither in use nor among the newest kept.
  void Retire() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LlamaModel* model_;
  Sampler* sampler_;
  const int keep_versions_;
  mutable absl::Mutex mu_;
  std::map<v1::AdapterRole, std::vector<Installed>> roles_ ABSL_GUARDED_BY(mu_);
  std::vector<int> to_remove_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_ADAPTER_REGISTRY_H_
