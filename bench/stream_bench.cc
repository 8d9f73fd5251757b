// dsm_stream_bench: adapter streaming from one learner to 8 samplers over
// loopback, against a plain TCP copy of the same bytes (BENCHMARKS.md,
// "Adapter streaming").
//
//   dsm_stream_bench [--subscribers 8] [--rounds 10] [--rank 4] [--what bulk,grpc,tcp]
//                    [--distinct-connections] [--flat]
//
// The adapter: the PEFT LoRA adapter of a Llama-2-7B-shaped model (hidden
// 4096, MLP 11008, 32 layers) with r = 4 on all seven linears of every layer:
// 448 fp32 tensors, 9,994,240 parameters = 39.98 MB (random values; shapes and
// names as PEFT writes them).
//
// "bulk" (ours, the default path): a GrpcServer (common/grpc_server.h,
// default options) serving Learner.WatchAdapters (a raw method) from an
// AdapterPublisher through the WatchAdapters reactor, and the learner's
// AdapterBulkServer beside it, exactly as `dsm serve learner` wires them
// without TLS: each version goes on every stream as one bulk offer, and 8
// AdapterSubscribers (default options: each its own channel made by
// MakeChannel with default ChannelOptions, its own thread, its own TCP
// connection to the bulk endpoint) receive the bytes straight into the
// tensors, checking the CRC-32C of every tensor.
// "grpc" (ours, the in-band path: with TLS, or learner.bulk_transfer off):
// the same, without the bulk endpoint: every stream writes the same
// pre-serialised chunks and the subscribers reassemble them.
// On both, version 1 is published and received first (connections up,
// buffers warm). Then per round: a new version (new tensors) is published, and
// the time runs from the Publish() call (which encodes the chunks once, CRC
// included) until every subscriber's callback has received that version.
// Aggregate GB/s = subscribers × bytes / time.
//
// "tcp" (the baseline): the same bytes copied plainly: one sender thread
// writes the same buffer to 8 loopback TCP connections (non-blocking sockets,
// poll(2), round-robin send(2) of up to 1 MiB each), 8 receiver threads
// recv(2) it into buffers of their own. The connections are set up once; per
// round the time runs from the start signal until every receiver has every
// byte.
//
// Prints one JSON line per round and side; the sides take turns round by
// round (which one goes first rotates, too), so that all see the same machine
// load.
// --distinct-connections (an experiment, not the shipped configuration) gives
// every subscriber its own TCP connection: by default gRPC's global subchannel
// pool puts all 8 channels to the same address with the same arguments on one.
// --flat (an experiment too) sends the same bytes as 10 tensors instead of 448.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/malloc_tuning.h"
#include "CLI/CLI.hpp"
#include "common/grpc_server.h"
#include "model/lora.h"
#include "nlohmann/json.hpp"
#include "services/adapters/adapter_bulk_server.h"
#include "services/adapters/adapter_publisher.h"
#include "services/adapters/adapter_subscriber.h"
#include "services/adapters/watch_adapters_reactor.h"
#include "tests/integration/publishing_learner.h"

namespace dsm {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "dsm_stream_bench: " << what << "\n";
  std::exit(1);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// What the whole process (every thread: server, subscribers, gRPC's own
// threads; or sender and receivers) has used so far: user + system CPU
// seconds, page faults (each a first touch of memory the kernel must map: not
// free on a virtual machine) and context switches.
struct Usage {
  double cpu_seconds = 0;
  int64_t page_faults = 0;
  int64_t context_switches = 0;

  static Usage Now() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    Usage now;
    now.cpu_seconds = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                      1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    now.page_faults = u.ru_minflt + u.ru_majflt;
    now.context_switches = u.ru_nvcsw + u.ru_nivcsw;
    return now;
  }
  Usage operator-(const Usage& o) const {
    return {cpu_seconds - o.cpu_seconds, page_faults - o.page_faults, context_switches - o.context_switches};
  }
  json ToJson() const {
    return {{"cpu_seconds", cpu_seconds}, {"page_faults", page_faults}, {"context_switches", context_switches}};
  }
};

void Emit(json obj) { std::cout << obj.dump() << std::endl; }

