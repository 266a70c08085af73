#include "transport/checksum.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
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

// ---- Carry-less-multiply folding (VPCLMULQDQ on 256-bit registers).
//
// The crc32 instruction retires 8 bytes a cycle at best; memcpy moves 2-4x
// that, so a CRC-bound codec stays well under memcpy. Folding keeps eight
// 128-bit lanes of the message in registers and multiplies each forward by
// x^D mod P (D = the distance to the next data it is XORed with); on Zen 3
// that also measures about 8 bytes a cycle (two clmuls per 16 bytes), which is
// why the hybrid below runs both at once. The crc32 instruction only finishes
// the last 16 bytes and the tail. Bit layout (reflected CRC): in a 128-bit
// lane bit k is the coefficient of x^(127-k), so the low qword holds the
// high-degree half H of S = H·x^64 + L. clmul of two reflected 64-bit values
// yields their product times x in that layout, hence the "-1" in the
// exponents below: S·x^D ≡ H·(x^(D+63) mod P)·x + L·(x^(D-1) mod P)·x.

// x^n mod P for the (unreflected) CRC-32C polynomial, as a 32-bit value with
// bit d = coefficient of x^d.
uint32_t xpow_mod(uint64_t n) {
  constexpr uint64_t kPolyNormal = 0x1EDC6F41;  // x^32 implied
  uint32_t r = 1;                               // x^0
  for (uint64_t i = 0; i < n; ++i) {
    bool carry = r & 0x80000000u;
    r <<= 1;
    if (carry) r ^= static_cast<uint32_t>(kPolyNormal);
  }
  return r;
}

// A polynomial of degree < 32 as a reflected 64-bit clmul operand (x^d at bit 63-d).
uint64_t reflect64(uint32_t poly) {
  uint64_t out = 0;
  for (int d = 0; d < 32; ++d) {
    if (poly & (1u << d)) out |= uint64_t{1} << (63 - d);
  }
  return out;
}

struct FoldConstants {
  uint64_t hi, lo;  // multiply the low qword (H) by hi, the high qword (L) by lo
  explicit FoldConstants(uint64_t distance_bits)
      : hi(reflect64(xpow_mod(distance_bits + 63))), lo(reflect64(xpow_mod(distance_bits - 1))) {}
};

// Words per crc32 stream and 32-byte folded lanes per loop iteration: the
// mix measured fastest at 1 MiB on a Zen 3 EPYC, for the CRC alone and fused
// with a copy (2-6 words and 1-2 lanes were within 15 %; more lanes starve
// the crc32 streams of issue slots).
constexpr size_t kHybridWords = 4;
constexpr size_t kHybridLanes = 2;
constexpr size_t kHybridStep = 3 * 8 * kHybridWords + 32 * kHybridLanes;
constexpr size_t kHybridMin = 4096;  // below this the three shifts do not pay

struct ClmulTables {
  FoldConstants by1024{1024}, by256{256}, by128{128}, by_hybrid_step{256 * kHybridLanes};
};

const ClmulTables& clmul_tables() {
  static const ClmulTables t;
  return t;
}

constexpr size_t kClmulMin = 256;  // below this the crc32 streams win

#define FLIGHT_CLMUL_TARGET __attribute__((target("avx2,vpclmulqdq,pclmul,sse4.2")))

FLIGHT_CLMUL_TARGET inline __m256i fold256(__m256i acc, __m256i k, __m256i data) {
  __m256i a = _mm256_clmulepi64_epi128(acc, k, 0x00);  // H·hi (k's low qword is hi)
  __m256i b = _mm256_clmulepi64_epi128(acc, k, 0x11);  // L·lo
  return _mm256_xor_si256(_mm256_xor_si256(a, b), data);
}

FLIGHT_CLMUL_TARGET inline __m128i fold128(__m128i acc, __m128i k, __m128i data) {
  __m128i a = _mm_clmulepi64_si128(acc, k, 0x00);
  __m128i b = _mm_clmulepi64_si128(acc, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(a, b), data);
}

