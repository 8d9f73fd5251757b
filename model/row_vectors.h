// Internal to model/row_kernels.cc and model/cached_attention.cc: eight-float vectors (GCC's
// vector extension: AVX registers in functions compiled for AVX2, SSE pairs otherwise), their
// loads and a fixed-order lane sum, and the CPU check that picks the AVX2 + FMA build of a
// kernel. Kernel bodies are ROW_INLINE templates instantiated twice, in a ROW_AVX2 function and
// in a plain one, so one source gives both.
#ifndef DSM_MODEL_ROW_VECTORS_H_
#define DSM_MODEL_ROW_VECTORS_H_

#include <cstdint>
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

typedef int I8 __attribute__((vector_size(32)));

// Up to 8 floats from p, the lanes past n zero.
ROW_INLINE V8 LoadPart(const float* p, int64_t n) {
  V8 v{};
  std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
  return v;
}

ROW_INLINE void StorePart(float* p, const V8& v, int64_t n) { std::memcpy(p, &v, static_cast<size_t>(n) * sizeof(float)); }

// e^x lane by lane (Cephes' expf: x = n·ln 2 + r, a degree-5 polynomial in r, 2^n from the
// exponent bits; within 2 ulp of libm), 0 below -87.34 (e^x is not a normal float there).
// LibTorch's exp goes through a vectorised function for most of a tensor and libm for the
// last few elements, so an element's bits depend on where it sits; every element takes this
// same function, whatever its place.
ROW_INLINE V8 Exp8(const V8& in) {
  const I8 under = in < -87.3365447505531f;
  V8 x = in > 88.3762626647949f ? V8{} + 88.3762626647949f : in;
  x = under ? V8{} - 87.3365447505531f : x;
  const V8 fx = x * 1.44269504088896341f + 0.5f;
  V8 t = __builtin_convertvector(__builtin_convertvector(fx, I8), V8);
  t = t > fx ? t - 1.0f : t;  // floor
  x = x - t * 0.693359375f;
  x = x - t * -2.12194440e-4f;
  const V8 z = x * x;
  V8 y = V8{} + 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.0f;
  const I8 bits = (__builtin_convertvector(t, I8) + 127) << 23;
  V8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return under ? V8{} : y * scale;
}

// Whether this CPU runs the ROW_AVX2 builds (checked once).
inline bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

}  // namespace dsm::row_vectors

#endif  // DSM_MODEL_ROW_VECTORS_H_
