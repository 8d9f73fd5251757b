// RunConcurrently: blocking calls made side by side. The pipeline's scoring calls (a verifier
// group's meta-verifications, a generator group's verifications) are independent of each other,
// and the scoring services batch the requests they have at once (continuous batching), so
// issuing them together instead of one after another turns a chain of single-sequence decodes
// into a few batched ones.
#ifndef DSM_COMMON_CONCURRENT_CALLS_H_
#define DSM_COMMON_CONCURRENT_CALLS_H_

#include <cstddef>
#include <functional>

namespace dsm {

// Calls fn(0), ..., fn(n - 1), at most `max_concurrency` (>= 1; 0 is taken as 1) at a time on
// threads of their own (the caller's thread runs one share), and returns when every call has
// returned. `fn` must be safe to call from several threads at once and must not throw; each
// index is called exactly once, in no particular order.
void RunConcurrently(std::size_t n, std::size_t max_concurrency, const std::function<void(std::size_t)>& fn);

}  // namespace dsm

#endif  // DSM_COMMON_CONCURRENT_CALLS_H_
