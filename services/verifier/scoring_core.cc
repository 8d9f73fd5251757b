#include "services/verifier/scoring_core.h"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/scoring/aggregation.h"
#include "services/scoring/score_parser.h"

namespace dsm {
namespace {

template <typename... Parts>
absl::Status Bad(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

std::string RoleNames(const std::vector<v1::AdapterRole>& roles) {
  std::vector<std::string> names;
  for (v1::AdapterRole r : roles) names.push_back(v1::AdapterRole_Name(r));
  return absl::StrJoin(names, ", ");
}

std::string NewInstanceId() {
  std::random_device device;
  return absl::StrFormat("%08x%08x", device(), device());
}

}  // namespace

absl::StatusOr<std::unique_ptr<ScoringCore>> ScoringCore::Create(ScoringEngine* engine, PromptTemplate prompt,
                                                                 ScoringOptions options, ScoringMetrics* metrics) {
  if (prompt.role() != PromptRole::kVerifier && prompt.role() != PromptRole::kMetaVerifier) {
    return Bad(prompt.source(), ": a scoring service needs a verifier or meta_verifier template, not ",
               PromptRoleName(prompt.role()));
  }
  const v1::AdapterRole default_role =
      prompt.role() == PromptRole::kVerifier ? v1::ADAPTER_ROLE_VERIFIER : v1::ADAPTER_ROLE_META_VERIFIER;
  if (std::find(options.roles.begin(), options.roles.end(), default_role) == options.roles.end()) {
    return Bad("roles: [", RoleNames(options.roles), "] must include ", v1::AdapterRole_Name(default_role));
  }
  return std::unique_ptr<ScoringCore>(new ScoringCore(engine, std::move(prompt), std::move(options), metrics));
}

ScoringCore::ScoringCore(ScoringEngine* engine, PromptTemplate prompt, ScoringOptions options,
                         ScoringMetrics* metrics)
    : engine_(engine),
      prompt_(std::move(prompt)),
      options_(std::move(options)),
      default_role_(prompt_.role() == PromptRole::kVerifier ? v1::ADAPTER_ROLE_VERIFIER
                                                            : v1::ADAPTER_ROLE_META_VERIFIER),
      metrics_(metrics),
      instance_id_(NewInstanceId()),
      started_at_(absl::Now()) {}

absl::Status ScoringCore::ValidateText(const char* field, const std::string& text) const {
  if (text.empty()) return Bad(field, ": empty (required)");
  if (static_cast<int64_t>(text.size()) > options_.limits.max_text_bytes) {
    return Bad(field, ": ", text.size(), " bytes exceeds max_text_bytes ", options_.limits.max_text_bytes);
  }
  return absl::OkStatus();
}

absl::Status ScoringCore::ValidateCommon(const Common& c) const {
  const ScoringLimits& l = options_.limits;
  if (static_cast<int64_t>(c.n) > l.max_n) return Bad("n: ", c.n, " exceeds max_n ", l.max_n);
  if (static_cast<int64_t>(c.params->max_tokens()) > l.max_completion_tokens) {
    return Bad("params.max_tokens: ", c.params->max_tokens(), " exceeds max_completion_tokens ",
               l.max_completion_tokens);
  }
  if (!v1::Aggregation_IsValid(c.aggregation)) {
    return Bad("aggregation: unknown value ", static_cast<int>(c.aggregation));
  }
  if (!v1::AdapterRole_IsValid(c.adapter_role)) {
    return Bad("adapter_role: unknown value ", static_cast<int>(c.adapter_role));
  }
  if (std::find(options_.roles.begin(), options_.roles.end(), c.adapter_role) == options_.roles.end()) {
    return Bad("adapter_role: ", v1::AdapterRole_Name(c.adapter_role), " is not hosted by this server (hosted: ",
               RoleNames(options_.roles), ")");
  }
  if (static_cast<int64_t>(c.request_id->size()) > l.max_id_bytes) {
    return Bad("request_id: ", c.request_id->size(), " bytes exceeds max_id_bytes ", l.max_id_bytes);
  }
  return absl::OkStatus();
}

void ScoringCore::Verify(const v1::VerifyRequest& request, absl::Time deadline, v1::VerifyResponse* response,
                         Done done) {
  if (prompt_.role() != PromptRole::kVerifier) {
    done(absl::UnimplementedError(absl::StrCat("Verify: this server scores as ", PromptRoleName(prompt_.role()))));
    return;
  }
  absl::Status valid = ValidateText("problem", request.problem());
  if (valid.ok()) valid = ValidateText("proof", request.proof());
  const Common common{request.n() == 0 ? 1u : request.n(),
                      &request.params(),
                      request.aggregation(),
                      request.min_adapter_version(),
                      request.adapter_role() == v1::ADAPTER_ROLE_UNSPECIFIED ? default_role_ : request.adapter_role(),
                      &request.request_id()};
  if (valid.ok()) valid = ValidateCommon(common);
  if (!valid.ok()) {
    done(valid);
    return;
  }
  const std::string request_id = request.request_id();
  Run(common, {request.problem(), request.proof(), ""}, deadline,
      [response, request_id, done = std::move(done)](absl::StatusOr<Scored> scored) {
        if (!scored.ok()) {
          done(scored.status());
          return;
        }
        for (v1::Analysis& a : scored->analyses) *response->add_analyses() = std::move(a);
        if (scored->aggregate.has_value()) response->set_aggregate_score(*scored->aggregate);
        response->set_aggregation(scored->aggregation);
        response->set_format_failures(scored->format_failures);
        response->mutable_prompt_token_ids()->Add(scored->prompt_token_ids.begin(), scored->prompt_token_ids.end());
        *response->mutable_stats() = std::move(scored->stats);
        response->set_request_id(request_id);
        done(absl::OkStatus());
      });
}

void ScoringCore::Assess(const v1::AssessRequest& request, absl::Time deadline, v1::AssessResponse* response,
                         Done done) {
  if (prompt_.role() != PromptRole::kMetaVerifier) {
    done(absl::UnimplementedError(absl::StrCat("Assess: this server scores as ", PromptRoleName(prompt_.role()))));
    return;
  }
  absl::Status valid = ValidateText("problem", request.problem());
  if (valid.ok()) valid = ValidateText("proof", request.proof());
  if (valid.ok()) valid = ValidateText("analysis", request.analysis());
  const Common common{request.n() == 0 ? 1u : request.n(),
                      &request.params(),
                      request.aggregation(),
                      request.min_adapter_version(),
                      request.adapter_role() == v1::ADAPTER_ROLE_UNSPECIFIED ? default_role_ : request.adapter_role(),
                      &request.request_id()};
  if (valid.ok()) valid = ValidateCommon(common);
  if (!valid.ok()) {
    done(valid);
    return;
  }
  const std::string request_id = request.request_id();
  Run(common, {request.problem(), request.proof(), request.analysis()}, deadline,
      [response, request_id, done = std::move(done)](absl::StatusOr<Scored> scored) {
        if (!scored.ok()) {
          done(scored.status());
          return;
        }
        for (v1::Analysis& a : scored->analyses) *response->add_assessments() = std::move(a);
        if (scored->aggregate.has_value()) response->set_aggregate_meta_score(*scored->aggregate);
        response->set_aggregation(scored->aggregation);
        response->set_format_failures(scored->format_failures);
        response->mutable_prompt_token_ids()->Add(scored->prompt_token_ids.begin(), scored->prompt_token_ids.end());
        *response->mutable_stats() = std::move(scored->stats);
        response->set_request_id(request_id);
        done(absl::OkStatus());
      });
}

void ScoringCore::Run(const Common& common, const PromptFields& fields, absl::Time deadline, ScoredDone done) {
  const PromptRole service = prompt_.role();
  const absl::Time start = absl::Now();
  // Every exit goes through `finish`: it keeps in_flight and the metrics
  // right whatever happens.
  auto finish = [this, service, start](absl::StatusOr<Scored> scored, const ScoredDone& done) {
    if (metrics_ != nullptr) {
      if (scored.ok()) {
        for (const v1::Analysis& a : scored->analyses) metrics_->RecordAnalysis(service, a.score().format());
      }
      metrics_->RecordFinished(service, scored.status().code(), absl::Now() - start);
    }
    in_flight_.fetch_sub(1);
    done(std::move(scored));
  };
  if (metrics_ != nullptr) metrics_->RecordStarted(service);
  if (in_flight_.fetch_add(1) >= options_.limits.max_queued_requests) {
    finish(absl::ResourceExhaustedError(absl::StrCat("scoring: ", options_.limits.max_queued_requests,
                                                     " requests in flight (max_queued_requests)")),
           done);
    return;
  }

  absl::StatusOr<std::vector<int32_t>> prompt = engine_->Tokenize(prompt_.Render(fields));
  if (!prompt.ok()) {
    finish(prompt.status(), done);
    return;
  }
  if (static_cast<int64_t>(prompt->size()) > options_.limits.max_prompt_tokens) {
    finish(Bad("prompt: ", prompt->size(), " tokens after templating exceeds max_prompt_tokens ",
               options_.limits.max_prompt_tokens),
           done);
    return;
  }

  v1::GenerateRequest generate;
  generate.mutable_prompt()->mutable_token_ids()->mutable_ids()->Add(prompt->begin(), prompt->end());
  generate.set_n(common.n);
  *generate.mutable_params() = *common.params;
  generate.set_min_adapter_version(common.min_adapter_version);
  generate.set_adapter_role(common.adapter_role);
  generate.set_request_id(*common.request_id);

  const uint32_t n = common.n;
  const v1::Aggregation aggregation = EffectiveAggregation(common.aggregation);
  const OutputMarkers& markers = prompt_.markers();
  auto prompt_ids = std::make_shared<std::vector<int32_t>>(std::move(*prompt));
  auto shared_done = std::make_shared<ScoredDone>(std::move(done));
  engine_->Sample(generate, deadline,
                  [finish, shared_done, prompt_ids, n, aggregation, &markers](absl::StatusOr<SampledGroup> group) {
                    if (!group.ok()) {
                      finish(group.status(), *shared_done);
                      return;
                    }
                    if (group->completions.size() != n) {
                      finish(absl::InternalError(absl::StrCat("scoring: the engine returned ",
                                                              group->completions.size(), " analyses for n ", n)),
                             *shared_done);
                      return;
                    }
                    Scored scored;
                    std::vector<v1::Score> scores;
                    for (v1::Completion& c : group->completions) {
                      if (c.finish_reason() == v1::FINISH_REASON_ABORTED) {
                        finish(absl::UnavailableError(absl::StrCat("analysis ", c.index(),
                                                                   ": aborted (server stopping or cancelled)")),
                               *shared_done);
                        return;
                      }
                      if (c.finish_reason() == v1::FINISH_REASON_ERROR) {
                        finish(absl::InternalError(absl::StrCat("analysis ", c.index(), ": ", c.stop_reason())),
                               *shared_done);
                        return;
                      }
                      v1::Analysis analysis;
                      *analysis.mutable_score() = ParseScore(c.text(), markers, c.finish_reason());
                      if (analysis.score().format() != v1::FORMAT_STATUS_OK) ++scored.format_failures;
                      scores.push_back(analysis.score());
                      *analysis.mutable_completion() = std::move(c);
                      scored.analyses.push_back(std::move(analysis));
                    }
                    scored.aggregate = Aggregate(scores, aggregation);
                    scored.aggregation = aggregation;
                    scored.prompt_token_ids = std::move(*prompt_ids);
                    scored.stats = group->summary.stats();
                    finish(std::move(scored), *shared_done);
                  });
}

void ScoringCore::FillServerInfo(v1::ServerInfo* info) const {
  info->set_dsm_version(DSM_VERSION);
  *info->mutable_model() = engine_->model_info();
  for (v1::AdapterRole role : options_.roles) info->add_roles(role);
  v1::ServerLimits* limits = info->mutable_limits();
  const ScoringLimits& l = options_.limits;
  limits->set_max_prompt_tokens(l.max_prompt_tokens);
  limits->set_max_completion_tokens(l.max_completion_tokens);
  limits->set_default_max_tokens(l.default_max_tokens);
  limits->set_max_n(l.max_n);
  limits->set_max_text_bytes(l.max_text_bytes);
  limits->set_max_id_bytes(l.max_id_bytes);
  limits->set_max_queued_requests(l.max_queued_requests);
  const std::map<v1::AdapterRole, uint64_t> versions = engine_->adapter_versions();
  for (v1::AdapterRole role : options_.roles) {
    auto it = versions.find(role);
    if (it == versions.end() && role != v1::ADAPTER_ROLE_BASE) continue;
    v1::AdapterVersion* v = info->add_adapter_versions();
    v->set_role(role);
    v->set_version(it == versions.end() ? 0 : it->second);
  }
  info->set_instance_id(instance_id_);
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) info->set_hostname(host);
  info->mutable_started_at()->set_seconds(absl::ToUnixSeconds(started_at_));
}

}  // namespace dsm