// The LoRA tensors of a Llama-2-7B-shaped model, r on all seven linears; or,
// with `flat` (an experiment on per-message costs), the same number of
// parameters as 10 equal tensors of under 4 MiB each: 10 chunks, not 448.
AdapterVersionData MakeAdapter(uint64_t version, int64_t r, bool flat = false) {
  constexpr int64_t kHidden = 4096;
  constexpr int64_t kMlp = 11008;
  constexpr int64_t kLayers = 32;
  AdapterVersionData data;
  data.role = v1::ADAPTER_ROLE_GENERATOR;
  data.version = version;
  data.learner_step = version;
  data.adapter_config_json = R"({"peft_type": "LORA", "r": )" + std::to_string(r) + R"(, "lora_alpha": )" +
                             std::to_string(2 * r) + R"(, "target_modules": "all-linear"})";
  data.published_at = absl::Now();
  torch::manual_seed(version);
  if (flat) {
    const int64_t total = kLayers * r * (4 * 2 * kHidden + 3 * (kHidden + kMlp));
    for (int i = 0; i < 10; ++i) data.tensors["flat." + std::to_string(i)] = torch::randn({total / 10});
    return data;
  }
  for (int64_t layer = 0; layer < kLayers; ++layer) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const auto target = static_cast<LoraTarget>(t);
      int64_t out = kHidden;
      int64_t in = kHidden;
      if (target == LoraTarget::kGate || target == LoraTarget::kUp) out = kMlp;
      if (target == LoraTarget::kDown) in = kMlp;
      data.tensors[LoraTensorName(layer, target, "lora_A")] = torch::randn({r, in});
      data.tensors[LoraTensorName(layer, target, "lora_B")] = torch::randn({out, r});
    }
  }
  return data;
}

uint64_t TensorBytes(const AdapterVersionData& data) {
  uint64_t n = 0;
  for (const auto& [name, t] : data.tensors) n += static_cast<uint64_t>(t.numel() * t.element_size());
  return n;
}

// ------------------------------------------------------------------ gRPC side

// The learner's side: WatchAdapters served raw from an AdapterPublisher, the
// way LearnerService serves it (the tests' PublishingLearner), offering the
// bulk endpoint when it has one.
using StreamingLearner = dsm_test::PublishingLearner;

// Counts, per version, the subscribers that received it.
struct Arrivals {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, int> count;
  std::map<uint64_t, Clock::time_point> last;
  int64_t tensors_checked = 0;

  void Add(const AdapterVersionData& d) {
    std::lock_guard<std::mutex> lock(mu);
    ++count[d.version];
    last[d.version] = Clock::now();
    tensors_checked += static_cast<int64_t>(d.tensors.size());
    cv.notify_all();
  }
  bool Wait(uint64_t version, int n, Clock::time_point* at) {
    std::unique_lock<std::mutex> lock(mu);
    const bool ok = cv.wait_for(lock, std::chrono::seconds(120), [&] { return count[version] >= n; });
    if (ok) *at = last[version];
    return ok;
  }
};

class GrpcSide {
 public:
  // `bulk`: the learner runs its bulk endpoint (the default path); otherwise
  // versions go in chunks on the streams.
  GrpcSide(int subscribers, int64_t r, bool distinct_connections, bool flat, bool bulk)
      : r_(r), flat_(flat), subscribers_(subscribers) {
    GrpcServerOptions o;
    o.port = 0;
    o.drain = absl::ZeroDuration();
    o.shutdown_grace = absl::Milliseconds(200);
    server_ = std::make_unique<GrpcServer>(o);
    server_->RegisterService(&learner_, v1::Learner::service_full_name());
    if (absl::Status s = server_->Start(); !s.ok()) Die(std::string(s.ToString()));
    if (bulk) {
      bulk_ = std::make_unique<AdapterBulkServer>(&learner_.publisher, AdapterBulkServerOptions{});
      if (absl::Status s = bulk_->Start(); !s.ok()) Die(std::string(s.ToString()));
      learner_.bulk_endpoint = "127.0.0.1:" + std::to_string(bulk_->port());
    }
    for (int i = 0; i < subscribers; ++i) {
      AdapterSubscriberOptions so;
      so.learner_address = server_->address();
      so.roles = {v1::ADAPTER_ROLE_GENERATOR};
      so.subscriber_id = "bench-" + std::to_string(i);
      // Experiment: channels whose arguments differ (keep-alive by i ms) do not
      // share gRPC's global subchannel pool, so each subscriber gets its own
      // TCP connection instead of the 8 streams sharing one.
      if (distinct_connections) so.channel.keepalive_time += absl::Milliseconds(i);
      subs_.push_back(std::make_unique<AdapterSubscriber>(so, [this](AdapterVersionData d) { arrivals_.Add(d); }));
    }
    for (auto& s : subs_) s->Start();
    Clock::time_point unused;
    Publish(&unused, &unused);  // version 1: connect and warm up
  }

  ~GrpcSide() {
    for (auto& s : subs_) s->Stop();
    if (bulk_) bulk_->Stop();
    server_->Drain();
  }

  // Publishes the next version; returns the seconds until all hold it.
  double Round(double* encode_seconds, uint64_t* bytes) {
    Clock::time_point start, encoded;
    const double s = Publish(&start, &encoded);
    *encode_seconds = Seconds(start, encoded);
    *bytes = bytes_;
    return s;
  }

  // What the process used during the last Publish-to-all-received.
  const Usage& last_usage() const { return last_usage_; }

