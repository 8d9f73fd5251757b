// ScoringEngine: what the scoring services need from a sampling engine —
// tokenize a templated prompt and sample a group of n completions of it —
// as a small interface, so ScoringCore runs over the real continuous-batching
// Sampler (GenerationEngine) or a scripted fake in tests. No gRPC or LibTorch
// types here.
//
// Implementations are thread-safe: Sample is called concurrently by many
// requests and must return without waiting for the group, so that the n
// samples of every request in flight share the engine's batches.
#ifndef DSM_SERVICES_VERIFIER_SCORING_ENGINE_H_
#define DSM_SERVICES_VERIFIER_SCORING_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "dsm/v1/sampler.pb.h"

namespace dsm {

// The n completions of one request, ordered by Completion.index, and the
// engine's summary (adapter version used, token counts).
struct SampledGroup {
  std::vector<v1::Completion> completions;
  v1::GenerateSummary summary;
};

class ScoringEngine {
 public:
  using SampleDone = std::function<void(absl::StatusOr<SampledGroup>)>;

  virtual ~ScoringEngine() = default;

  // Token ids of a prompt, with the tokenizer's special tokens (e.g. BOS).
  virtual absl::StatusOr<std::vector<int32_t>> Tokenize(absl::string_view text) const = 0;

  // Starts sampling request.n completions of request.prompt (token ids) with
  // request.adapter_role. Returns at once; `done` runs exactly once, on any
  // thread (possibly before Sample returns), with all n completions or the
  // first error (INVALID_ARGUMENT for a request the engine refuses,
  // DEADLINE_EXCEEDED if the wanted adapter version did not arrive by
  // `deadline`). `done` must not block.
  virtual void Sample(const v1::GenerateRequest& request, absl::Time deadline, SampleDone done) = 0;

  // The base model (ServerInfo.model).
  virtual v1::ModelInfo model_info() const = 0;
  // Newest adapter version held per role (ServerInfo.adapter_versions).
  virtual std::map<v1::AdapterRole, uint64_t> adapter_versions() const = 0;
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_SCORING_ENGINE_H_