// Loads src[off, off + 32) and, for kCopy, stores it at dst + off. The offset
// is applied here so that the CRC-only variant (dst == nullptr) never does
// arithmetic on a null pointer (undefined; UBSan flagged it).
template <bool kCopy, bool kStream>
FLIGHT_CLMUL_TARGET inline __m256i load_copy256(const uint8_t* src, uint8_t* dst, size_t off) {
  __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + off));
  if constexpr (kCopy) {
    if constexpr (kStream) {
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + off), v);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + off), v);
    }
  }
  return v;
}

// CRC32C of `len` (>= kClmulMin) bytes, optionally copying them to `dst`
// (kStream: non-temporal stores, dst 32-byte aligned). Takes and returns the
// raw register (pre- and post-inversion are the caller's).
template <bool kCopy, bool kStream>
FLIGHT_CLMUL_TARGET uint32_t crc32c_clmul(uint32_t crc0, uint8_t* dst, const uint8_t* src,
                                          size_t len) {
  const ClmulTables& t = clmul_tables();
  const __m256i k1024 =
      _mm256_set_epi64x(static_cast<long long>(t.by1024.lo), static_cast<long long>(t.by1024.hi),
                        static_cast<long long>(t.by1024.lo), static_cast<long long>(t.by1024.hi));
  __m256i x0 = load_copy256<kCopy, kStream>(src, dst, 0);
  __m256i x1 = load_copy256<kCopy, kStream>(src, dst, 32);
  __m256i x2 = load_copy256<kCopy, kStream>(src, dst, 64);
  __m256i x3 = load_copy256<kCopy, kStream>(src, dst, 96);
  // The running CRC enters as a XOR into the first 32 bits of the message.
  x0 = _mm256_xor_si256(x0, _mm256_set_epi32(0, 0, 0, 0, 0, 0, 0, static_cast<int>(crc0)));
  src += 128;
  if constexpr (kCopy) dst += 128;
  len -= 128;
  while (len >= 128) {
    x0 = fold256(x0, k1024, load_copy256<kCopy, kStream>(src, dst, 0));
    x1 = fold256(x1, k1024, load_copy256<kCopy, kStream>(src, dst, 32));
    x2 = fold256(x2, k1024, load_copy256<kCopy, kStream>(src, dst, 64));
    x3 = fold256(x3, k1024, load_copy256<kCopy, kStream>(src, dst, 96));
    src += 128;
    if constexpr (kCopy) dst += 128;
    len -= 128;
  }
  const __m256i k256 =
      _mm256_set_epi64x(static_cast<long long>(t.by256.lo), static_cast<long long>(t.by256.hi),
                        static_cast<long long>(t.by256.lo), static_cast<long long>(t.by256.hi));
  x1 = fold256(x0, k256, x1);
  x2 = fold256(x1, k256, x2);
  x3 = fold256(x2, k256, x3);
  const __m128i k128 =
      _mm_set_epi64x(static_cast<long long>(t.by128.lo), static_cast<long long>(t.by128.hi));
  __m128i s = fold128(_mm256_castsi256_si128(x3), k128, _mm256_extracti128_si256(x3, 1));
  while (len >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    if constexpr (kCopy) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
    s = fold128(s, k128, v);
    src += 16;
    if constexpr (kCopy) dst += 16;
    len -= 16;
  }
  // S ≡ everything so far (mod P): its CRC from a zero register, then the tail.
  uint64_t crc = 0;
  crc = _mm_crc32_u64(crc, static_cast<uint64_t>(_mm_cvtsi128_si64(s)));
  crc = _mm_crc32_u64(crc, static_cast<uint64_t>(_mm_extract_epi64(s, 1)));
  while (len) {
    if constexpr (kCopy) *dst++ = *src;
    crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *src++);
    --len;
  }
  return static_cast<uint32_t>(crc);
}