  int64_t tensors_checked() {
    std::lock_guard<std::mutex> lock(arrivals_.mu);
    return arrivals_.tensors_checked;
  }
  // A count summed over the subscribers (AdapterSubscriber::connects, ...).
  int64_t Total(int64_t (AdapterSubscriber::*count)() const) const {
    int64_t n = 0;
    for (const auto& s : subs_) n += ((*s).*count)();
    return n;
  }

 private:
  double Publish(Clock::time_point* start, Clock::time_point* encoded) {
    const uint64_t version = ++version_;
    AdapterVersionData data = MakeAdapter(version, r_, flat_);  // made before the clock starts
    bytes_ = TensorBytes(data);
    const Usage usage0 = Usage::Now();
    *start = Clock::now();
    if (absl::Status s = learner_.publisher.Publish(data); !s.ok()) Die(std::string(s.ToString()));
    *encoded = Clock::now();
    Clock::time_point done;
    if (!arrivals_.Wait(version, subscribers_, &done)) Die("version " + std::to_string(version) + " did not arrive");
    last_usage_ = Usage::Now() - usage0;
    return Seconds(*start, done);
  }

  int64_t r_;
  bool flat_;
  int subscribers_;
  StreamingLearner learner_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<AdapterBulkServer> bulk_;
  std::vector<std::unique_ptr<AdapterSubscriber>> subs_;
  Arrivals arrivals_;
  uint64_t version_ = 0;
  uint64_t bytes_ = 0;
  Usage last_usage_;
};

// ------------------------------------------------------------------ plain TCP

class TcpSide {
 public:
  TcpSide(int receivers, std::size_t bytes) : bytes_(bytes), payload_(bytes) {
    for (std::size_t i = 0; i < bytes; ++i) payload_[i] = static_cast<char>(i * 2654435761u >> 24);
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(listener, 64) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      Die("tcp listen failed");
    }
    for (int i = 0; i < receivers; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM, 0);
      if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("tcp connect failed");
      const int s = ::accept(listener, nullptr, nullptr);
      if (s < 0) Die("tcp accept failed");
      const int one = 1;
      ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ::fcntl(s, F_SETFL, ::fcntl(s, F_GETFL) | O_NONBLOCK);
      send_fds_.push_back(s);
      recv_fds_.push_back(c);
    }
    ::close(listener);
    for (int i = 0; i < receivers; ++i) {
      threads_.emplace_back([this, i] { Receive(i); });
    }
  }

  ~TcpSide() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++round_;
    }
    cv_.notify_all();
    for (int fd : send_fds_) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : threads_) t.join();
    for (int fd : send_fds_) ::close(fd);
    for (int fd : recv_fds_) ::close(fd);
  }

  // One round: every receiver gets all bytes once. Returns seconds.
  double Round() {
    const auto start = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = 0;
      ++round_;
    }
    cv_.notify_all();
    // One sender thread, round-robin over the non-blocking sockets.
    const std::size_t n = send_fds_.size();
    std::vector<std::size_t> sent(n, 0);
    std::vector<pollfd> fds(n);
    std::size_t finished = 0;
    while (finished < n) {
      for (std::size_t i = 0; i < n; ++i) {
        fds[i].fd = sent[i] < bytes_ ? send_fds_[i] : -1;
        fds[i].events = POLLOUT;
        fds[i].revents = 0;
      }
      if (::poll(fds.data(), n, 10000) <= 0) Die("tcp poll failed or stalled");
      for (std::size_t i = 0; i < n; ++i) {
        if (!(fds[i].revents & POLLOUT)) continue;
        const std::size_t want = std::min<std::size_t>(bytes_ - sent[i], 1 << 20);
        const ssize_t w = ::send(send_fds_[i], payload_.data() + sent[i], want, MSG_NOSIGNAL);
        if (w > 0) {
          sent[i] += static_cast<std::size_t>(w);
          if (sent[i] == bytes_) ++finished;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          Die(std::string("tcp send: ") + std::strerror(errno));
        }
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_ == static_cast<int>(n); });
    return Seconds(start, last_done_);
  }

 private:
  void Receive(int i) {
    std::vector<char> buffer(bytes_);
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return round_ != seen; });
        seen = round_;
        if (stop_) return;
      }
      std::size_t got = 0;
      while (got < bytes_) {
        const ssize_t r = ::recv(recv_fds_[static_cast<std::size_t>(i)], buffer.data() + got, bytes_ - got, 0);
        if (r <= 0) return;
        got += static_cast<std::size_t>(r);
      }
      if (std::memcmp(buffer.data() + bytes_ / 2, payload_.data() + bytes_ / 2, 64) != 0) Die("tcp: wrong bytes");
      std::lock_guard<std::mutex> lock(mu_);
      ++done_;
      last_done_ = Clock::now();
      cv_.notify_all();
    }
  }

  const std::size_t bytes_;
  std::vector<char> payload_;
  std::vector<int> send_fds_;
  std::vector<int> recv_fds_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t round_ = 0;
  int done_ = 0;
  bool stop_ = false;
  Clock::time_point last_done_;
};

