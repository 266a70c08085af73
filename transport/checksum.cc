#include "transport/checksum.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace flight::transport {
namespace {

constexpr uint32_t kPoly = 0x82f63b78;  // CRC-32C, reflected

// Slicing-by-8 tables for the portable path.
struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = t[0][n];
      for (int k = 1; k < 8; ++k) {
        c = t[0][c & 0xff] ^ (c >> 8);
        t[k][n] = c;
      }
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// GF(2) matrix helpers to build the "append n zero bytes" operator, used to
// combine the three interleaved hardware streams (after Mark Adler's crc32c.c).
uint32_t gf2_times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  while (vec) {
    if (vec & 1) sum ^= *mat;
    vec >>= 1;
    ++mat;
  }
  return sum;
}

void gf2_square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = gf2_times(mat, mat[n]);
}

// Operator applying `len` (a power of two) zero bytes to a crc register.
void zeros_op(uint32_t* even, size_t len) {
  uint32_t odd[32];
  odd[0] = kPoly;  // one zero bit
  uint32_t row = 1;
  for (int n = 1; n < 32; ++n) {
    odd[n] = row;
    row <<= 1;
  }
  gf2_square(even, odd);  // two zero bits
  gf2_square(odd, even);  // four zero bits
  do {
    gf2_square(even, odd);  // first pass: one zero byte
    len >>= 1;
    if (len == 0) return;
    gf2_square(odd, even);
    len >>= 1;
  } while (len);
  for (int n = 0; n < 32; ++n) even[n] = odd[n];
}

struct ShiftTable {
  uint32_t z[4][256];
  explicit ShiftTable(size_t len) {
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; ++n) {
      z[0][n] = gf2_times(op, n);
      z[1][n] = gf2_times(op, n << 8);
      z[2][n] = gf2_times(op, n << 16);
      z[3][n] = gf2_times(op, n << 24);
    }
  }
  uint32_t shift(uint32_t crc) const {
    return z[0][crc & 0xff] ^ z[1][(crc >> 8) & 0xff] ^ z[2][(crc >> 16) & 0xff] ^ z[3][crc >> 24];
  }
};

constexpr size_t kLong = 8192;
constexpr size_t kShort = 256;

#if defined(__x86_64__)
struct HwTables {
  ShiftTable long_table{kLong};
  ShiftTable short_table{kShort};
};

const HwTables& hw_tables() {
  static const HwTables t;
  return t;
}

// Three independent crc32 instructions in flight hide the instruction's 3-cycle
// latency: ~3x the single-stream rate.
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const uint8_t* next,
                                                     size_t len) {
  const HwTables& t = hw_tables();
  uint64_t crc0 = crc ^ 0xffffffffu;
  while (len && (reinterpret_cast<uintptr_t>(next) & 7) != 0) {
    crc0 = _mm_crc32_u8(static_cast<uint32_t>(crc0), *next++);
    --len;
  }
  while (len >= kLong * 3) {
    uint64_t crc1 = 0, crc2 = 0;
    const uint8_t* end = next + kLong;
    do {
      crc0 = _mm_crc32_u64(crc0, load64(next));
      crc1 = _mm_crc32_u64(crc1, load64(next + kLong));
      crc2 = _mm_crc32_u64(crc2, load64(next + 2 * kLong));
      next += 8;
    } while (next < end);
    crc0 = t.long_table.shift(static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc1);
    crc0 = t.long_table.shift(static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc2);
    next += 2 * kLong;
    len -= 3 * kLong;
  }
  while (len >= kShort * 3) {
    uint64_t crc1 = 0, crc2 = 0;
    const uint8_t* end = next + kShort;
    do {
      crc0 = _mm_crc32_u64(crc0, load64(next));
      crc1 = _mm_crc32_u64(crc1, load64(next + kShort));
      crc2 = _mm_crc32_u64(crc2, load64(next + 2 * kShort));
      next += 8;
    } while (next < end);
    crc0 = t.short_table.shift(static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc1);
    crc0 = t.short_table.shift(static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc2);
    next += 2 * kShort;
    len -= 3 * kShort;
  }
  const uint8_t* end = next + (len - (len & 7));
  while (next < end) {
    crc0 = _mm_crc32_u64(crc0, load64(next));
    next += 8;
  }
  len &= 7;
  while (len) {
    crc0 = _mm_crc32_u8(static_cast<uint32_t>(crc0), *next++);
    --len;
  }
  return static_cast<uint32_t>(crc0) ^ 0xffffffffu;
}

