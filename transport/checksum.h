// CRC32C (Castagnoli), the codec's checksum. Uses the SSE4.2 crc32 instruction on
// three interleaved streams when the CPU has it (checked once at run time), a
// slicing-by-8 table otherwise; both give identical results.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flight::transport {

// CRC32C of [data, data + size) continuing from `crc` (0 to start). Extending is
// equivalent to one call over the concatenation:
//   crc32c_extend(crc32c_extend(0, a, n), b, m) == crc32c(a ++ b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);

inline uint32_t crc32c(const void* data, size_t size) { return crc32c_extend(0, data, size); }

// Copies [src, src + size) to dst (no overlap) and returns the CRC32C of the
// bytes extended from `crc`, in one pass: each word is checksummed as it is
// copied. With `stream`, the stores are non-temporal (for copies much larger
// than the cache, which a consumer will not read right away).
uint32_t crc32c_copy(uint32_t crc, void* dst, const void* src, size_t size, bool stream = false);

// The portable table implementation (what crc32c_extend uses without SSE4.2);
// exposed so tests can compare the two paths.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t size);

// True when crc32c_extend uses the hardware instruction.
bool crc32c_hardware();

}  // namespace flight::transport