// ---- Hybrid: carry-less folding and crc32 streams side by side.
//
// The crc32 instruction (integer pipe) and VPCLMULQDQ (vector pipe) each
// retire about 8 bytes a cycle on this class of CPU, and they do not compete
// for a unit, so one loop runs both over disjoint parts of the input: three
// crc32 streams of S bytes each, then a folded region of C bytes, then a short
// tail. The parts are joined by shifting each partial CRC over the bytes that
// follow it (multiplying by x^(8·len) mod P), which needs x^n mod P for
// run-time n: xpow_mod_fast computes it in O(log n) with clmul squarings.
// (Same idea as Peter Cawley's crc32c "fusion" and ISA-L's mixed kernels.)

// x^n mod P (reflected: x^d at bit 31-d), in O(log n). The crc32 instruction
// reduces mod P: crc32_u32(a, 0) = a·x^32, crc32_u64(0, y) = y·x^32 for a
// 64-bit reflected y. clmul of two reflected 32-bit values gives their product
// times x in the low 64 bits (reflected), so squaring a = x^m through
// crc32_u64(0, clmul(a, a)) yields x^(2m+33), and with the product shifted one
// bit up (one power of x less) x^(2m+32). Hence n >= 96 reduces to m = (n-32)/2
// with the parity of n-32 choosing the form; n < 96 is a bit and up to two
// x^32 steps. Tests check it against the linear xpow_mod through the shifts.
FLIGHT_CLMUL_TARGET uint32_t xpow_mod_fast(uint64_t n) {
  uint64_t odd = 0;  // bit k: parity of (n - 32) at halving step k
  int steps = 0;
  while (n >= 96) {
    odd |= ((n - 32) & 1) << steps;
    ++steps;
    n = (n - 32) >> 1;
  }
  uint32_t a = 0x80000000u >> (n & 31);
  for (uint64_t k = n >> 5; k > 0; --k) a = _mm_crc32_u32(a, 0);
  while (steps-- > 0) {
    const __m128i v = _mm_cvtsi32_si128(static_cast<int>(a));
    auto y = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_clmulepi64_si128(v, v, 0x00)));
    if (((odd >> steps) & 1) == 0) y <<= 1;
    a = static_cast<uint32_t>(_mm_crc32_u64(0, y));
  }
  return a;
}

// The multiplier that carries a raw register over `bytes` (>= 5) zero bytes:
// crc·x^(8·bytes) = crc32_u64(0, clmul(crc, x^(8·bytes-33))), as above.
FLIGHT_CLMUL_TARGET uint32_t shift_multiplier(uint64_t bytes) {
  return xpow_mod_fast(8 * bytes - 33);
}

FLIGHT_CLMUL_TARGET uint32_t crc_shift(uint32_t crc, uint32_t multiplier) {
  const __m128i k = _mm_cvtsi32_si128(static_cast<int>(multiplier));
  const __m128i c = _mm_cvtsi32_si128(static_cast<int>(crc));
  const auto y = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_clmulepi64_si128(c, k, 0x00)));
  return static_cast<uint32_t>(_mm_crc32_u64(0, y));
}

template <bool kCopy>
FLIGHT_CLMUL_TARGET inline uint64_t crc_word(uint64_t crc, const uint8_t* src, uint8_t* dst,
                                             size_t off) {
  const uint64_t v = load64(src + off);
  if constexpr (kCopy) std::memcpy(dst + off, &v, 8);
  return _mm_crc32_u64(crc, v);
}

