#include "transport/update_encoding.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <utility>
#include <vector>

namespace flight::transport {
namespace {

uint64_t align8(uint64_t n) { return (n + 7) / 8 * 8; }

uint64_t blocks(uint64_t n, uint64_t b) { return (n + b - 1) / b; }

uint64_t topk_count(double fraction, uint64_t n) {
  if (n == 0) return 0;
  const auto k = static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(n)));
  return std::clamp<uint64_t>(k, 1, n);
}

// splitmix64: a counter-based generator, so every block rounds with its own
// reproducible stream whatever order blocks are encoded in.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Nonzero elements (NaN counts: it is not zero).
uint64_t count_nonzero(const float* x, uint64_t n) {
  uint64_t k = 0;
  for (uint64_t i = 0; i < n; ++i) k += x[i] != 0.f;
  return k;
}

// topk's payload with the k listed indices, ascending.
void write_indexed(const float* x, const std::vector<uint32_t>& idx, uint8_t* dest) {
  const uint64_t k = idx.size();
  std::memcpy(dest, &k, 8);
  std::memcpy(dest + 8, idx.data(), 4 * k);
  const uint64_t values_at = align8(8 + 4 * k);
  std::memset(dest + 8 + 4 * k, 0, values_at - (8 + 4 * k));
  for (uint64_t j = 0; j < k; ++j) std::memcpy(dest + values_at + 4 * j, &x[idx[j]], 4);
}

uint64_t align4(uint64_t n) { return (n + 3) / 4 * 4; }

uint64_t varint_bytes(uint64_t v) {
  uint64_t b = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++b;
  }
  return b;
}

// sparse_varint: bytes of the gap varints of x's nonzeros, and their count.
std::pair<uint64_t, uint64_t> varint_index_bytes(const float* x, uint64_t n) {
  uint64_t bytes = 0, k = 0, next = 0;  // next: the index a zero gap lands on
  for (uint64_t i = 0; i < n; ++i) {
    if (x[i] == 0.f) continue;
    bytes += varint_bytes(i - next);
    next = i + 1;
    ++k;
  }
  return {bytes, k};
}

uint64_t varint_payload_size(uint64_t index_bytes, uint64_t k) {
  return 8 + align4(index_bytes) + 4 * k;
}

void write_varint_sparse(const float* x, uint64_t n, uint8_t* dest) {
  const auto [index_bytes, k] = varint_index_bytes(x, n);
  const auto k32 = static_cast<uint32_t>(k), ib32 = static_cast<uint32_t>(index_bytes);
  std::memcpy(dest, &k32, 4);
  std::memcpy(dest + 4, &ib32, 4);
  uint8_t* q = dest + 8;
  uint8_t* values = dest + 8 + align4(index_bytes);
  std::memset(q + index_bytes, 0, align4(index_bytes) - index_bytes);
  uint64_t next = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (x[i] == 0.f) continue;
    for (uint64_t v = i - next;; v >>= 7) {
      *q++ = static_cast<uint8_t>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      if (v < 0x80) break;
    }
    std::memcpy(values, &x[i], 4);
    values += 4;
    next = i + 1;
  }
}

// Walks the index varints of a sparse_varint payload, calling f(j, i) for the
// j-th nonzero's index i (a checked payload: no bounds tests).
template <typename F>
void for_each_varint_index(const uint8_t* p, F&& f) {
  const uint32_t k = load<uint32_t>(p);
  const uint8_t* q = p + 8;
  uint64_t next = 0;
  for (uint32_t j = 0; j < k; ++j) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const uint8_t b = *q++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    const uint64_t i = next + v;
    f(j, i);
    next = i + 1;
  }
}

}  // namespace

StatusOr<Encoding> parse_encoding(const std::string& name) {
  if (name == "raw" || name == "float32" || name == "none") return Encoding::kRaw;
  if (name == "fp16") return Encoding::kFp16;
  if (name == "bf16") return Encoding::kBf16;
  if (name == "int8") return Encoding::kInt8;
  if (name == "topk") return Encoding::kTopK;
  if (name == "sparse") return Encoding::kSparse;
  if (name == "sparse_varint") return Encoding::kSparseVarint;
  return invalid_argument("compression '" + name +
                          "' is not one of raw, fp16, bf16, int8, topk, sparse, sparse_varint");
}

