// Test helper: verifier and meta-verifier services for the pipeline tests.
// Every analysis and assessment is well formed with one token; analysis i
// scores 1 (even i) or 0 (odd i); every aggregate is 1. Every request is
// kept (requests()) for what it asked of the samplers. HoldVerify() makes one
// verification wait for an assessment, to show that two calls overlap.
#ifndef DSM_TESTS_INTEGRATION_FAKE_SCORING_H_
#define DSM_TESTS_INTEGRATION_FAKE_SCORING_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
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
  // The verification with request id `verify_id` is answered only once an assessment with
  // request id `assess_id` has arrived, or after 2 s; released_in_time() says which.
  void HoldVerify(std::string verify_id, std::string assess_id) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_verify_ = std::move(verify_id);
    release_assess_ = std::move(assess_id);
  }
  bool released_in_time() const {
    std::lock_guard<std::mutex> lock(mu_);
    return released_in_time_;
  }
  grpc::ServerUnaryReactor* Verify(grpc::CallbackServerContext* context, const dsm::v1::VerifyRequest* request,
                                   dsm::v1::VerifyResponse* response) override {
    Keep(*request);
    Fill(request->n(), response->mutable_analyses());
    response->add_prompt_token_ids(1);
    response->set_aggregate_score(1.0);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    bool hold = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold = !hold_verify_.empty() && request->request_id() == hold_verify_;
    }
    if (!hold) {
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    std::thread([this, reactor] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!released_.wait_for(lock, std::chrono::seconds(2), [this] { return assess_seen_; })) {
        released_in_time_ = false;
      }
      reactor->Finish(grpc::Status::OK);
    }).detach();
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
    if (!release_assess_.empty() && r.request_id() == release_assess_) {
      assess_seen_ = true;
      released_.notify_all();
    }
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
  std::string hold_verify_, release_assess_;
  bool assess_seen_ = false;
  bool released_in_time_ = true;
  std::condition_variable released_;
};

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_FAKE_SCORING_H_
