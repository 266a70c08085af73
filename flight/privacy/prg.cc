#include "flight/privacy/prg.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "flight/base/check.h"

namespace flight::privacy {
namespace {

constexpr size_t kBlockBytes = 64;  // one ChaCha20 block

void stream_nonce(uint64_t stream, unsigned char nonce[crypto_stream_chacha20_NONCEBYTES]) {
  for (int i = 0; i < 8; ++i) nonce[i] = static_cast<unsigned char>(stream >> (8 * i));
}

constexpr const char* kMaskKeyLabel = "flight/secagg/mask-aes128-ctr";

// Plaintext of the keystream: CTR mode XORs the keystream into its input.
alignas(64) const uint8_t kZeros[kMaskChunkWords * sizeof(uint32_t)] = {};

// The big-endian 128-bit counter of AES block `block`.
AesBlock counter_block(uint64_t block) {
  AesBlock c{};
  for (int i = 0; i < 8; ++i) c[15 - i] = static_cast<uint8_t>(block >> (8 * i));
  return c;
}

// Unsigned arithmetic wraps: exactly addition modulo 2^32. Separate loops so
// each vectorises; an AVX2 clone (chosen at load time where the CPU has it)
// halves the add's share of a mask, which is a third of the keystream's.
__attribute__((target_clones("avx2", "default"))) void add_words(uint32_t* dst, const uint32_t* x,
                                                                 size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += x[i];
}
__attribute__((target_clones("avx2", "default"))) void subtract_words(uint32_t* dst,
                                                                      const uint32_t* x, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] -= x[i];
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

Aes128Ctr::Aes128Ctr(const AesKey& key, const AesBlock& counter) : ctx_(EVP_CIPHER_CTX_new()) {
  FLIGHT_CHECK(ctx_ != nullptr, "EVP_CIPHER_CTX_new failed");
  FLIGHT_CHECK(
      EVP_EncryptInit_ex(ctx_, EVP_aes_128_ctr(), nullptr, key.data(), counter.data()) == 1,
      "AES-128-CTR initialisation failed");
}

Aes128Ctr::~Aes128Ctr() { EVP_CIPHER_CTX_free(ctx_); }

Aes128Ctr& Aes128Ctr::operator=(Aes128Ctr&& other) noexcept {
  if (this != &other) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = other.ctx_;
    other.ctx_ = nullptr;
  }
  return *this;
}

void Aes128Ctr::keystream(uint8_t* out, size_t n) {
  while (n > 0) {
    const size_t m = std::min(n, sizeof(kZeros));
    int len = 0;
    FLIGHT_CHECK(EVP_EncryptUpdate(ctx_, out, &len, kZeros, static_cast<int>(m)) == 1 &&
                     static_cast<size_t>(len) == m,
                 "AES-128-CTR keystream failed");
    out += m;
    n -= m;
  }
}

AesKey mask_key(const Seed& seed, uint64_t stream) {
  ensure_sodium();
  uint8_t msg[64];
  const size_t label = std::strlen(kMaskKeyLabel);
  std::memcpy(msg, kMaskKeyLabel, label);
  for (int i = 0; i < 8; ++i) msg[label + i] = static_cast<uint8_t>(stream >> (8 * i));
  AesKey key;
  crypto_generichash(key.data(), key.size(), msg, label + 8, seed.data(), seed.size());
  return key;
}

void apply_masks(const MaskTerm* terms, size_t count, uint64_t stream, uint32_t* v, size_t n,
                 size_t first_word) {
  if (n == 0 || count == 0) return;
  constexpr size_t kBlockWords = 4;  // one AES block
  std::vector<Aes128Ctr> ciphers;
  ciphers.reserve(count);
  uint32_t skip[kBlockWords];
  for (size_t t = 0; t < count; ++t) {
    ciphers.emplace_back(mask_key(terms[t].seed, stream), counter_block(first_word / kBlockWords));
    // A range starting inside a block discards that block's leading words.
    if (first_word % kBlockWords) {
      ciphers.back().keystream(reinterpret_cast<uint8_t*>(skip),
                               first_word % kBlockWords * sizeof(uint32_t));
    }
  }
  alignas(64) uint32_t buf[kMaskChunkWords];
  for (size_t off = 0; off < n; off += kMaskChunkWords) {
    const size_t m = std::min(kMaskChunkWords, n - off);
    for (size_t t = 0; t < count; ++t) {
      ciphers[t].keystream(reinterpret_cast<uint8_t*>(buf), m * sizeof(uint32_t));
      if (terms[t].sign == MaskSign::kAdd) {
        add_words(v + off, buf, m);
      } else {
        subtract_words(v + off, buf, m);
      }
    }
  }
}

void apply_mask(const Seed& seed, uint64_t stream, MaskSign sign, uint32_t* v, size_t n) {
  const MaskTerm term{seed, sign};
  apply_masks(&term, 1, stream, v, n);
}

void expand_mask(const Seed& seed, uint64_t stream, uint32_t* out, size_t n) {
  Aes128Ctr(mask_key(seed, stream), counter_block(0))
      .keystream(reinterpret_cast<uint8_t*>(out), n * sizeof(uint32_t));
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
