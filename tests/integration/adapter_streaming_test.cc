// Adapter streaming over real gRPC: codec, publisher, WatchAdapters reactor
// and the reconnecting subscriber.
#include <atomic>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/grpc_server.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/adapter_subscriber.h"
#include "services/adapters/watch_adapters_reactor.h"

namespace dsm {
namespace {

AdapterVersionData MakeVersion(uint64_t version, int64_t rows = 64, v1::AdapterRole role = v1::ADAPTER_ROLE_GENERATOR) {
  AdapterVersionData data;
  data.role = role;
  data.version = version;
  data.learner_step = version * 10;
  data.adapter_config_json = R"({"r": 4, "lora_alpha": 8})";
  data.published_at = absl::Now();
  torch::manual_seed(static_cast<uint64_t>(version));
  data.tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] = torch::randn({rows, 32});
  data.tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"] =
      torch::randn({32, rows}).to(torch::kBFloat16);
  return data;
}

void ExpectSameTensors(const AdapterVersionData& a, const AdapterVersionData& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, tensor] : a.tensors) {
    auto it = b.tensors.find(name);
    ASSERT_NE(it, b.tensors.end()) << name;
    EXPECT_EQ(tensor.scalar_type(), it->second.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(tensor, it->second)) << name;
  }
}

TEST(AdapterCodec, RoundTripsAcrossManySmallChunks) {
  const AdapterVersionData data = MakeVersion(3);
  auto chunks = EncodeAdapterVersion(data, 1000);
  ASSERT_TRUE(chunks.ok()) << chunks.status();
  EXPECT_GT(chunks->size(), 10u);
  for (const auto& c : *chunks) EXPECT_LE(c.data().size(), 1000u);
  AdapterAssembler assembler;
  std::optional<AdapterVersionData> out;
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    auto r = assembler.Add((*chunks)[i]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->has_value(), i + 1 == chunks->size());
    if (r->has_value()) out = std::move(**r);
  }
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 3u);
  EXPECT_EQ(out->learner_step, 30u);
  EXPECT_EQ(out->adapter_config_json, data.adapter_config_json);
  ExpectSameTensors(data, *out);
}

TEST(AdapterCodec, DefaultChunksAreAtMostFourMiB) {
  const AdapterVersionData data = MakeVersion(1, 40000);  // 5 MiB of F32 in one tensor
  auto chunks = EncodeAdapterVersion(data);
  ASSERT_TRUE(chunks.ok());
  EXPECT_GE(chunks->size(), 3u);
  for (const auto& c : *chunks) EXPECT_LE(c.data().size(), kMaxAdapterChunkBytes);
}

TEST(AdapterCodec, CorruptChunkIsRejectedAndTheNextVersionStillAssembles) {
  auto chunks = EncodeAdapterVersion(MakeVersion(1), 512);
  ASSERT_TRUE(chunks.ok());
  std::vector<v1::AdapterChunk> bad = *chunks;
  bad[2].mutable_data()->at(5) ^= 0x40;
  AdapterAssembler assembler;
  absl::Status failure;
  for (const auto& c : bad) {
    auto r = assembler.Add(c);
    if (!r.ok()) {
      failure = r.status();
      break;
    }
  }
  EXPECT_EQ(failure.code(), absl::StatusCode::kDataLoss) << failure;
  std::optional<AdapterVersionData> out;
  for (const auto& c : *chunks) {
    auto r = assembler.Add(c);
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->has_value()) out = std::move(**r);
  }
  ASSERT_TRUE(out.has_value());
}

TEST(AdapterCodec, OutOfOrderChunkIsRejected) {
  auto chunks = EncodeAdapterVersion(MakeVersion(1), 512);
  ASSERT_TRUE(chunks.ok());
  AdapterAssembler assembler;
  ASSERT_TRUE(assembler.Add((*chunks)[0]).ok());
  auto r = assembler.Add((*chunks)[2]);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// A Learner that only streams adapters, from a publisher; optionally
// corrupting the first stream.
class StreamingLearner final : public v1::Learner::CallbackService {
 public:
  AdapterPublisher publisher;
  std::atomic<int> corrupt_streams{0};
  std::atomic<int> streams{0};

  grpc::ServerWriteReactor<v1::AdapterChunk>* WatchAdapters(grpc::CallbackServerContext*,
                                                            const v1::WatchAdaptersRequest* request) override {
    ++streams;
    std::map<v1::AdapterRole, uint64_t> held;
    for (const auto& h : request->held()) held[h.role()] = h.version();
    std::vector<v1::AdapterRole> roles;
    for (int r : request->roles()) roles.push_back(static_cast<v1::AdapterRole>(r));
    if (corrupt_streams.load() > 0) {
      --corrupt_streams;
      // Send a corrupted copy of the newest version through a private publisher.
      auto latest = publisher.latest(v1::ADAPTER_ROLE_GENERATOR);
      auto corrupt = std::make_shared<AdapterPublisher>();
      AdapterVersionData copy = MakeVersion(latest->version);
      auto it = copy.tensors.begin();
      it->second = it->second.clone();
      (void)corrupt->Publish(copy, 700);
      corrupted_ = corrupt;  // keep alive
      auto sub = corrupt->Subscribe(roles, held);
      return StartWatchAdaptersCorrupting(sub);
    }
    return StartWatchAdapters(publisher.Subscribe(roles, held), nullptr);
  }

 private:
  // Streams the version with one flipped byte in its second chunk.
  grpc::ServerWriteReactor<v1::AdapterChunk>* StartWatchAdaptersCorrupting(
      std::shared_ptr<AdapterPublisher::Subscription> sub) {
    class Corrupting final : public grpc::ServerWriteReactor<v1::AdapterChunk> {
     public:
      explicit Corrupting(std::shared_ptr<const EncodedAdapterVersion> v) : chunks_(v->chunks) {
        chunks_[1].mutable_data()->at(0) ^= 0x01;
        Next();
      }
      void OnWriteDone(bool ok) override {
        if (!ok) return Close();
        Next();
      }
      void OnCancel() override { Close(); }
      void OnDone() override { delete this; }

     private:
      void Close() {
        absl::MutexLock lock(&mu_);
        if (!finished_) Finish(grpc::Status::CANCELLED);
        finished_ = true;
      }
      void Next() {
        if (i_ < chunks_.size()) {
          StartWrite(&chunks_[i_++]);
        }  // then hold the stream open until the client cancels
      }
      std::vector<v1::AdapterChunk> chunks_;
      std::size_t i_ = 0;
      absl::Mutex mu_;
      bool finished_ = false;
    };
    return new Corrupting(sub->Next());
  }
  std::shared_ptr<AdapterPublisher> corrupted_;
};

struct Received {
  absl::Mutex mu;
  std::vector<uint64_t> versions;
  std::vector<AdapterVersionData> data;

  bool WaitFor(uint64_t version, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu);
    auto has = [this, version]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return !versions.empty() && versions.back() >= version;
    };
    return mu.AwaitWithTimeout(absl::Condition(&has), timeout);
  }
};

