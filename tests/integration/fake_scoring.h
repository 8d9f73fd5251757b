// Test helper: verifier and meta-verifier services for the pipeline tests.
// Every analysis and assessment is well formed with one token; analysis i
// scores 1 (even i) or 0 (odd i); every aggregate is 1. Every request is
// kept (requests()) for what it asked of the samplers.
#ifndef DSM_TESTS_INTEGRATION_FAKE_SCORING_H_
#define DSM_TESTS_INTEGRATION_FAKE_SCORING_H_

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <string>
#include <vector>

#include "dsm/v1/scoring.grpc.pb.h"

namespace dsm_test {

// A faithful verifier analysis of a correct proof, in the released markers.
inline constexpr char kAnalysis[] =
    "Here is my evaluation of the solution:\nAll steps are correct.\n"
    "Based on my evaluation, the final overall score should be:\n\\boxed{1}";

class FakeScoring final : public dsm::v1::Verifier::CallbackService,
                          public dsm::v1::MetaVerifier::CallbackService {
 public:
  // What a request asked of the samplers.
  struct Seen {
    std::string request_id;
    uint64_t min_adapter_version = 0;
    bool seeded = false;
    uint64_t seed = 0;
  };
  std::vector<Seen> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const dsm::v1::VerifyRequest* request,
                                   dsm::v1::VerifyResponse* response) override {
    Keep(*request);
    Fill(request->n(), response->mutable_analyses());
    response->add_prompt_token_ids(1);
    response->set_aggregate_score(1.0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* Assess(grpc::CallbackServerContext* context, const dsm::v1::AssessRequest* request,
                                   dsm::v1::AssessResponse* response) override {
    Keep(*request);
    Fill(request->n(), response->mutable_assessments());
    response->add_prompt_token_ids(1);
    response->set_aggregate_meta_score(1.0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // Registers both services on `server` (before Start).
  template <typename Server>
  void RegisterOn(Server& server) {
    server.RegisterService(static_cast<dsm::v1::Verifier::CallbackService*>(this),
                           dsm::v1::Verifier::service_full_name());
    server.RegisterService(static_cast<dsm::v1::MetaVerifier::CallbackService*>(this),
                           dsm::v1::MetaVerifier::service_full_name());
  }

 private:
  template <typename Request>
  void Keep(const Request& r) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(Seen{r.request_id(), r.min_adapter_version(), r.params().has_seed(), r.params().seed()});
  }
  static void Fill(uint32_t n, google::protobuf::RepeatedPtrField<dsm::v1::Analysis>* out) {
    for (uint32_t i = 0; i < n; ++i) {
      dsm::v1::Analysis* a = out->Add();
      a->mutable_completion()->set_index(i);
      a->mutable_completion()->set_text(kAnalysis);
      a->mutable_completion()->add_token_ids(3);
      a->mutable_completion()->add_logprobs(-1.0f);
      a->mutable_score()->set_format(dsm::v1::FORMAT_STATUS_OK);
      a->mutable_score()->set_value(i % 2 == 0 ? 1.0 : 0.0);
    }
  }

  mutable std::mutex mu_;
  std::vector<Seen> requests_;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_FAKE_SCORING_H_