// CRC32C of `len` (>= kHybridMin) bytes from the raw register `crc0`,
// optionally copying them to `dst` (cached stores); returns the raw register.
template <bool kCopy>
FLIGHT_CLMUL_TARGET uint32_t crc32c_hybrid(uint32_t crc0, uint8_t* dst, const uint8_t* src,
                                           size_t len) {
  // One iteration takes kHybridStep bytes; the folded region's first lanes
  // are loaded before the loop, hence one iteration fewer for the streams.
  const size_t iters = len / kHybridStep - 1;
  const size_t stream_bytes = 8 * kHybridWords * iters;
  const size_t fold_bytes = 32 * kHybridLanes * (iters + 1);
  const size_t fold_at = 3 * stream_bytes;
  // Independent of the data: computed here, they overlap the loop.
  const uint32_t over_stream = shift_multiplier(stream_bytes);
  const uint32_t over_fold = shift_multiplier(fold_bytes);
  const ClmulTables& t = clmul_tables();
  const FoldConstants& kd = t.by_hybrid_step;
  const __m256i k = _mm256_set_epi64x(static_cast<long long>(kd.lo), static_cast<long long>(kd.hi),
                                      static_cast<long long>(kd.lo), static_cast<long long>(kd.hi));
  uint64_t c0 = crc0, c1 = 0, c2 = 0;
  __m256i x[kHybridLanes];
  for (size_t a = 0; a < kHybridLanes; ++a) {
    x[a] = load_copy256<kCopy, false>(src, dst, fold_at + 32 * a);
  }
  size_t s = 0;                            // offset within each stream
  size_t f = fold_at + 32 * kHybridLanes;  // offset of the next folded lanes
  for (size_t i = 0; i < iters; ++i) {
    if constexpr (kCopy) {
      // The streams' bytes move as whole 32-byte vectors (a quarter of the
      // store instructions of word stores); the crc32s re-read them from L1.
      static_assert(8 * kHybridWords == 32);
      load_copy256<true, false>(src, dst, s);
      load_copy256<true, false>(src, dst, stream_bytes + s);
      load_copy256<true, false>(src, dst, 2 * stream_bytes + s);
    }
#pragma GCC unroll 8
    for (size_t w = 0; w < kHybridWords; ++w) {
      c0 = crc_word<false>(c0, src, dst, s);
      c1 = crc_word<false>(c1, src, dst, stream_bytes + s);
      c2 = crc_word<false>(c2, src, dst, 2 * stream_bytes + s);
      s += 8;
    }
#pragma GCC unroll 8
    for (size_t a = 0; a < kHybridLanes; ++a) {
      x[a] = fold256(x[a], k, load_copy256<kCopy, false>(src, dst, f + 32 * a));
    }
    f += 32 * kHybridLanes;
  }
  // Folded lanes -> one 128-bit value -> its CRC from a zero register.
  const __m256i k256 =
      _mm256_set_epi64x(static_cast<long long>(t.by256.lo), static_cast<long long>(t.by256.hi),
                        static_cast<long long>(t.by256.lo), static_cast<long long>(t.by256.hi));
  __m256i acc = x[0];
  for (size_t a = 1; a < kHybridLanes; ++a) acc = fold256(acc, k256, x[a]);
  const __m128i k128 =
      _mm_set_epi64x(static_cast<long long>(t.by128.lo), static_cast<long long>(t.by128.hi));
  const __m128i r = fold128(_mm256_castsi256_si128(acc), k128, _mm256_extracti128_si256(acc, 1));
  uint64_t folded = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(r)));
  folded = _mm_crc32_u64(folded, static_cast<uint64_t>(_mm_extract_epi64(r, 1)));
  // Join: each part's register carried over everything after it.
  uint32_t crc = crc_shift(static_cast<uint32_t>(c0), over_stream) ^ static_cast<uint32_t>(c1);
  crc = crc_shift(crc, over_stream) ^ static_cast<uint32_t>(c2);
  crc = crc_shift(crc, over_fold) ^ static_cast<uint32_t>(folded);
  // Tail (< 2 steps) with the crc32 instruction.
  uint64_t c = crc;
  size_t off = fold_at + fold_bytes;
  for (; off + 8 <= len; off += 8) c = crc_word<kCopy>(c, src, dst, off);
  for (; off < len; ++off) {
    if constexpr (kCopy) dst[off] = src[off];
    c = _mm_crc32_u8(static_cast<uint32_t>(c), src[off]);
  }
  return static_cast<uint32_t>(c);
}

