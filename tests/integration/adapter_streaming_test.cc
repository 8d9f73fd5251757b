// Adapter streaming over real gRPC: codec, publisher, WatchAdapters reactor
// and the reconnecting subscriber.
#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <functional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "services/adapters/adapter_bulk_client.h"
#include "services/adapters/adapter_bulk_server.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/adapter_subscriber.h"
#include "services/adapters/watch_adapters_reactor.h"
#include "tests/integration/learner_client.h"
#include "tests/integration/publishing_learner.h"
#include "tests/integration/test_certs.h"

namespace dsm {
namespace {

// Waits up to 10 s for `done`: a server counts a version once its send returns, which can come
// after the receiver already holds every byte.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i) absl::SleepFor(absl::Milliseconds(10));
  return done();
}

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

// A Learner that only streams adapters, from a publisher, WatchAdapters
// served raw as LearnerService serves it; optionally corrupting the first
// stream.
class StreamingLearner final : public LearnerRawWatchAdaptersService {
 public:
  AdapterPublisher publisher;
  std::atomic<int> corrupt_streams{0};
  std::atomic<int> streams{0};
  std::atomic<int> versions_sent{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::string bulk_endpoint;  // offered to requests that accept bulk transfers; empty = chunks only

  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchAdapters(grpc::CallbackServerContext*,
                                                            const grpc::ByteBuffer* request) override {
    ++streams;
    if (corrupt_streams.load() > 0) {
      --corrupt_streams;
      return StartCorrupting(publisher.latest(v1::ADAPTER_ROLE_GENERATOR)->version);
    }
    return dsm_test::WatchAdaptersFrom(
        &publisher, *request,
        [this](const EncodedAdapterVersion& v) {
          ++versions_sent;
          bytes_sent += v.bytes;
        },
        bulk_endpoint);
  }

 private:
  // Streams `version` in 700-byte chunks (serialised by protobuf itself, data
  // in field order) with one flipped byte in its second chunk, then holds the
  // stream open until the client cancels.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* StartCorrupting(uint64_t version) {
    class Corrupting final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
     public:
      explicit Corrupting(std::vector<grpc::ByteBuffer> chunks) : chunks_(std::move(chunks)) { Next(); }
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
      std::vector<grpc::ByteBuffer> chunks_;
      std::size_t i_ = 0;
      absl::Mutex mu_;
      bool finished_ = false;
    };
    auto chunks = EncodeAdapterVersion(MakeVersion(version), 700);
    EXPECT_TRUE(chunks.ok()) << chunks.status();
    (*chunks)[1].mutable_data()->at(0) ^= 0x01;
    std::vector<grpc::ByteBuffer> buffers;
    for (const v1::AdapterChunk& c : *chunks) buffers.push_back(OwningByteBuffer(c.SerializeAsString()));
    return new Corrupting(std::move(buffers));
  }
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

std::unique_ptr<AdapterSubscriber> Subscribe(const std::string& address, Received* received,
                                             ClientSecurity security = {}) {
  AdapterSubscriberOptions options;
  options.learner_address = address;
  options.channel.security = std::move(security);
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

TEST(AdapterStreaming, EverySubscriberGetsEveryVersionFromOneEncoding) {
  StreamingLearner learner;
  GrpcServer server(ServerOptions());
  server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  constexpr int kSubscribers = 4;
  std::vector<std::unique_ptr<Received>> received;
  std::vector<std::unique_ptr<AdapterSubscriber>> subs;
  for (int i = 0; i < kSubscribers; ++i) {
    received.push_back(std::make_unique<Received>());
    subs.push_back(Subscribe(server.address(), received.back().get()));
  }
  uint64_t bytes = 0;
  for (uint64_t v = 1; v <= 3; ++v) {
    const AdapterVersionData data = MakeVersion(v, 3000);  // 576 KB in two chunks, each received in many slices
    ASSERT_TRUE(learner.publisher.Publish(data).ok());
    for (auto& r : received) ASSERT_TRUE(r->WaitFor(v));
    bytes = learner.publisher.latest(v1::ADAPTER_ROLE_GENERATOR)->bytes;
  }
  for (auto& r : received) {
    absl::MutexLock lock(&r->mu);
    EXPECT_EQ(r->versions, (std::vector<uint64_t>{1, 2, 3}));
    ExpectSameTensors(MakeVersion(3, 3000), r->data.back());
  }
  // The reactor reports each version once per stream (the learner counts the
  // bytes sent from it), after its last chunk was written.
  EXPECT_TRUE(Eventually([&] { return learner.versions_sent.load() == 3 * kSubscribers; }))
      << learner.versions_sent.load();
  EXPECT_TRUE(Eventually([&] { return learner.bytes_sent.load() == 3 * kSubscribers * bytes; }))
      << learner.bytes_sent.load();
  for (auto& s : subs) EXPECT_EQ(s->rejected_versions(), 0);
}

TEST(AdapterStreaming, RawStreamNeedsTheBearerToken) {
  dsm_test::TestCerts certs;
  ASSERT_TRUE(dsm_test::MakeTestCerts(&certs)) << "openssl failed; see " << certs.dir << "/openssl.log";
  constexpr char kToken[] = "adapter-stream-token-0123456789";
  StreamingLearner learner;
  ASSERT_TRUE(learner.publisher.Publish(MakeVersion(1)).ok());
  GrpcServerOptions options = ServerOptions();
  options.security.cert_chain_pem = dsm_test::TestCerts::Read(certs.server_crt);
  options.security.private_key_pem = dsm_test::TestCerts::Read(certs.server_key);
  options.security.token = kToken;
  GrpcServer server(options);
  server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  auto client = [&certs](const std::string& token) {
    ClientSecurity security;
    security.tls = true;
    security.root_ca_pem = dsm_test::TestCerts::Read(certs.ca_crt);
    security.token = token;
    return security;
  };
  Received wrong;
  auto wrong_sub = Subscribe(server.address(), &wrong, client("adapter-stream-token-012345678X"));
  Received right;
  auto right_sub = Subscribe(server.address(), &right, client(kToken));
  ASSERT_TRUE(right.WaitFor(1));
  EXPECT_FALSE(wrong.WaitFor(1, absl::Milliseconds(500)));
  EXPECT_GE(wrong_sub->connects(), 2);  // rejected and retried
  EXPECT_EQ(learner.streams.load(), 1);  // the wrong token never reached the handler
  wrong_sub->Stop();
  right_sub->Stop();
  std::error_code ignored;
  std::filesystem::remove_all(certs.dir, ignored);
}

// ------------------------------------------------------------ bulk transfers

// A learner serving WatchAdapters and, beside it, the bulk endpoint of the
// same publisher, offered to subscribers that accept it.
struct BulkLearner {
  StreamingLearner learner;
  AdapterBulkServer bulk{&learner.publisher, AdapterBulkServerOptions{}};
  GrpcServer server;

  explicit BulkLearner(GrpcServerOptions options = ServerOptions()) : server(std::move(options)) {
    EXPECT_TRUE(bulk.Start().ok());
    learner.bulk_endpoint = absl::StrCat("127.0.0.1:", bulk.port());
    server.RegisterService(&learner, v1::Learner::service_full_name());
    EXPECT_TRUE(server.Start().ok());
  }
};

TEST(AdapterBulk, VersionsArriveBitIdenticalInOrderAndLateSubscriberGetsNewestFirst) {
  BulkLearner l;
  Received early;
  auto early_sub = Subscribe(l.server.address(), &early);
  for (uint64_t v = 1; v <= 3; ++v) {
    ASSERT_TRUE(l.learner.publisher.Publish(MakeVersion(v, 3000)).ok());  // 576 KB, F32 and BF16
    ASSERT_TRUE(early.WaitFor(v));
  }
  Received late;
  auto late_sub = Subscribe(l.server.address(), &late);
  ASSERT_TRUE(late.WaitFor(3));
  ASSERT_TRUE(l.learner.publisher.Publish(MakeVersion(4, 3000)).ok());
  ASSERT_TRUE(early.WaitFor(4));
  ASSERT_TRUE(late.WaitFor(4));
  {
    absl::MutexLock lock(&early.mu);
    EXPECT_EQ(early.versions, (std::vector<uint64_t>{1, 2, 3, 4}));
    for (std::size_t i = 0; i < early.data.size(); ++i) {
      ExpectSameTensors(MakeVersion(i + 1, 3000), early.data[i]);
      EXPECT_EQ(early.data[i].learner_step, (i + 1) * 10);
      EXPECT_EQ(early.data[i].adapter_config_json, R"({"r": 4, "lora_alpha": 8})");
    }
  }
  {
    absl::MutexLock lock(&late.mu);
    EXPECT_EQ(late.versions, (std::vector<uint64_t>{3, 4}));
    ExpectSameTensors(MakeVersion(4, 3000), late.data.back());
  }
  EXPECT_EQ(early_sub->bulk_versions(), 4);
  EXPECT_EQ(early_sub->in_band_versions(), 0);
  EXPECT_EQ(late_sub->bulk_versions(), 2);
  EXPECT_TRUE(Eventually([&] { return l.bulk.versions_sent() == 6; })) << l.bulk.versions_sent();
  EXPECT_EQ(l.learner.versions_sent.load(), 0);  // no chunks went on the streams
  EXPECT_EQ(early_sub->connects(), 1);
}

TEST(AdapterBulk, CorruptByteIsRejectedAndReRequested) {
  BulkLearner l;
  ASSERT_TRUE(l.learner.publisher.Publish(MakeVersion(1)).ok());
  l.bulk.CorruptNextTransfers(1);
  Received received;
  auto sub = Subscribe(l.server.address(), &received);
  ASSERT_TRUE(received.WaitFor(1));
  EXPECT_EQ(sub->rejected_versions(), 1);
  EXPECT_EQ(sub->bulk_versions(), 1);
  EXPECT_GE(l.learner.streams.load(), 2);  // the stream was reopened to ask again
  EXPECT_TRUE(Eventually([&] { return l.bulk.versions_sent() == 2; })) << l.bulk.versions_sent();
  absl::MutexLock lock(&received.mu);
  EXPECT_EQ(received.versions, std::vector<uint64_t>{1});
  ExpectSameTensors(MakeVersion(1), received.data[0]);
}

TEST(AdapterBulk, UnreachableEndpointFallsBackToChunksWhileTheStreamGoesOn) {
  StreamingLearner learner;
  learner.bulk_endpoint = absl::StrCat("127.0.0.1:", dsm_test::FreePort());  // nothing listens there
  GrpcServer server(ServerOptions());
  server.RegisterService(&learner, v1::Learner::service_full_name());
  ASSERT_TRUE(server.Start().ok());
  Received received;
  auto sub = Subscribe(server.address(), &received);
  for (uint64_t v = 1; v <= 2; ++v) {
    ASSERT_TRUE(learner.publisher.Publish(MakeVersion(v)).ok());
    ASSERT_TRUE(received.WaitFor(v));
  }
  EXPECT_EQ(sub->bulk_fallbacks(), 2);
  EXPECT_EQ(sub->in_band_versions(), 2);
  EXPECT_EQ(sub->bulk_versions(), 0);
  EXPECT_EQ(sub->connects(), 1);  // the main stream never dropped
  // Each version in chunks, on a fallback call (a fallback call that starts after the next version
  // is published may send that one too); the server counts one when its write completes, which
  // may come after the subscriber already holds it.
  EXPECT_TRUE(Eventually([&] { return learner.versions_sent.load() >= 2; })) << learner.versions_sent.load();
  absl::MutexLock lock(&received.mu);
  EXPECT_EQ(received.versions, (std::vector<uint64_t>{1, 2}));
  ExpectSameTensors(MakeVersion(2), received.data.back());
}

TEST(AdapterBulk, ClientReusesTheBufferOfAVersionNoLongerHeld) {
  AdapterPublisher publisher;
  AdapterBulkServer bulk(&publisher, AdapterBulkServerOptions{});
  ASSERT_TRUE(bulk.Start().ok());
  AdapterBulkClient client;
  auto fetch = [&](uint64_t version) {
    EXPECT_TRUE(publisher.Publish(MakeVersion(version)).ok());
    v1::AdapterChunk offer = publisher.latest(v1::ADAPTER_ROLE_GENERATOR)->bulk_offer;
    offer.mutable_bulk()->set_endpoint(absl::StrCat("127.0.0.1:", bulk.port()));
    return client.Fetch(offer);
  };
  absl::StatusOr<AdapterVersionData> one = fetch(1);
  ASSERT_TRUE(one.ok()) << one.status();
  ExpectSameTensors(MakeVersion(1), *one);
  const void* first = one->tensors.begin()->second.data_ptr();
  absl::StatusOr<AdapterVersionData> two = fetch(2);  // version 1 still held: a new buffer
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_NE(two->tensors.begin()->second.data_ptr(), first);
  *one = AdapterVersionData();  // version 1 dropped: its buffer is free
  absl::StatusOr<AdapterVersionData> three = fetch(3);
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->tensors.begin()->second.data_ptr(), first);
  ExpectSameTensors(MakeVersion(3), *three);
  ExpectSameTensors(MakeVersion(2), *two);  // untouched by the reuse

  // A ticket the endpoint does not know: NotFound, and the connection serves on.
  v1::AdapterChunk stale = publisher.latest(v1::ADAPTER_ROLE_GENERATOR)->bulk_offer;
  stale.mutable_bulk()->set_endpoint(absl::StrCat("127.0.0.1:", bulk.port()));
  stale.mutable_bulk()->set_ticket(std::string(16, 'x'));
  EXPECT_EQ(client.Fetch(stale).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fetch(4).ok());
  EXPECT_TRUE(Eventually([&] { return bulk.versions_sent() == 4; })) << bulk.versions_sent();
}

TEST(AdapterBulk, ConnectionTheEndpointClosedWhileIdleIsReplaced) {
  AdapterPublisher publisher;
  AdapterBulkServerOptions options;
  options.idle_timeout = absl::Milliseconds(50);
  AdapterBulkServer bulk(&publisher, options);
  ASSERT_TRUE(bulk.Start().ok());
  AdapterBulkClient client;
  for (uint64_t version = 1; version <= 2; ++version) {
    ASSERT_TRUE(publisher.Publish(MakeVersion(version)).ok());
    v1::AdapterChunk offer = publisher.latest(v1::ADAPTER_ROLE_GENERATOR)->bulk_offer;
    offer.mutable_bulk()->set_endpoint(absl::StrCat("127.0.0.1:", bulk.port()));
    absl::StatusOr<AdapterVersionData> data = client.Fetch(offer);
    ASSERT_TRUE(data.ok()) << data.status();
    ExpectSameTensors(MakeVersion(version), *data);
    absl::SleepFor(absl::Milliseconds(300));  // the endpoint drops the idle connection
  }
}

TEST(AdapterBulk, OfferedOnlyWithoutTls) {
  DsmConfig config;
  config.learner.bulk_port = 0;
  AdapterPublisher publisher;
  absl::StatusOr<std::unique_ptr<AdapterBulkServer>> plain = StartAdapterBulkServer(config, &publisher, nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_NE(*plain, nullptr);
  EXPECT_GT((*plain)->port(), 0);
  config.server.tls_cert_file = "server.crt";
  absl::StatusOr<std::unique_ptr<AdapterBulkServer>> tls = StartAdapterBulkServer(config, &publisher, nullptr);
  ASSERT_TRUE(tls.ok());
  EXPECT_EQ(*tls, nullptr);
  config.server.tls_cert_file.clear();
  config.learner.bulk_transfer = false;
  absl::StatusOr<std::unique_ptr<AdapterBulkServer>> off = StartAdapterBulkServer(config, &publisher, nullptr);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(*off, nullptr);
  config.learner.bulk_transfer = true;
  config.learner.bulk_port = (*plain)->port();  // taken
  absl::StatusOr<std::unique_ptr<AdapterBulkServer>> taken = StartAdapterBulkServer(config, &publisher, nullptr);
  EXPECT_THAT(std::string(taken.status().message()), testing::StartsWith("learner.bulk_port: "));
}

TEST(AdapterBulk, TlsSubscriberNeverAsksForBulk) {
  dsm_test::TestCerts certs;
  ASSERT_TRUE(dsm_test::MakeTestCerts(&certs)) << "openssl failed; see " << certs.dir << "/openssl.log";
  GrpcServerOptions options = ServerOptions();
  options.security.cert_chain_pem = dsm_test::TestCerts::Read(certs.server_crt);
  options.security.private_key_pem = dsm_test::TestCerts::Read(certs.server_key);
  BulkLearner l(options);  // would offer bulk to any request that accepts it
  ASSERT_TRUE(l.learner.publisher.Publish(MakeVersion(1)).ok());
  ClientSecurity security;
  security.tls = true;
  security.root_ca_pem = dsm_test::TestCerts::Read(certs.ca_crt);
  Received received;
  auto sub = Subscribe(l.server.address(), &received, security);
  ASSERT_TRUE(received.WaitFor(1));
  EXPECT_EQ(sub->in_band_versions(), 1);
  EXPECT_EQ(sub->bulk_versions(), 0);
  EXPECT_EQ(l.bulk.versions_sent(), 0);
  sub->Stop();
  std::error_code ignored;
  std::filesystem::remove_all(certs.dir, ignored);
}

}  // namespace
}  // namespace dsm
