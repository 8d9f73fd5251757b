#include "common/concurrent_calls.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace dsm {

void RunConcurrently(std::size_t n, std::size_t max_concurrency, const std::function<void(std::size_t)>& fn) {
  if (n == 0) return;
  const std::size_t workers = std::min(n, std::max<std::size_t>(1, max_concurrency));
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> threads;
  threads.reserve(workers - 1);
  for (std::size_t t = 1; t < workers; ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
}

}  // namespace dsm
