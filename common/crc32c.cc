#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace dsm {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // reflected Castagnoli

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t ExtendPortable(uint32_t crc, const unsigned char* p, std::size_t n) {
  static const std::array<uint32_t, 256> table = MakeTable();
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
// The crc32 instruction takes 3 cycles but can start one per cycle: three
// independent streams over three consecutive blocks run at once, and their
// CRCs are combined by shifting each over the zeros of the blocks after it
// (a 32x32 GF(2) operator applied with four byte tables). Mark Adler's
// method (crc32c.c, zlib licence), written again here.
constexpr std::size_t kLongBlock = 8192;
constexpr std::size_t kShortBlock = 256;

using ShiftTable = std::array<std::array<uint32_t, 256>, 4>;

uint32_t Gf2Times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec != 0; vec >>= 1, ++mat) {
    if (vec & 1) sum ^= *mat;
  }
  return sum;
}

void Gf2Square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2Times(mat, mat[n]);
}

// The table that moves a CRC over `len` zero bytes (`len` a power of two).
ShiftTable MakeShiftTable(std::size_t len) {
  uint32_t even[32];
  uint32_t odd[32];
  odd[0] = kPolynomial;  // one zero bit
  for (int n = 1; n < 32; ++n) odd[n] = 1u << (n - 1);
  Gf2Square(even, odd);  // two zero bits
  Gf2Square(odd, even);  // four
  const uint32_t* op = nullptr;
  for (;;) {  // eight zero bits (one byte) in even, then 2, 4, ... bytes
    Gf2Square(even, odd);
    len >>= 1;
    if (len == 0) {
      op = even;
      break;
    }
    Gf2Square(odd, even);
    len >>= 1;
    if (len == 0) {
      op = odd;
      break;
    }
  }
  ShiftTable table{};
  for (uint32_t n = 0; n < 256; ++n) {
    for (int k = 0; k < 4; ++k) table[k][n] = Gf2Times(op, n << (8 * k));
  }
  return table;
}

uint64_t Shift(const ShiftTable& t, uint64_t crc) {
  return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^ t[3][(crc >> 24) & 0xFF];
}

__attribute__((target("sse4.2"))) uint64_t Word(uint64_t crc, const unsigned char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return _mm_crc32_u64(crc, word);
}

// Three streams over 3 x `block` bytes at a time.
__attribute__((target("sse4.2"))) uint64_t ThreeWay(uint64_t crc0, const unsigned char** p, std::size_t* n,
                                                     std::size_t block, const ShiftTable& shift) {
  while (*n >= 3 * block) {
    uint64_t crc1 = 0;
    uint64_t crc2 = 0;
    const unsigned char* q = *p;
    const unsigned char* const end = q + block;
    do {
      crc0 = Word(crc0, q);
      crc1 = Word(crc1, q + block);
      crc2 = Word(crc2, q + 2 * block);
      q += 8;
    } while (q < end);
    crc0 = Shift(shift, crc0) ^ crc1;
    crc0 = Shift(shift, crc0) ^ crc2;
    *p += 3 * block;
    *n -= 3 * block;
  }
  return crc0;
}

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const unsigned char* p,
                                                           std::size_t n) {
  static const ShiftTable long_shift = MakeShiftTable(kLongBlock);
  static const ShiftTable short_shift = MakeShiftTable(kShortBlock);
  uint64_t c = ~crc & 0xFFFFFFFFu;
  c = ThreeWay(c, &p, &n, kLongBlock, long_shift);
  c = ThreeWay(c, &p, &n, kShortBlock, short_shift);
  while (n >= 8) {
    c = Word(c, p);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --n;
  }
  return ~c32;
}

bool HasSse42() {
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_SSE4_2) != 0;
}
#endif

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hardware = HasSse42();
  if (hardware) return ExtendHardware(crc, p, size);
#endif
  return ExtendPortable(crc, p, size);
}

}  // namespace dsm
