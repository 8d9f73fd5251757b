// Keeps glibc's malloc from handing the memory of one adapter version back to
// the kernel just before the next version needs it again.
//
// A received version is many buffers of 64 KB to 4 MB (gRPC's read buffers,
// then the version's tensors), all freed when the version is replaced. glibc
// serves a buffer over 128 KB (its starting threshold) with a fresh mmap, and
// gives freed memory back early (each thread's heap is trimmed, or dropped
// whole, once a few hundred KB at its top are free): every version then
// writes to fresh pages. Measured with a 40 MB adapter streamed to 8
// subscribers in one process (BENCHMARKS.md, "Adapter streaming"): ~32,000
// page faults per version, at ~20 µs each on the virtual machine it ran on
// most of the stream's CPU time; with these settings ~2,000-4,000.
//
// RetainMemoryForAdapterStreaming() sets, once per process: M_MMAP_THRESHOLD
// 32 MiB (buffers up to that come from the heaps, which reuse memory; glibc's
// own threshold grows to this at most) and M_TOP_PAD 64 MiB (a heap keeps up
// to that much freed memory mapped, for the next version). The cost: a
// process keeps up to 64 MiB of freed memory per malloc arena. No effect
// with another allocator or C library. Thread-safe.
#ifndef DSM_SERVICES_ADAPTERS_MALLOC_TUNING_H_
#define DSM_SERVICES_ADAPTERS_MALLOC_TUNING_H_

namespace dsm {

void RetainMemoryForAdapterStreaming();

}  // namespace dsm

#endif  // DSM_SERVICES_ADAPTERS_MALLOC_TUNING_H_
