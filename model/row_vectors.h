// Internal to model/row_kernels.cc and model/cached_attention.cc: eight-float vectors (GCC's
// vector extension: AVX registers in functions compiled for AVX2, SSE pairs otherwise), their
// loads and a fixed-order lane sum, and the CPU check that picks the AVX2 + FMA build of a
// kernel. Kernel bodies are ROW_INLINE templates instantiated twice, in a ROW_AVX2 function and
// in a plain one, so one source gives both.
#ifndef DSM_MODEL_ROW_VECTORS_H_
#define DSM_MODEL_ROW_VECTORS_H_

#include <cstring>

#define ROW_INLINE static inline __attribute__((always_inline))
#define ROW_AVX2 __attribute__((target("avx2,fma")))

// The vectors never cross a call (the kernels are always inlined), so the ABI note GCC gives
// for passing them in plain x86-64 code does not apply, here or in the two files that include
// this one.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace dsm::row_vectors {

typedef float V8 __attribute__((vector_size(32)));

ROW_INLINE V8 Load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

ROW_INLINE void Store8(float* p, const V8& v) { std::memcpy(p, &v, sizeof(v)); }

// The sum of the lanes, always in this order.
ROW_INLINE float Lanes(const V8& v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

// Whether this CPU runs the ROW_AVX2 builds (checked once).
inline bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace dsm::row_vectors

#endif  // DSM_MODEL_ROW_VECTORS_H_
