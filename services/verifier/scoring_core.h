// ScoringCore: the domain logic of dsm.v1.Verifier.Verify and
// dsm.v1.MetaVerifier.Assess (proto/dsm/v1/scoring.proto), free of gRPC types.
//
// One core serves one scoring role, given by its prompt template (verifier or
// meta_verifier). A request is validated (INVALID_ARGUMENT naming the field
// and the limit; nothing is sampled), rendered with the template, tokenized
// and checked against max_prompt_tokens; then its n analyses are sampled in
// one engine call, each parsed with the template's output markers, and the
// valid scores aggregated. Format failures are reported per analysis and
// counted, never turned into a score. An analysis the engine aborted or
// failed makes the whole request fail (UNAVAILABLE / INTERNAL), so a caller
// retries it rather than scoring a partial group.
//
// Nothing blocks: Verify/Assess return once the group is handed to the
// engine, and `done` runs when it is complete; so the n samples of a request
// and those of every concurrent request are all in the engine's queue at
// once and share its continuous batches. At most max_queued_requests requests
// are in flight; more get RESOURCE_EXHAUSTED.
//
// Thread-safe. The engine and metrics must outlive the core; the core must
// outlive every request in flight (destroy the engine's sampler first, which
// ends them).
#ifndef DSM_SERVICES_VERIFIER_SCORING_CORE_H_
#define DSM_SERVICES_VERIFIER_SCORING_CORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dsm/v1/scoring.pb.h"
#include "services/scoring/prompt_template.h"
#include "services/verifier/scoring_engine.h"
#include "services/verifier/scoring_metrics.h"

namespace dsm {

// Request limits (ServerLimits); defaults as documented in common.proto.
struct ScoringLimits {
  int max_prompt_tokens = 4096;       // after templating
  int max_completion_tokens = 4096;   // params.max_tokens
  int default_max_tokens = 1024;      // informational here: the engine applies it
  int max_n = 64;
  int64_t max_text_bytes = 262144;    // problem, proof, analysis
  int max_id_bytes = 128;             // request_id
  int max_queued_requests = 1024;     // in flight before RESOURCE_EXHAUSTED
};

struct ScoringOptions {
  ScoringLimits limits;
  // Adapter roles requests may name (ServerInfo.roles). Must hold the
  // template's default role: VERIFIER for a verifier template, META_VERIFIER
  // for a meta_verifier one. E.g. {VERIFIER, GENERATOR} lets the verifier
  // grade with the generator's adapter (self-verification).
  std::vector<v1::AdapterRole> roles;
};

class ScoringCore {
 public:
  using Done = std::function<void(absl::Status)>;

  // `prompt` must be a verifier or meta_verifier template. `metrics` may be
  // null. Fails (INVALID_ARGUMENT) on a bad template role or roles list.
  static absl::StatusOr<std::unique_ptr<ScoringCore>> Create(ScoringEngine* engine, PromptTemplate prompt,
                                                             ScoringOptions options,
                                                             ScoringMetrics* metrics = nullptr);

  // Verify (verifier template only) / Assess (meta_verifier template only).
  // `response` must stay valid until `done` runs; `done` runs exactly once,
  // possibly before the call returns, and must not block. On an error
  // status the response holds nothing useful.
  void Verify(const v1::VerifyRequest& request, absl::Time deadline, v1::VerifyResponse* response, Done done);
  void Assess(const v1::AssessRequest& request, absl::Time deadline, v1::AssessResponse* response, Done done);

  // Fills model, roles, limits and adapter versions (the caller sets
  // ServerInfo.service).
  void FillServerInfo(v1::ServerInfo* info) const;

  PromptRole role() const { return prompt_.role(); }
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  // The fields Verify and Assess share.
  struct Common {
    uint32_t n;
    const v1::SamplingParams* params;
    v1::Aggregation aggregation;
    uint64_t min_adapter_version;
    v1::AdapterRole adapter_role;
    const std::string* request_id;
  };
  // The parsed group, before it is copied into either response type.
  struct Scored {
    std::vector<v1::Analysis> analyses;
    std::optional<double> aggregate;
    v1::Aggregation aggregation = v1::AGGREGATION_MEAN;
    uint32_t format_failures = 0;
    std::vector<int32_t> prompt_token_ids;
    v1::GenerationStats stats;
  };
  using ScoredDone = std::function<void(absl::StatusOr<Scored>)>;

  ScoringCore(ScoringEngine* engine, PromptTemplate prompt, ScoringOptions options, ScoringMetrics* metrics);

  absl::Status ValidateText(const char* field, const std::string& text) const;
  absl::Status ValidateCommon(const Common& common) const;
  // Renders, tokenizes, samples and parses; runs `done` once.
  void Run(const Common& common, const PromptFields& fields, absl::Time deadline, ScoredDone done);

  ScoringEngine* engine_;
  const PromptTemplate prompt_;
  const ScoringOptions options_;
  const v1::AdapterRole default_role_;
  ScoringMetrics* metrics_;
  const std::string instance_id_;
  const absl::Time started_at_;
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace dsm

#endif  // DSM_SERVICES_VERIFIER_SCORING_CORE_H_
