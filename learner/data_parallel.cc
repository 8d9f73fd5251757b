#include "learner/data_parallel.h"

// Debian's LibTorch is built with Gloo but does not define USE_C10D_GLOO for
// its users; the Gloo headers come from libgloo-dev.
#if __has_include(<gloo/context.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define DSM_HAVE_GLOO 1
#else
#define DSM_HAVE_GLOO 0
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <exception>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dsm {
namespace {

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Runs `fn`, turning LibTorch / Gloo exceptions into a status naming `what`.
template <typename Fn>
absl::Status Guard(const std::string& what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  }
  return absl::OkStatus();
}

// Groups `tensors` by dtype (in order of first appearance, identical on every
// rank) and runs `op` on one flat buffer per dtype, copying the result back.
absl::Status Flattened(std::vector<torch::Tensor>& tensors,
                       const std::function<void(torch::Tensor&)>& op) {
  std::vector<std::pair<torch::ScalarType, std::vector<size_t>>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i];
    if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat("tensor ", i, " is undefined"));
    if (!t.device().is_cpu() && !t.device().is_cuda()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", i, " is on ", t.device().str()));
    }
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == t.scalar_type(); });
    if (it == groups.end()) {
      groups.push_back({t.scalar_type(), {i}});
    } else {
      it->second.push_back(i);
    }
  }
  for (auto& [dtype, indices] : groups) {
    std::vector<torch::Tensor> flat_parts;
    flat_parts.reserve(indices.size());
    for (size_t i : indices) flat_parts.push_back(tensors[i].detach().reshape({-1}));
    torch::Tensor flat = torch::cat(flat_parts);
    op(flat);
    int64_t offset = 0;
    torch::NoGradGuard no_grad;
    for (size_t i : indices) {
      const int64_t n = tensors[i].numel();
      tensors[i].detach().copy_(flat.narrow(0, offset, n).view(tensors[i].sizes()));
      offset += n;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DataParallelOptions::Validate() const {
  if (world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world_size: ", world_size, " must be >= 1"));
  }
  if (rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank: ", rank, " is outside [0, ", world_size, ")"));
  }
  if (backend != "gloo" && backend != "nccl") {
    return absl::InvalidArgumentError(absl::StrCat("backend: \"", backend, "\" is not gloo or nccl"));
  }
  if (timeout.count() <= 0) return absl::InvalidArgumentError("timeout: must be > 0");
  if (world_size > 1) {
    auto address = ParseHostPort(rendezvous_address);
    if (!address.ok()) return address.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& address) {
  const auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous_address: \"", address, "\" ", why, " (want host:port)"));
  };
  std::string host;
  std::string port_text;
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return bad("has a bad IPv6 host");
    }
    host = address.substr(1, close - 1);
    port_text = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) return bad("has no port");
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  if (host.empty()) return bad("has no host");
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) return bad("has a bad port");
  return std::make_pair(host, static_cast<uint16_t>(port));
}

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Create(const DataParallelOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  std::unique_ptr<DataParallel> dp(new DataParallel(options));
  if (options.world_size == 1) return dp;
  auto [host, port] = *ParseHostPort(options.rendezvous_address);
  c10d::TCPStoreOptions store_options;
  store_options.port = port;
  store_options.isServer = options.rank == 0;
  store_options.numWorkers = static_cast<size_t>(options.world_size);
  store_options.waitWorkers = false;  // the process group's rendezvous waits instead
  store_options.timeout = options.timeout;
  c10::intrusive_ptr<c10d::Store> store;
  absl::Status s = Guard(absl::StrCat("rank ", options.rank, ": TCPStore at ", options.rendezvous_address), [&] {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(host, store_options);
    if (options.rank == 0) dp->store_port_ = tcp->getPort();
    store = tcp;
  });
  if (!s.ok()) return s;
  if (s = dp->Join(store); !s.ok()) return s;
  return dp;
}

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::CreateWithStore(
    const c10::intrusive_ptr<c10d::Store>& store, const DataParallelOptions& options) {
  DataParallelOptions o = options;
  if (o.world_size > 1 && !ParseHostPort(o.rendezvous_address).ok()) o.rendezvous_address = "127.0.0.1:0";
  if (absl::Status s = o.Validate(); !s.ok()) return s;
  if (!store && o.world_size > 1) return absl::InvalidArgumentError("store: null");
  std::unique_ptr<DataParallel> dp(new DataParallel(o));
  if (o.world_size == 1) return dp;
  if (absl::Status s = dp->Join(store); !s.ok()) return s;
  return dp;
}