bool detect_clmul() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("avx2") &&
         __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul");
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

bool crc32c_available(Crc32cImpl impl) {
  switch (impl) {
    case Crc32cImpl::kPortable:
      return true;
    case Crc32cImpl::kCrc32Streams:
      return crc32c_hardware();
    case Crc32cImpl::kClmulFold:
    case Crc32cImpl::kHybrid:
#if defined(__x86_64__)
    {
      static const bool clmul = detect_clmul();
      return clmul;
    }
#else
      return false;
#endif
  }
  return false;
}

Crc32cImpl crc32c_best() {
  if (crc32c_available(Crc32cImpl::kHybrid)) return Crc32cImpl::kHybrid;
  if (crc32c_available(Crc32cImpl::kCrc32Streams)) return Crc32cImpl::kCrc32Streams;
  return Crc32cImpl::kPortable;
}

uint32_t crc32c_extend_using(Crc32cImpl impl, uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (impl == Crc32cImpl::kHybrid && crc32c_available(impl) && size >= kHybridMin) {
    return ~crc32c_hybrid<false>(~crc, nullptr, p, size);
  }
  if ((impl == Crc32cImpl::kClmulFold || impl == Crc32cImpl::kHybrid) && crc32c_available(impl)) {
    if (size < kClmulMin) return crc32c_hw(crc, p, size);
    return ~crc32c_clmul<false, false>(~crc, nullptr, p, size);
  }
  if (impl != Crc32cImpl::kPortable && crc32c_hardware()) return crc32c_hw(crc, p, size);
#endif
  (void)impl;
  return crc32c_extend_portable(crc, p, size);
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size) {
  static const Crc32cImpl best = crc32c_best();
  return crc32c_extend_using(best, crc, data, size);
}

uint32_t crc32c_copy_using(Crc32cImpl impl, uint32_t crc, void* dst, const void* src, size_t size,
                           bool stream) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
#if defined(__x86_64__)
  const bool folding =
      (impl == Crc32cImpl::kClmulFold || impl == Crc32cImpl::kHybrid) && crc32c_available(impl);
  if (folding && size >= kClmulMin) {
    // Non-temporal 32-byte stores need a 32-byte aligned destination. They
    // stay on the pure fold: streaming is for copies far beyond the cache,
    // which memory bandwidth bounds, not the CRC.
    if (stream && (reinterpret_cast<uintptr_t>(d) & 31) == 0) {
      uint32_t raw = crc32c_clmul<true, true>(~crc, d, s, size);
      _mm_sfence();
      return ~raw;
    }
    if (impl == Crc32cImpl::kHybrid && size >= kHybridMin) {
      return ~crc32c_hybrid<true>(~crc, d, s, size);
    }
    return ~crc32c_clmul<true, false>(~crc, d, s, size);
  }
  if (impl != Crc32cImpl::kPortable && crc32c_hardware()) {
    bool same_alignment =
        ((reinterpret_cast<uintptr_t>(d) - reinterpret_cast<uintptr_t>(s)) & 7) == 0;
    if (stream && same_alignment) return crc32c_copy_hw<true>(crc, d, s, size);
    return crc32c_copy_hw<false>(crc, d, s, size);
  }
#endif
  (void)impl;
  (void)stream;
  std::memcpy(d, s, size);
  return crc32c_extend_portable(crc, d, size);
}

uint32_t crc32c_copy(uint32_t crc, void* dst, const void* src, size_t size, bool stream) {
  static const Crc32cImpl best = crc32c_best();
  return crc32c_copy_using(best, crc, dst, src, size, stream);
}

}  // namespace flight::transport
