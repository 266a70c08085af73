// Shamir secret sharing of 32-byte secrets over the prime field GF(2^61 - 1).
//
// A secret is cut into five 56-bit limbs (7 bytes each; the last holds 4);
// each limb is the constant term of its own random polynomial of degree t - 1,
// and share x holds the five polynomials' values at x. Any t shares rebuild
// the secret; t - 1 shares are independent of it. Used by secure aggregation
// to let the coordinator rebuild a worker's mask seeds from its neighbours.
//
// Thread safety: values and pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "flight/base/status.h"
#include "flight/privacy/prg.h"

namespace flight::privacy {

constexpr uint64_t kShamirPrime = (uint64_t{1} << 61) - 1;
constexpr int kShamirLimbs = 5;
// Bytes of one serialised share: x (4) + limbs (5 x 8).
constexpr size_t kShareBytes = 4 + 8 * kShamirLimbs;

struct Share {
  uint32_t x = 0;  // evaluation point, 1..n (0 would be the secret itself)
  std::array<uint64_t, kShamirLimbs> y{};

  void serialize(uint8_t out[kShareBytes]) const;
  static StatusOr<Share> deserialize(const uint8_t* in, size_t len);
};

// n shares at x = 1..n, any t of which rebuild `secret`. Needs 1 <= t <= n.
// Coefficients come from `rng` (a secret ChaChaRng: the shares are only as
// unpredictable as it is).
StatusOr<std::vector<Share>> shamir_split(const Seed& secret, int t, int n, ChaChaRng& rng);

// Rebuilds the secret from at least t shares with distinct nonzero x.
// Fewer than t shares: FailedPrecondition saying how many were needed. Shares
// beyond the first t are checked against the polynomial; an inconsistent or
// malformed share: DataLoss.
StatusOr<Seed> shamir_reconstruct(const std::vector<Share>& shares, int t);

}  // namespace flight::privacy