const char* encoding_name(Encoding e) {
  switch (e) {
    case Encoding::kRaw:
      return "raw";
    case Encoding::kFp16:
      return "fp16";
    case Encoding::kBf16:
      return "bf16";
    case Encoding::kInt8:
      return "int8";
    case Encoding::kTopK:
      return "topk";
    case Encoding::kSparse:
      return "sparse";
    case Encoding::kSparseVarint:
      return "sparse_varint";
  }
  return "?";
}

bool valid_encoding_code(uint8_t code) {
  return code <= static_cast<uint8_t>(Encoding::kSparseVarint);
}

bool is_sparse_encoding(Encoding e) {
  return e == Encoding::kTopK || e == Encoding::kSparse || e == Encoding::kSparseVarint;
}

Status EncodeOptions::validate() const {
  if (block_size < 8 || block_size > (1 << 20)) {
    return invalid_argument("compression.block_size must be in [8, 1048576], got " +
                            std::to_string(block_size));
  }
  if (!(topk_fraction > 0 && topk_fraction <= 1)) {
    return invalid_argument("compression.topk_fraction must be in (0, 1], got " +
                            std::to_string(topk_fraction));
  }
  return Status::ok();
}

uint64_t payload_size(const EncodeOptions& o, const float* x, uint64_t n) {
  switch (o.encoding) {
    case Encoding::kRaw:
      return 4 * n;
    case Encoding::kFp16:
    case Encoding::kBf16:
      return 2 * n;
    case Encoding::kInt8:
      return align8(8 + 4 * blocks(n, static_cast<uint64_t>(o.block_size))) + n;
    case Encoding::kTopK: {
      const uint64_t k = topk_count(o.topk_fraction, n);
      return align8(8 + 4 * k) + 4 * k;
    }
    case Encoding::kSparse: {
      const uint64_t k = count_nonzero(x, n);
      return align8(8 + 4 * k) + 4 * k;
    }
    case Encoding::kSparseVarint: {
      const auto [index_bytes, k] = varint_index_bytes(x, n);
      return varint_payload_size(index_bytes, k);
    }
  }
  return 0;
}

Encoding tensor_encoding(const EncodeOptions& o, const float* x, uint64_t n) {
  if (o.encoding != Encoding::kSparse && o.encoding != Encoding::kSparseVarint) return o.encoding;
  // sparse_varint's counts are u32: a tensor of 2^32 elements or more stays raw.
  if (o.encoding == Encoding::kSparseVarint && n > UINT32_MAX) return Encoding::kRaw;
  return payload_size(o, x, n) < 4 * n ? o.encoding : Encoding::kRaw;
}

