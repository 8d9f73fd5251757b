// CRC-32C (Castagnoli), the checksum of every adapter tensor on the wire.
// Uses the SSE4.2 crc32 instruction when the CPU has it (several GB/s), a
// table otherwise. Thread-safe, no state.
#ifndef DSM_COMMON_CRC32C_H_
#define DSM_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace dsm {

// Extends `crc` (0 to start) over `size` bytes at `data`.
uint32_t Crc32cExtend(uint32_t crc, const void* data, std::size_t size);

inline uint32_t Crc32c(const void* data, std::size_t size) { return Crc32cExtend(0, data, size); }

}  // namespace dsm

#endif  // DSM_COMMON_CRC32C_H_