DataParallel::~DataParallel() = default;

absl::Status DataParallel::Join(const c10::intrusive_ptr<c10d::Store>& store) {
  store_ = store;
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("dsm/learner/", store);
  const std::string what = absl::StrCat("rank ", options_.rank, "/", options_.world_size, ": joining the ",
                                        options_.backend, " process group");
  if (options_.backend == "nccl") {
#ifdef USE_C10D_NCCL
    return Guard(what, [&] {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = options_.timeout;
      group_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, options_.rank, options_.world_size,
                                                           nccl_options);
    });
#else
    return absl::UnimplementedError(
        absl::StrCat(what, ": this build has no NCCL (a CUDA LibTorch built with USE_C10D_NCCL)"));
#endif
  }
#if DSM_HAVE_GLOO
  return Guard(what, [&] {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options_.timeout);
    std::string local = options_.local_address;
    if (local.empty()) {
      auto address = ParseHostPort(options_.rendezvous_address);
      if (address.ok() && IsLoopback(address->first)) local = "127.0.0.1";
    }
    gloo_options->devices.push_back(local.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                                  : c10d::ProcessGroupGloo::createDeviceForHostname(local));
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, options_.rank, options_.world_size,
                                                         gloo_options);
  });
#else
  return absl::UnimplementedError(
      absl::StrCat(what, ": this build has no Gloo headers (install libgloo-dev and rebuild)"));
#endif
}

torch::Tensor DataParallel::OnGroupDevice(const torch::Tensor& t) const {
  // NCCL reduces CUDA tensors only (the current device); Gloo takes CPU tensors.
  if (options_.backend == "nccl" && !t.is_cuda()) return t.to(torch::Device(torch::kCUDA));
  if (options_.backend == "gloo" && !t.is_cpu()) return t.cpu();
  return t;
}

absl::Status DataParallel::AllReduceSum(std::vector<torch::Tensor>& tensors) {
  if (options_.world_size == 1 || tensors.empty()) return absl::OkStatus();
  absl::Status inner;
  absl::Status s = Guard("all-reduce", [&] {
    inner = Flattened(tensors, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> one = {OnGroupDevice(flat)};
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      opts.timeout = options_.timeout;
      group_->allreduce(one, opts)->wait();
      if (!one[0].is_same(flat)) flat.copy_(one[0]);
    });
  });
  return s.ok() ? inner : s;
}

absl::Status DataParallel::AllReduceGradients(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  grads.reserve(params.size());
  for (const torch::Tensor& p : params) {
    torch::Tensor& grad = const_cast<torch::Tensor&>(p).mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(p);
    grads.push_back(grad);
  }
  return AllReduceSum(grads);
}

absl::Status DataParallel::Broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (root < 0 || root >= options_.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " is not a rank"));
  }
  if (options_.world_size == 1 || tensors.empty()) return absl::OkStatus();
  absl::Status inner;
  absl::Status s = Guard("broadcast", [&] {
    inner = Flattened(tensors, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> one = {OnGroupDevice(flat)};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      opts.timeout = options_.timeout;
      group_->broadcast(one, opts)->wait();
      if (!one[0].is_same(flat)) flat.copy_(one[0]);
    });
  });
  return s.ok() ? inner : s;
}

absl::StatusOr<std::string> DataParallel::BroadcastString(const std::string& value, int root) {
  if (options_.world_size == 1) return value;
  std::vector<torch::Tensor> length = {torch::tensor({static_cast<int64_t>(value.size())}, torch::kLong)};
  if (absl::Status s = Broadcast(length, root); !s.ok()) return s;
  const int64_t n = length[0].item<int64_t>();
  if (n == 0) return std::string();
  std::vector<torch::Tensor> bytes = {torch::zeros({n}, torch::kUInt8)};
  if (options_.rank == root) std::memcpy(bytes[0].data_ptr(), value.data(), value.size());
  if (absl::Status s = Broadcast(bytes, root); !s.ok()) return s;
  return std::string(static_cast<const char*>(bytes[0].data_ptr()), static_cast<size_t>(n));
}

absl::Status DataParallel::Barrier() {
  if (options_.world_size == 1) return absl::OkStatus();
  return Guard("barrier", [&] {
    c10d::BarrierOptions opts;
    opts.timeout = options_.timeout;
    group_->barrier(opts)->wait();
  });
}

}  // namespace dsm
