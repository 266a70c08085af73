#include "flight/privacy/shamir.h"

#include <set>
#include <string>

namespace flight::privacy {
namespace {

constexpr uint64_t kP = kShamirPrime;
constexpr int kLimbBytes = 7;

uint64_t reduce(unsigned __int128 x) {
  // 2^61 = 1 (mod p): fold the high bits onto the low ones twice.
  uint64_t lo = static_cast<uint64_t>(x & kP);
  uint64_t hi = static_cast<uint64_t>(x >> 61);
  uint64_t r = lo + (hi & kP) + (hi >> 61);
  r = (r & kP) + (r >> 61);
  return r >= kP ? r - kP : r;
}
uint64_t add(uint64_t a, uint64_t b) { return reduce(static_cast<unsigned __int128>(a) + b); }
uint64_t sub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kP - b; }
uint64_t mul(uint64_t a, uint64_t b) { return reduce(static_cast<unsigned __int128>(a) * b); }
uint64_t power(uint64_t a, uint64_t e) {
  uint64_t r = 1;
  while (e) {
    if (e & 1) r = mul(r, a);
    a = mul(a, a);
    e >>= 1;
  }
  return r;
}
uint64_t inverse(uint64_t a) { return power(a, kP - 2); }  // Fermat; a != 0

std::array<uint64_t, kShamirLimbs> to_limbs(const Seed& s) {
  std::array<uint64_t, kShamirLimbs> limbs{};
  for (size_t i = 0; i < s.size(); ++i) {
    limbs[i / kLimbBytes] |= static_cast<uint64_t>(s[i]) << (8 * (i % kLimbBytes));
  }
  return limbs;
}

// Lagrange basis weights at `at` for the points xs (distinct).
std::vector<uint64_t> lagrange_at(const std::vector<uint64_t>& xs, uint64_t at) {
  std::vector<uint64_t> w(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    uint64_t num = 1, den = 1;
    for (size_t j = 0; j < xs.size(); ++j) {
      if (i == j) continue;
      num = mul(num, sub(at, xs[j]));
      den = mul(den, sub(xs[i], xs[j]));
    }
    w[i] = mul(num, inverse(den));
  }
  return w;
}

}  // namespace

void Share::serialize(uint8_t out[kShareBytes]) const {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(x >> (8 * i));
  for (int l = 0; l < kShamirLimbs; ++l) {
    for (int i = 0; i < 8; ++i) out[4 + 8 * l + i] = static_cast<uint8_t>(y[l] >> (8 * i));
  }
}

StatusOr<Share> Share::deserialize(const uint8_t* in, size_t len) {
  if (len != kShareBytes) {
    return data_loss("Shamir share has " + std::to_string(len) + " bytes, expected " +
                     std::to_string(kShareBytes));
  }
  Share s;
  for (int i = 0; i < 4; ++i) s.x |= static_cast<uint32_t>(in[i]) << (8 * i);
  for (int l = 0; l < kShamirLimbs; ++l) {
    for (int i = 0; i < 8; ++i) s.y[l] |= static_cast<uint64_t>(in[4 + 8 * l + i]) << (8 * i);
    if (s.y[l] >= kP) return data_loss("Shamir share value outside the field");
  }
  if (s.x == 0) return data_loss("Shamir share at x = 0");
  return s;
}

StatusOr<std::vector<Share>> shamir_split(const Seed& secret, int t, int n, ChaChaRng& rng) {
  if (t < 1 || n < t) {
    return invalid_argument("Shamir split needs 1 <= t <= n (t = " + std::to_string(t) +
                            ", n = " + std::to_string(n) + ")");
  }
  const auto limbs = to_limbs(secret);
  // coeffs[l][0] = limb, the rest uniform in the field.
  std::vector<std::array<uint64_t, kShamirLimbs>> coeffs(static_cast<size_t>(t));
  coeffs[0] = limbs;
  for (int d = 1; d < t; ++d) {
    for (int l = 0; l < kShamirLimbs; ++l) coeffs[d][l] = rng.below(kP);
  }
  std::vector<Share> shares(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Share& s = shares[i];
    s.x = static_cast<uint32_t>(i + 1);
    for (int l = 0; l < kShamirLimbs; ++l) {
      uint64_t acc = 0;  // Horner
      for (int d = t - 1; d >= 0; --d) acc = add(mul(acc, s.x), coeffs[d][l]);
      s.y[l] = acc;
    }
  }
  return shares;
}

StatusOr<Seed> shamir_reconstruct(const std::vector<Share>& shares, int t) {
  if (t < 1) return invalid_argument("Shamir threshold must be >= 1");
  if (static_cast<int>(shares.size()) < t) {
    return failed_precondition("Shamir reconstruction needs " + std::to_string(t) +
                               " shares, has " + std::to_string(shares.size()));
  }
  std::set<uint32_t> seen;
  for (const auto& s : shares) {
    if (s.x == 0 || !seen.insert(s.x).second) {
      return data_loss("Shamir shares with a zero or repeated x (" + std::to_string(s.x) + ")");
    }
    for (uint64_t y : s.y) {
      if (y >= kP) return data_loss("Shamir share value outside the field");
    }
  }
  std::vector<uint64_t> xs(static_cast<size_t>(t));
  for (int i = 0; i < t; ++i) xs[i] = shares[i].x;
  const auto w0 = lagrange_at(xs, 0);
  std::array<uint64_t, kShamirLimbs> limbs{};
  for (int l = 0; l < kShamirLimbs; ++l) {
    for (int i = 0; i < t; ++i) limbs[l] = add(limbs[l], mul(w0[i], shares[i].y[l]));
  }
  // Extra shares must lie on the same polynomials.
  for (size_t e = static_cast<size_t>(t); e < shares.size(); ++e) {
    const auto we = lagrange_at(xs, shares[e].x);
    for (int l = 0; l < kShamirLimbs; ++l) {
      uint64_t v = 0;
      for (int i = 0; i < t; ++i) v = add(v, mul(we[i], shares[i].y[l]));
      if (v != shares[e].y[l]) {
        return data_loss("Shamir share at x = " + std::to_string(shares[e].x) +
                         " is inconsistent with the others");
      }
    }
  }
  Seed out{};
  for (size_t i = 0; i < out.size(); ++i) {
    const int l = static_cast<int>(i / kLimbBytes);
    const int shift = static_cast<int>(8 * (i % kLimbBytes));
    out[i] = static_cast<uint8_t>(limbs[l] >> shift);
  }
  // A limb wider than 7 bytes (4 for the last) cannot come from a real secret.
  for (int l = 0; l < kShamirLimbs; ++l) {
    const int bytes = l < kShamirLimbs - 1 ? kLimbBytes : 32 - kLimbBytes * (kShamirLimbs - 1);
    if (limbs[l] >> (8 * bytes)) return data_loss("Shamir shares do not encode a 32-byte secret");
  }
  return out;
}

}  // namespace flight::privacy
