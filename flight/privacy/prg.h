// Pseudorandom expansion for flight::privacy: ChaCha20 (libsodium) keyed by
// 32-byte seeds. Masks for secure aggregation are keystream words added to (or
// subtracted from) fixed-point vectors modulo 2^32; ChaChaRng draws the DP noise
// and the Shamir coefficients from the same cipher.
//
// Thread safety: the free functions are reentrant; a ChaChaRng is not
// synchronised (one per thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

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

enum class MaskSign { kAdd, kSubtract };

// The mask of (seed, stream): 32-bit little-endian words of ChaCha20 (IETF,
// key = seed), in chunks of kMaskChunkWords words; chunk c is the keystream
// for nonce = stream (8 bytes) || c (4 bytes), so any chunk can be produced
// on its own and no keystream buffer of size n ever exists.
constexpr size_t kMaskChunkWords = 4096;  // 16 KiB: stays in L1/L2 while used

// v[i] = v[i] ± mask_i (mod 2^32). `stream` separates uses of one seed.
void apply_mask(const Seed& seed, uint64_t stream, MaskSign sign, uint32_t* v, size_t n);

struct MaskTerm {
  Seed seed;
  MaskSign sign;
};
// Applies several masks in one pass over v: chunk by chunk, every term's
// keystream is added while the chunk of v stays in cache (a worker's k + 1
// masks or the coordinator's corrections cost keystream, not k passes over
// memory).
void apply_masks(const MaskTerm* terms, size_t count, uint64_t stream, uint32_t* v, size_t n);

// out[i] = mask_i (the mask itself).
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