std::unique_ptr<AdapterSubscriber> Subscribe(const std::string& address, Received* received) {
  AdapterSubscriberOptions options;
  options.learner_address = address;
  options.roles = {v1::ADAPTER_ROLE_GENERATOR};
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  auto subscriber = std::make_unique<AdapterSubscriber>(options, [received](AdapterVersionData d) {
    absl::MutexLock lock(&received->mu);
    received->versions.push_back(d.version);
    received->data.push_back(std::move(d));
  });
  subscriber->Start();
  return subscriber;
}

GrpcServerOptions ServerOptions(int port = 0) {
  GrpcServerOptions o;
  o.port = port;
  o.drain = absl::ZeroDuration();
  o.shutdown_grace = absl::Milliseconds(200);
  return o;
}

TEST(AdapterStreaming, VersionsArriveInOrderAndLateSubscriberGetsNewestFirst) {
  StreamingLearner learner;
  GrpcServer server(ServerOptions());
  server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(server.Start().ok());

  Received early;
  auto early_sub = Subscribe(server.address(), &early);
  for (uint64_t v = 1; v <= 5; ++v) {
    ASSERT_TRUE(learner.publisher.Publish(MakeVersion(v)).ok());
    ASSERT_TRUE(early.WaitFor(v));
  }
  {
    absl::MutexLock lock(&early.mu);
    EXPECT_EQ(early.versions, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
    ExpectSameTensors(MakeVersion(5), early.data.back());
  }
  // A version cannot be published twice or go backwards.
  EXPECT_FALSE(learner.publisher.Publish(MakeVersion(5)).ok());

  Received late;
  auto late_sub = Subscribe(server.address(), &late);
  ASSERT_TRUE(late.WaitFor(5));
  ASSERT_TRUE(learner.publisher.Publish(MakeVersion(6)).ok());
  ASSERT_TRUE(late.WaitFor(6));
  absl::MutexLock lock(&late.mu);
  EXPECT_EQ(late.versions, (std::vector<uint64_t>{5, 6}));
}

TEST(AdapterStreaming, CorruptChunkIsRejectedAndReRequested) {
  StreamingLearner learner;
  ASSERT_TRUE(learner.publisher.Publish(MakeVersion(1)).ok());
  learner.corrupt_streams = 1;
  GrpcServer server(ServerOptions());
  server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  Received received;
  auto sub = Subscribe(server.address(), &received);
  ASSERT_TRUE(received.WaitFor(1));
  EXPECT_EQ(sub->rejected_versions(), 1);
  EXPECT_GE(learner.streams.load(), 2);
  absl::MutexLock lock(&received.mu);
  EXPECT_EQ(received.versions, std::vector<uint64_t>{1});
  ExpectSameTensors(MakeVersion(1), received.data[0]);
}

TEST(AdapterStreaming, SubscriberReconnectsAfterLearnerRestart) {
  int port = 0;
  Received received;
  std::unique_ptr<AdapterSubscriber> sub;
  {
    StreamingLearner learner;
    GrpcServer server(ServerOptions());
    server.RegisterService(&learner, v1::Learner::service_full_name());
    ASSERT_TRUE(server.Start().ok());
    port = server.port();
    ASSERT_TRUE(learner.publisher.Publish(MakeVersion(1)).ok());
    sub = Subscribe(server.address(), &received);
    ASSERT_TRUE(received.WaitFor(1));
    server.Drain();
  }
  // The learner comes back on the same port (resumed from a checkpoint at v1).
  StreamingLearner restarted;
  ASSERT_TRUE(restarted.publisher.Publish(MakeVersion(1)).ok());
  ASSERT_TRUE(restarted.publisher.Publish(MakeVersion(2)).ok());
  GrpcServer server(ServerOptions(port));
  server.RegisterService(&restarted, v1::Learner::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  ASSERT_TRUE(received.WaitFor(2));
  EXPECT_GE(sub->connects(), 2);
  absl::MutexLock lock(&received.mu);
  EXPECT_EQ(received.versions, (std::vector<uint64_t>{1, 2}));  // v1 is not sent again
}

}  // namespace
}  // namespace dsm