int Main(int argc, char** argv) {
  int subscribers = 8;
  int rounds = 10;
  int64_t r = 4;
  std::string what = "bulk,grpc,tcp";
  int threads = 1;
  bool distinct_connections = false;
  bool flat = false;
  CLI::App app{"adapter streaming benchmark"};
  app.add_option("--subscribers", subscribers);
  app.add_option("--rounds", rounds);
  app.add_option("--rank", r, "LoRA r of the 7B-shaped adapter (4: 10.0M parameters)");
  app.add_option("--what", what, "bulk (default path), grpc (in-band chunks), tcp (plain copy)");
  app.add_option("--torch-threads", threads, "LibTorch intra-op threads (the subscribers' tensor copies)");
  app.add_flag("--distinct-connections", distinct_connections,
               "experiment: one gRPC TCP connection per subscriber (default: gRPC shares one)");
  app.add_flag("--flat", flat, "experiment: the same bytes as 10 tensors (10 chunks instead of 448)");
  CLI11_PARSE(app, argc, argv);
  at::set_num_threads(threads);
  spdlog::set_level(spdlog::level::warn);  // the server's start/stop lines would mix with the JSON

  const AdapterVersionData probe = MakeAdapter(0, r, flat);
  int64_t params = 0;
  for (const auto& [name, t] : probe.tensors) params += t.numel();
  const uint64_t bytes = TensorBytes(probe);
  auto chunks = EncodeAdapterVersion(probe);
  if (!chunks.ok()) Die(std::string(chunks.status().ToString()));
  uint64_t wire = 0;
  for (const auto& c : *chunks) wire += c.ByteSizeLong();
  Emit({{"kind", "adapter"}, {"params", params}, {"tensors", probe.tensors.size()}, {"bytes", bytes},
        {"chunks", chunks->size()}, {"wire_bytes", wire}, {"subscribers", subscribers}, {"lora_r", r},
        {"distinct_connections", distinct_connections}, {"flat", flat}});

  // The sides, in the order of round 0; each later round starts one further on.
  std::vector<std::string> sides;
  std::map<std::string, std::unique_ptr<GrpcSide>> streams;
  std::unique_ptr<TcpSide> tcp_side;
  for (const char* impl : {"bulk", "grpc", "tcp"}) {
    if (what.find(impl) == std::string::npos) continue;
    sides.push_back(impl);
    if (sides.back() == "tcp") {
      tcp_side = std::make_unique<TcpSide>(subscribers, bytes);
      tcp_side->Round();  // warm-up
    } else {
      streams[impl] = std::make_unique<GrpcSide>(subscribers, r, distinct_connections, flat, sides.back() == "bulk");
    }
  }
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t k = 0; k < sides.size(); ++k) {
      const std::string& impl = sides[(k + static_cast<std::size_t>(round)) % sides.size()];
      json line;
      if (impl == "tcp") {
        const Usage usage0 = Usage::Now();
        const double s = tcp_side->Round();
        line = {{"kind", "stream"}, {"impl", impl}, {"round", round}, {"seconds", s}, {"bytes", bytes},
                {"subscribers", subscribers}, {"gb_s", subscribers * static_cast<double>(bytes) / s / 1e9}};
        line.update((Usage::Now() - usage0).ToJson());
      } else {
        GrpcSide& side = *streams[impl];
        double encode = 0;
        uint64_t b = 0;
        const double s = side.Round(&encode, &b);
        line = {{"kind", "stream"}, {"impl", impl}, {"round", round}, {"seconds", s}, {"encode_seconds", encode},
                {"bytes", b}, {"subscribers", subscribers}, {"gb_s", subscribers * static_cast<double>(b) / s / 1e9}};
        line.update(side.last_usage().ToJson());
      }
      Emit(line);
    }
  }
  for (const auto& [impl, side] : streams) {
    Emit({{"kind", "stream_checks"}, {"impl", impl}, {"tensors_checked", side->tensors_checked()},
          {"rejected_versions", side->Total(&AdapterSubscriber::rejected_versions)},
          {"connects", side->Total(&AdapterSubscriber::connects)},
          {"bulk_versions", side->Total(&AdapterSubscriber::bulk_versions)},
          {"in_band_versions", side->Total(&AdapterSubscriber::in_band_versions)}});
  }
  return 0;
}

}  // namespace
}  // namespace dsm

int main(int argc, char** argv) {
  dsm::RetainFreedMemory();  // as the dsm binary does
  return dsm::Main(argc, argv);
}