void encode_payload(const EncodeOptions& o, const float* x, uint64_t n, uint64_t salt,
                    uint8_t* dest) {
  switch (o.encoding) {
    case Encoding::kRaw:
      std::memcpy(dest, x, 4 * n);
      return;
    case Encoding::kFp16:
      for (uint64_t i = 0; i < n; ++i) {
        const c10::Half h(x[i]);
        std::memcpy(dest + 2 * i, &h, 2);
      }
      return;
    case Encoding::kBf16:
      for (uint64_t i = 0; i < n; ++i) {
        const c10::BFloat16 h(x[i]);  // round to nearest even
        std::memcpy(dest + 2 * i, &h, 2);
      }
      return;
    case Encoding::kInt8: {
      const uint64_t b = static_cast<uint64_t>(o.block_size), nb = blocks(n, b);
      const uint32_t bs = static_cast<uint32_t>(b), zero = 0;
      std::memcpy(dest, &bs, 4);
      std::memcpy(dest + 4, &zero, 4);
      const uint64_t values_at = align8(8 + 4 * nb);
      std::memset(dest + 8 + 4 * nb, 0, values_at - (8 + 4 * nb));
      auto* q = reinterpret_cast<int8_t*>(dest + values_at);
      for (uint64_t blk = 0; blk < nb; ++blk) {
        const uint64_t lo = blk * b, hi = std::min(n, lo + b);
        float amax = 0;
        for (uint64_t i = lo; i < hi; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float scale = std::isfinite(amax) && amax > 0 ? amax / 127.f : 0.f;
        std::memcpy(dest + 8 + 4 * blk, &scale, 4);
        const float inv = scale > 0 ? 1.f / scale : 0.f;
        uint64_t state = mix(o.seed ^ mix(salt * 0x100000001b3ull + blk));
        for (uint64_t i = lo; i < hi; ++i) {
          float v = x[i] * inv;
          if (o.stochastic_rounding) {
            state = mix(state);
            const float u = static_cast<float>(state >> 40) * 0x1.0p-24f;  // [0, 1)
            v = std::floor(v + u);
          } else {
            v = std::nearbyint(v);
          }
          q[i] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
        }
      }
      return;
    }
    case Encoding::kTopK: {
      const uint64_t k = topk_count(o.topk_fraction, n);
      std::vector<uint32_t> idx(n);
      std::iota(idx.begin(), idx.end(), 0u);
      auto larger = [&](uint32_t a, uint32_t c) {
        const float fa = std::fabs(x[a]), fc = std::fabs(x[c]);
        return fa != fc ? fa > fc : a < c;  // ties by index: deterministic
      };
      if (k < n)
        std::nth_element(idx.begin(), idx.begin() + static_cast<int64_t>(k), idx.end(), larger);
      idx.resize(k);
      std::sort(idx.begin(), idx.end());  // ascending: decoders write in order
      write_indexed(x, idx, dest);
      return;
    }
    case Encoding::kSparse: {
      std::vector<uint32_t> idx;
      idx.reserve(count_nonzero(x, n));
      for (uint64_t i = 0; i < n; ++i) {
        if (x[i] != 0.f) idx.push_back(static_cast<uint32_t>(i));
      }
      write_indexed(x, idx, dest);
      return;
    }
    case Encoding::kSparseVarint:
      write_varint_sparse(x, n, dest);
      return;
  }
}

Status check_payload(Encoding e, const uint8_t* p, uint64_t nbytes, uint64_t n) {
  auto bad = [&](const std::string& what) {
    return data_loss(std::string(encoding_name(e)) + " payload of " + std::to_string(nbytes) +
                     " bytes for " + std::to_string(n) + " elements: " + what);
  };
  switch (e) {
    case Encoding::kRaw:
      return nbytes == 4 * n ? Status::ok() : bad("size mismatch");
    case Encoding::kFp16:
    case Encoding::kBf16:
      return nbytes == 2 * n ? Status::ok() : bad("size mismatch");
    case Encoding::kInt8: {
      if (nbytes < 8) return bad("no header");
      const uint32_t b = load<uint32_t>(p);
      if (b < 8 || b > (1u << 20)) return bad("block size " + std::to_string(b));
      EncodeOptions o;
      o.encoding = e;
      o.block_size = b;
      return nbytes == payload_size(o, nullptr, n) ? Status::ok() : bad("size mismatch");
    }
    case Encoding::kTopK:
    case Encoding::kSparse: {
      if (nbytes < 8) return bad("no header");
      const uint64_t k = load<uint64_t>(p);
      // top-k keeps at least one element; sparse may have none (an all-zero tensor).
      const bool empty_ok = e == Encoding::kSparse;
      if (k > n || (n > 0 && k == 0 && !empty_ok) || nbytes != align8(8 + 4 * k) + 4 * k) {
        return bad("k = " + std::to_string(k) + " does not fit");
      }
      int64_t prev = -1;
      for (uint64_t j = 0; j < k; ++j) {
        const uint32_t i = load<uint32_t>(p + 8 + 4 * j);
        if (i >= n || static_cast<int64_t>(i) <= prev) return bad("indices out of range or order");
        prev = i;
      }
      return Status::ok();
    }
    case Encoding::kSparseVarint: {
      if (nbytes < 8) return bad("no header");
      const uint64_t k = load<uint32_t>(p), index_bytes = load<uint32_t>(p + 4);
      if (k > n || index_bytes > nbytes || nbytes != varint_payload_size(index_bytes, k)) {
        return bad("k = " + std::to_string(k) + " with " + std::to_string(index_bytes) +
                   " index bytes does not fit");
      }
      // Every varint ends inside the index bytes, none is longer than 10
      // bytes, and the indices stay below n (gaps keep them ascending).
      const uint8_t* q = p + 8;
      const uint8_t* end = q + index_bytes;
      uint64_t next = 0;
      for (uint64_t j = 0; j < k; ++j) {
        uint64_t v = 0;
        int len = 0;
        for (;; ++len) {
          if (q == end || len == 10) return bad("index varint " + std::to_string(j) + " is cut");
          const uint8_t b = *q++;
          v |= static_cast<uint64_t>(b & 0x7f) << (7 * len);
          if (!(b & 0x80)) break;
        }
        if (v >= n - next) return bad("index " + std::to_string(j) + " out of range");
        next += v + 1;
      }
      if (q != end) return bad("trailing index bytes");
      return Status::ok();
    }
  }
  return bad("unknown encoding");
}

void decode_payload(Encoding e, const uint8_t* p, uint64_t n, float* out) {
  if (e == Encoding::kRaw) {
    std::memcpy(out, p, 4 * n);
    return;
  }
  std::fill(out, out + n, 0.f);
  accumulate_payload(e, p, n, 1.0, out);
}

uint64_t int8_block_size(const uint8_t* p) { return load<uint32_t>(p); }

namespace {

// The element decode_payload writes: 0 + 1 * x, where the 0 + turns -0 into
// +0. Folding w * decoded(x) keeps decode-while-folding bit-identical to
// decoding first and folding the decoded tensor (an int8 element is
// decoded as scale * q, then weighted: w * (scale * q), never (w * scale) * q).
inline float decoded(float x) { return 0.f + x; }

template <bool kAssign>
inline void fold(float& a, float wf, float d) {
  if constexpr (kAssign) {
    a = wf * d;
  } else {
    a += wf * d;
  }
}

template <bool kAssign>
void fold_payload(Encoding e, const uint8_t* p, uint64_t n, float wf, float* acc, uint64_t lo,
                  uint64_t hi) {
  switch (e) {
    case Encoding::kRaw:
      // Raw float32 is folded as it lies (decode wraps it without a copy).
      for (uint64_t i = lo; i < hi; ++i) fold<kAssign>(acc[i], wf, load<float>(p + 4 * i));
      return;
    case Encoding::kFp16:
      for (uint64_t i = lo; i < hi; ++i)
        fold<kAssign>(acc[i], wf, decoded(static_cast<float>(load<c10::Half>(p + 2 * i))));
      return;
    case Encoding::kBf16:
      for (uint64_t i = lo; i < hi; ++i)
        fold<kAssign>(acc[i], wf, decoded(static_cast<float>(load<c10::BFloat16>(p + 2 * i))));
      return;
    case Encoding::kInt8: {
      const uint64_t b = load<uint32_t>(p), nb = blocks(n, b);
      const auto* q = reinterpret_cast<const int8_t*>(p + align8(8 + 4 * nb));
      for (uint64_t blk = lo / b; blk < nb && blk * b < hi; ++blk) {
        const float s = load<float>(p + 8 + 4 * blk);
        const uint64_t from = std::max(lo, blk * b), to = std::min(hi, (blk + 1) * b);
        for (uint64_t i = from; i < to; ++i)
          fold<kAssign>(acc[i], wf, decoded(s * static_cast<float>(q[i])));
      }
      return;
    }
    case Encoding::kTopK:
    case Encoding::kSparse: {
      // What decode writes where nothing is sent is +0: w * +0 = +0.
      if (kAssign) std::fill(acc + lo, acc + hi, 0.f);
      const uint64_t k = load<uint64_t>(p);
      const uint8_t* values = p + align8(8 + 4 * k);
      for (uint64_t j = 0; j < k; ++j) {
        const uint32_t i = load<uint32_t>(p + 8 + 4 * j);
        if (i >= lo && i < hi) fold<kAssign>(acc[i], wf, decoded(load<float>(values + 4 * j)));
      }
      return;
    }
    case Encoding::kSparseVarint: {
      if (kAssign) std::fill(acc + lo, acc + hi, 0.f);
      const uint8_t* values = p + 8 + align4(load<uint32_t>(p + 4));
      for_each_varint_index(p, [&](uint32_t j, uint64_t i) {
        if (i >= lo && i < hi)
          fold<kAssign>(acc[i], wf, decoded(load<float>(values + 4 * static_cast<uint64_t>(j))));
      });
      return;
    }
  }
}

}  // namespace

void accumulate_payload(Encoding e, const uint8_t* p, uint64_t n, double w, float* acc, bool assign,
                        uint64_t lo, uint64_t hi) {
  const float wf = static_cast<float>(w);
  hi = std::min(hi, n);
  if (lo >= hi) return;
  if (assign) {
    fold_payload<true>(e, p, n, wf, acc, lo, hi);
  } else {
    fold_payload<false>(e, p, n, wf, acc, lo, hi);
  }
}

}  // namespace flight::transport
