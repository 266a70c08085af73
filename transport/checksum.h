// CRC32C (Castagnoli), the codec's checksum. The fastest implementation the CPU
// has is picked once at run time: with AVX2 + VPCLMULQDQ, carry-less-multiply
// folding on 256-bit registers running alongside three streams of the SSE4.2
// crc32 instruction (the two use different execution units) for inputs of
// 4 KiB and more, folding alone from 256 bytes; else the crc32 instruction on
// three interleaved streams, else a slicing-by-8 table. All give identical results (tests compare
// them on random buffers).
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

// True when the CPU has the SSE4.2 crc32 instruction.
bool crc32c_hardware();

// The implementations, exposed so tests and benches can compare them.
enum class Crc32cImpl {
  kPortable,      // slicing-by-8 tables
  kCrc32Streams,  // SSE4.2 crc32, three interleaved streams + shift-combine
  kClmulFold,     // AVX2 VPCLMULQDQ folding (crc32 streams below 256 bytes)
  kHybrid,        // folding and three crc32 streams in one loop (kClmulFold below 4 KiB)
};
bool crc32c_available(Crc32cImpl impl);
// What crc32c_extend and crc32c_copy use on this CPU.
Crc32cImpl crc32c_best();
// As crc32c_extend / crc32c_copy with a given implementation (an unavailable
// one falls back to the next slower one).
uint32_t crc32c_extend_using(Crc32cImpl impl, uint32_t crc, const void* data, size_t size);
uint32_t crc32c_copy_using(Crc32cImpl impl, uint32_t crc, void* dst, const void* src, size_t size,
                           bool stream = false);

}  // namespace flight::transport
