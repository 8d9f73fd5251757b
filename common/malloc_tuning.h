// Keeps glibc's malloc from handing large freed buffers back to the kernel
// just before they are needed again. Called once, first thing, by every dsm
// binary's main().
//
// Training and sampling allocate and free the same large buffers every step,
// and a received adapter version is many buffers of 64 KB to 4 MB (gRPC's
// read buffers, then the version's tensors), all freed when the version is
// replaced. glibc serves a buffer over 128 KB (its starting threshold) with a
// fresh mmap and gives freed memory back early (each thread's heap is
// trimmed, or dropped whole, once a few hundred KB at its top are free), so
// every step and every version writes to fresh pages. Measured: ~20% of a
// tiny model's training step in mmap/munmap and page faults; with a 40 MB
// adapter streamed to 8 subscribers in one process (BENCHMARKS.md, "Adapter
// streaming"), 8,700 to 32,000 page faults per version at roughly 20 µs each
// on the virtual machine it ran on, and ~0 once the heaps have grown with
// these settings.
//
// RetainFreedMemory() sets M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to 1 GiB
// (buffers up to that come from the heaps, which reuse memory) and M_TOP_PAD
// to 256 MiB (a heap keeps that much freed memory mapped). The cost: a
// process keeps up to 256 MiB of freed memory per malloc arena. No effect with
// another allocator or C library. Thread-safe; only the first call acts.
#ifndef DSM_COMMON_MALLOC_TUNING_H_
#define DSM_COMMON_MALLOC_TUNING_H_

namespace dsm {

void RetainFreedMemory();

}  // namespace dsm

#endif  // DSM_COMMON_MALLOC_TUNING_H_
