// Pseudorandom expansion for flight::privacy.
//
// Masks (secure aggregation) are AES-128 in counter mode (NIST SP 800-38A)
// through OpenSSL's EVP, which uses AES-NI: several times the throughput of
// ChaCha20 on CPUs with AES instructions, and a worker expands k + 1 masks
// per round, so this is the cost of a secure round. mask_key() is the one
// place that turns a 32-byte seed (an X25519 pair secret or a self-mask seed,
// derived with BLAKE2b in libsodium) into an AES key; the counter starts at
// 0 for every (seed, stream). Masks are added to (or subtracted from)
// fixed-point vectors modulo 2^32.
//
// ChaChaRng (libsodium's ChaCha20) draws the DP noise and the Shamir
// coefficients: a few bytes per draw, where throughput does not matter, and
// seeded DP runs keep their noise draws.
//
// Thread safety: the free functions are reentrant; an Aes128Ctr or a
// ChaChaRng is not synchronised (one per thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX, kept out of this header

namespace flight::privacy {

using Seed = std::array<uint8_t, 32>;

// Initialises libsodium once (idempotent, thread-safe). Every entry point of
// flight::privacy that needs it calls this; callers never have to.
void ensure_sodium();

// 32 bytes from the operating system's CSPRNG.
Seed random_seed();

// A seed derived from a 64-bit value (tests, reproducible simulations). Not
// secret: anyone who knows the value knows the seed.
Seed seed_from_u64(uint64_t value);

using AesKey = std::array<uint8_t, 16>;
using AesBlock = std::array<uint8_t, 16>;

// AES-128-CTR keystream: block i is AES_key(counter + i), the counter a
// 128-bit big-endian integer (SP 800-38A's standard incrementing function).
// Move-only; owns its OpenSSL context.
class Aes128Ctr {
 public:
  Aes128Ctr(const AesKey& key, const AesBlock& counter);
  ~Aes128Ctr();
  Aes128Ctr(Aes128Ctr&& other) noexcept : ctx_(other.ctx_) { other.ctx_ = nullptr; }
  Aes128Ctr& operator=(Aes128Ctr&& other) noexcept;
  Aes128Ctr(const Aes128Ctr&) = delete;
  Aes128Ctr& operator=(const Aes128Ctr&) = delete;

  // The next n bytes of keystream (any n; a partial block continues where
  // the previous call stopped).
  void keystream(uint8_t* out, size_t n);

 private:
  evp_cipher_ctx_st* ctx_;
};

// The AES key of the mask (seed, stream): BLAKE2b-128 keyed by the seed over
// a label and the stream. `stream` separates uses of one seed (the engine
// passes the round plan's id).
AesKey mask_key(const Seed& seed, uint64_t stream);

enum class MaskSign { kAdd, kSubtract };

// The mask of (seed, stream) is the little-endian 32-bit words of the
// Aes128Ctr(mask_key(seed, stream), counter 0) keystream. Masks are expanded
// and added in chunks of kMaskChunkWords words, so no keystream buffer of a
// vector's size ever exists.
constexpr size_t kMaskChunkWords = 2048;  // 8 KiB: keystream and vector chunk stay in L1

struct MaskTerm {
  Seed seed;
  MaskSign sign;
};

// v[i] = v[i] +- sum of the terms' mask words first_word + i (mod 2^32), for
// i in [0, n). One pass over v: chunk by chunk, every term's keystream is
// added while the chunk stays in cache (a worker's k + 1 masks or the
// coordinator's corrections cost keystream, not k passes over memory).
// `first_word` lets callers split one vector into ranges done on different
// threads.
void apply_masks(const MaskTerm* terms, size_t count, uint64_t stream, uint32_t* v, size_t n,
                 size_t first_word = 0);
void apply_mask(const Seed& seed, uint64_t stream, MaskSign sign, uint32_t* v, size_t n);

// out[i] = mask word i (the mask itself).
void expand_mask(const Seed& seed, uint64_t stream, uint32_t* out, size_t n);

// Deterministic CSPRNG over ChaCha20: uniform bits, uniform doubles, Gaussians.
class ChaChaRng {
 public:
  explicit ChaChaRng(const Seed& seed, uint64_t stream = 0);

  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Standard normal (Box–Muller on two uniforms; the pair's second value is kept).
  double gaussian();
  // Uniform in [0, bound) without modulo bias; bound > 0.
  uint64_t below(uint64_t bound);
  void fill(uint8_t* out, size_t n);

 private:
  void refill();

  Seed key_;
  uint64_t stream_;
  uint64_t block_ = 0;  // next ChaCha20 block counter
  std::array<uint8_t, 1024> buf_{};
  size_t pos_ = sizeof(buf_);
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace flight::privacy