template <bool kStream>
__attribute__((target("sse4.2"))) inline void store64(uint8_t* p, uint64_t v) {
  if constexpr (kStream) {
    _mm_stream_si64(reinterpret_cast<long long*>(p), static_cast<long long>(v));
  } else {
    std::memcpy(p, &v, 8);
  }
}

// Three interleaved streams of `block` bytes each, as in crc32c_hw, storing
// what they read.
template <bool kStream>
__attribute__((target("sse4.2"))) void copy_blocks(uint64_t* crc, uint8_t** dst_p,
                                                   const uint8_t** next_p, size_t* len_p,
                                                   size_t block, const ShiftTable& shift) {
  uint64_t crc0 = *crc;
  uint8_t* dst = *dst_p;
  const uint8_t* next = *next_p;
  size_t len = *len_p;
  while (len >= block * 3) {
    uint64_t crc1 = 0, crc2 = 0;
    const uint8_t* end = next + block;
    do {
      uint64_t v0 = load64(next), v1 = load64(next + block), v2 = load64(next + 2 * block);
      crc0 = _mm_crc32_u64(crc0, v0);
      crc1 = _mm_crc32_u64(crc1, v1);
      crc2 = _mm_crc32_u64(crc2, v2);
      store64<kStream>(dst, v0);
      store64<kStream>(dst + block, v1);
      store64<kStream>(dst + 2 * block, v2);
      next += 8;
      dst += 8;
    } while (next < end);
    crc0 = shift.shift(static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc1);
    crc0 = shift.shift(static_cast<uint32_t>(crc0)) ^ static_cast<uint32_t>(crc2);
    next += 2 * block;
    dst += 2 * block;
    len -= 3 * block;
  }
  *crc = crc0;
  *dst_p = dst;
  *next_p = next;
  *len_p = len;
}

// crc32c_hw that also stores every word it reads: the copy costs no extra pass
// over memory. kStream requires dst and src to share their alignment mod 8.
template <bool kStream>
__attribute__((target("sse4.2"))) uint32_t crc32c_copy_hw(uint32_t crc, uint8_t* dst,
                                                          const uint8_t* next, size_t len) {
  const HwTables& t = hw_tables();
  uint64_t crc0 = crc ^ 0xffffffffu;
  while (len && (reinterpret_cast<uintptr_t>(next) & 7) != 0) {
    *dst++ = *next;
    crc0 = _mm_crc32_u8(static_cast<uint32_t>(crc0), *next++);
    --len;
  }
  copy_blocks<kStream>(&crc0, &dst, &next, &len, kLong, t.long_table);
  copy_blocks<kStream>(&crc0, &dst, &next, &len, kShort, t.short_table);
  while (len >= 8) {
    uint64_t v = load64(next);
    crc0 = _mm_crc32_u64(crc0, v);
    store64<kStream>(dst, v);
    next += 8;
    dst += 8;
    len -= 8;
  }
  while (len) {
    *dst++ = *next;
    crc0 = _mm_crc32_u8(static_cast<uint32_t>(crc0), *next++);
    --len;
  }
  if constexpr (kStream) _mm_sfence();
  return static_cast<uint32_t>(crc0) ^ 0xffffffffu;
}

bool detect_hw() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

}  // namespace

uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t size) {
  const auto& t = tables().t;
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (size >= 8) {
    uint64_t v = load64(p) ^ c;
    c = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^ t[4][(v >> 24) & 0xff] ^
        t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^ t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
    p += 8;
    size -= 8;
  }
  while (size--) c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

bool crc32c_hardware() {
#if defined(__x86_64__)
  static const bool hw = detect_hw();
  return hw;
#else
  return false;
#endif
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size) {
#if defined(__x86_64__)
  if (crc32c_hardware()) return crc32c_hw(crc, static_cast<const uint8_t*>(data), size);
#endif
  return crc32c_extend_portable(crc, data, size);
}

}  // namespace flight::transport

namespace flight::transport {

uint32_t crc32c_copy(uint32_t crc, void* dst, const void* src, size_t size, bool stream) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
#if defined(__x86_64__)
  if (crc32c_hardware()) {
    bool same_alignment =
        ((reinterpret_cast<uintptr_t>(d) - reinterpret_cast<uintptr_t>(s)) & 7) == 0;
    if (stream && same_alignment) return crc32c_copy_hw<true>(crc, d, s, size);
    return crc32c_copy_hw<false>(crc, d, s, size);
  }
#endif
  (void)stream;
  std::memcpy(d, s, size);
  return crc32c_extend_portable(crc, d, size);
}

}  // namespace flight::transport
