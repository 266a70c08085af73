#include "flight/privacy/prg.h"

#include <sodium.h>

#include <cmath>
#include <cstring>
#include <mutex>

#include "flight/base/check.h"

namespace flight::privacy {
namespace {

constexpr size_t kBlockBytes = 64;  // one ChaCha20 block

void stream_nonce(uint64_t stream, unsigned char nonce[crypto_stream_chacha20_NONCEBYTES]) {
  for (int i = 0; i < 8; ++i) nonce[i] = static_cast<unsigned char>(stream >> (8 * i));
}

// Chunk `chunk` of the mask (seed, stream): `words` <= kMaskChunkWords words.
// The IETF variant writes the keystream directly (no zero buffer to XOR).
void mask_chunk(const Seed& seed, uint64_t stream, uint64_t chunk, uint32_t* out, size_t words) {
  unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
  for (int i = 0; i < 8; ++i) nonce[i] = static_cast<unsigned char>(stream >> (8 * i));
  for (int i = 0; i < 4; ++i) nonce[8 + i] = static_cast<unsigned char>(chunk >> (8 * i));
  crypto_stream_chacha20_ietf(reinterpret_cast<unsigned char*>(out), words * sizeof(uint32_t),
                              nonce, seed.data());
}

}  // namespace

void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { FLIGHT_CHECK(sodium_init() >= 0, "libsodium failed to initialise"); });
}

Seed random_seed() {
  ensure_sodium();
  Seed s;
  randombytes_buf(s.data(), s.size());
  return s;
}

Seed seed_from_u64(uint64_t value) {
  ensure_sodium();
  unsigned char in[8];
  for (int i = 0; i < 8; ++i) in[i] = static_cast<unsigned char>(value >> (8 * i));
  Seed s;
  crypto_generichash(s.data(), s.size(), in, sizeof(in), nullptr, 0);
  return s;
}

void apply_masks(const MaskTerm* terms, size_t count, uint64_t stream, uint32_t* v, size_t n) {
  ensure_sodium();
  FLIGHT_CHECK(n / kMaskChunkWords < (uint64_t{1} << 32), "mask longer than 2^32 chunks");
  alignas(64) uint32_t buf[kMaskChunkWords];
  for (size_t off = 0, chunk = 0; off < n; off += kMaskChunkWords, ++chunk) {
    const size_t m = std::min(kMaskChunkWords, n - off);
    uint32_t* dst = v + off;
    for (size_t t = 0; t < count; ++t) {
      mask_chunk(terms[t].seed, stream, chunk, buf, m);
      // Unsigned arithmetic wraps: exactly addition modulo 2^32.
      if (terms[t].sign == MaskSign::kAdd) {
        for (size_t i = 0; i < m; ++i) dst[i] += buf[i];
      } else {
        for (size_t i = 0; i < m; ++i) dst[i] -= buf[i];
      }
    }
  }
}

void apply_mask(const Seed& seed, uint64_t stream, MaskSign sign, uint32_t* v, size_t n) {
  const MaskTerm term{seed, sign};
  apply_masks(&term, 1, stream, v, n);
}

void expand_mask(const Seed& seed, uint64_t stream, uint32_t* out, size_t n) {
  ensure_sodium();
  for (size_t off = 0, chunk = 0; off < n; off += kMaskChunkWords, ++chunk) {
    mask_chunk(seed, stream, chunk, out + off, std::min(kMaskChunkWords, n - off));
  }
}

ChaChaRng::ChaChaRng(const Seed& seed, uint64_t stream) : key_(seed), stream_(stream) {
  ensure_sodium();
}

void ChaChaRng::refill() {
  unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
  stream_nonce(stream_, nonce);
  std::memset(buf_.data(), 0, buf_.size());
  crypto_stream_chacha20_xor_ic(buf_.data(), buf_.data(), buf_.size(), nonce, block_, key_.data());
  block_ += buf_.size() / kBlockBytes;
  pos_ = 0;
}

void ChaChaRng::fill(uint8_t* out, size_t n) {
  while (n > 0) {
    if (pos_ == buf_.size()) refill();
    const size_t m = std::min(n, buf_.size() - pos_);
    std::memcpy(out, buf_.data() + pos_, m);
    pos_ += m;
    out += m;
    n -= m;
  }
}

uint64_t ChaChaRng::next_u64() {
  uint8_t b[8];
  fill(b, sizeof(b));
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
  return v;
}

double ChaChaRng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

uint64_t ChaChaRng::below(uint64_t bound) {
  FLIGHT_CHECK(bound > 0, "ChaChaRng::below(0)");
  // Rejection: accept only values below the largest multiple of bound.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t v;
  do {
    v = next_u64();
  } while (v >= limit);
  return v % bound;
}

double ChaChaRng::gaussian() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1;
  do {
    u1 = uniform();
  } while (u1 <= 0.0);  // log(0) would be -inf
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * M_PI * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

}  // namespace flight::privacy
