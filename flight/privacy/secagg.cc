#include "flight/privacy/secagg.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <string>

namespace flight::privacy {
namespace {

std::string worker_name(int i) { return "worker " + std::to_string(i); }

// BLAKE2b-256 keyed by `key` over label || round || a || b || extra: one
// derivation for every per-round secret, so different uses never share a key.
Seed derive(const uint8_t* key, size_t key_len, const char* label, uint64_t round, int a, int b,
            const uint8_t* extra = nullptr, size_t extra_len = 0) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, key_len, 32);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label), std::strlen(label));
  uint8_t meta[16];
  for (int i = 0; i < 8; ++i) meta[i] = static_cast<uint8_t>(round >> (8 * i));
  for (int i = 0; i < 4; ++i)
    meta[8 + i] = static_cast<uint8_t>(static_cast<uint32_t>(a) >> (8 * i));
  for (int i = 0; i < 4; ++i)
    meta[12 + i] = static_cast<uint8_t>(static_cast<uint32_t>(b) >> (8 * i));
  crypto_generichash_update(&st, meta, sizeof(meta));
  if (extra_len) crypto_generichash_update(&st, extra, extra_len);
  Seed out;
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

// The pair's seeds for `labels` from one side's secret key and the other's
// public key; both sides get the same values (X25519 is symmetric), ordered by
// index. One scalar multiplication serves every label: it is the expensive step.
template <size_t N>
StatusOr<std::array<Seed, N>> pair_secrets(const Seed& sk, const PublicKey& other_pk,
                                           const std::array<const char*, N>& labels, uint64_t round,
                                           int i, int j) {
  uint8_t dh[crypto_scalarmult_BYTES];
  if (crypto_scalarmult(dh, sk.data(), other_pk.data()) != 0) {
    return invalid_argument("X25519 key agreement between " + worker_name(i) + " and " +
                            worker_name(j) + " failed (a low-order public key)");
  }
  std::array<Seed, N> out;
  for (size_t l = 0; l < N; ++l) {
    out[l] = derive(nullptr, 0, labels[l], round, std::min(i, j), std::max(i, j), dh, sizeof(dh));
  }
  sodium_memzero(dh, sizeof(dh));
  return out;
}

constexpr const char* kMaskLabel = "flight/secagg/pair-mask";
constexpr const char* kBoxLabel = "flight/secagg/share-box";
constexpr size_t kPlainBytes = 8 + 2 * kShareBytes;

// The pairwise mask the lower-indexed worker adds and the higher subtracts.
MaskSign pair_sign(int self, int other) {
  return self < other ? MaskSign::kAdd : MaskSign::kSubtract;
}
MaskSign opposite(MaskSign s) { return s == MaskSign::kAdd ? MaskSign::kSubtract : MaskSign::kAdd; }

}  // namespace

Status SecAggOptions::validate() const {
  if (neighbours < 0)
    return invalid_argument("secure_aggregation.neighbours must be >= 0 (0: automatic)");
  if (!(threshold > 0 && threshold <= 1)) {
    return invalid_argument("secure_aggregation.threshold must be in (0, 1], got " +
                            std::to_string(threshold));
  }
  if (fractional_bits < 0 || fractional_bits > 30) {
    return invalid_argument("secure_aggregation.fractional_bits must be in [0, 30], got " +
                            std::to_string(fractional_bits));
  }
  return Status::ok();
}

size_t FixedPoint::encode(const float* x, size_t n, double weight, uint32_t* out) const {
  const double f = weight * scale_;
  constexpr double kMax = 2147483647.0, kMin = -2147483648.0;
  // (y + 1.5 * 2^52) - 1.5 * 2^52 rounds y to the nearest integer, ties to
  // even, exactly as nearbyint in the default rounding mode for |y| < 2^51
  // (larger values saturate either way), without a libm call per element.
  constexpr double kRound = 0x1.8p52;
  size_t saturated = 0;
  for (size_t i = 0; i < n; ++i) {
    const double y = static_cast<double>(x[i]) * f;
    double v = (y + kRound) - kRound;
    const bool in_range = v <= kMax && v >= kMin;  // false for NaN
    saturated += !in_range;
    v = in_range ? v : (y > 0 ? kMax : kMin);
    out[i] = static_cast<uint32_t>(static_cast<int32_t>(v));
  }
  return saturated;
}

uint32_t FixedPoint::encode_scalar(double v) const {
  const double clamped = std::clamp(std::nearbyint(v * scale_), -2147483648.0, 2147483647.0);
  return static_cast<uint32_t>(static_cast<int32_t>(clamped));
}

void FixedPoint::decode(const uint32_t* sum, size_t n, double divisor, float* out) const {
  const double f = 1.0 / (scale_ * divisor);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int32_t>(sum[i]) * f);
}

double FixedPoint::decode_scalar(uint32_t v) const { return static_cast<int32_t>(v) / scale_; }

void add_mod32(uint32_t* acc, const uint32_t* x, size_t n) {
  for (size_t i = 0; i < n; ++i) acc[i] += x[i];  // unsigned: wraps modulo 2^32
}

double byte_chi_square(const uint32_t* v, size_t n) {
  std::vector<double> count(256, 0);
  for (size_t i = 0; i < n; ++i) {
    for (int b = 0; b < 4; ++b) count[(v[i] >> (8 * b)) & 0xff] += 1;
  }
  const double expected = 4.0 * static_cast<double>(n) / 256;
  double chi = 0;
  for (double c : count) chi += (c - expected) * (c - expected) / expected;
  return chi;
}

MaskingGraph::MaskingGraph(int n, int k, uint64_t seed)
    : k_(0), adj_(static_cast<size_t>(std::max(n, 0))) {
  if (n <= 1) return;
  if (k >= n - 1) {
    k_ = n - 1;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        if (i != j) adj_[i].push_back(j);
      }
    }
    return;
  }
  k_ = k + (k % 2);  // Harary graph with even degree
  std::vector<int> ring(static_cast<size_t>(n));
  std::iota(ring.begin(), ring.end(), 0);
  // A seeded Fisher–Yates over a portable generator: every party builds the
  // same graph from the same seed.
  std::mt19937_64 gen(seed);
  for (int i = n - 1; i > 0; --i) {
    const int j = static_cast<int>(gen() % static_cast<uint64_t>(i + 1));
    std::swap(ring[i], ring[j]);
  }
  for (int p = 0; p < n; ++p) {
    for (int d = 1; d <= k_ / 2; ++d) {
      const int a = ring[p], b = ring[(p + d) % n];
      adj_[a].push_back(b);
      adj_[b].push_back(a);
    }
  }
  for (auto& v : adj_) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
}

bool MaskingGraph::adjacent(int i, int j) const {
  const auto& v = adj_[static_cast<size_t>(i)];
  return std::binary_search(v.begin(), v.end(), j);
}

StatusOr<SecAggRound> SecAggRound::plan(const SecAggOptions& options, int num_workers,
                                        uint64_t round, uint64_t graph_seed) {
  FLIGHT_RETURN_IF_ERROR(options.validate());
  if (num_workers < 2) {
    return failed_precondition("secure aggregation needs at least 2 selected workers, got " +
                               std::to_string(num_workers));
  }
  SecAggRound r;
  r.round = round;
  r.num_workers = num_workers;
  r.fractional_bits = options.fractional_bits;
  r.graph_seed = graph_seed;
  int k = options.neighbours;
  if (k == 0)
    k = 2 * static_cast<int>(std::ceil(2.0 * std::log2(static_cast<double>(num_workers))));
  r.neighbours = MaskingGraph(num_workers, k, graph_seed).degree();
  r.threshold = std::max(1, static_cast<int>(std::ceil(options.threshold * r.neighbours - 1e-9)));
  return r;
}

// ---------------------------------------------------------------- worker

StatusOr<SecAggWorker> SecAggWorker::create(const SecAggRound& round, int index,
                                            const Seed& secret) {
  ensure_sodium();
  if (index < 0 || index >= round.num_workers) {
    return invalid_argument(worker_name(index) + " outside the round's " +
                            std::to_string(round.num_workers) + " workers");
  }
  SecAggWorker w;
  w.round_ = round;
  w.index_ = index;
  w.neighbours_ = round.graph().neighbours(index);
  w.sk_ = derive(secret.data(), secret.size(), "flight/secagg/secret-key", round.round, index, 0);
  w.self_seed_ =
      derive(secret.data(), secret.size(), "flight/secagg/self-mask", round.round, index, 0);
  w.coeff_seed_ =
      derive(secret.data(), secret.size(), "flight/secagg/shamir", round.round, index, 0);
  crypto_scalarmult_base(w.pk_.data(), w.sk_.data());
  return w;
}

StatusOr<std::vector<SealedShare>> SecAggWorker::share_secrets(
    const std::vector<std::optional<PublicKey>>& keys) {
  if (static_cast<int>(keys.size()) != round_.num_workers) {
    return invalid_argument("share_secrets got " + std::to_string(keys.size()) + " keys for " +
                            std::to_string(round_.num_workers) + " workers");
  }
  const int k = static_cast<int>(neighbours_.size());
  ChaChaRng rng(coeff_seed_);
  // Share x = position in the neighbour list + 1: every party can compute it.
  FLIGHT_ASSIGN_OR_RETURN(auto key_shares, shamir_split(sk_, round_.threshold, k, rng));
  FLIGHT_ASSIGN_OR_RETURN(auto self_shares, shamir_split(self_seed_, round_.threshold, k, rng));
  pair_seeds_.clear();
  box_keys_.clear();
  std::vector<SealedShare> out;
  for (int p = 0; p < k; ++p) {
    const int j = neighbours_[p];
    if (!keys[j]) continue;  // never advertised: no mask, no share
    FLIGHT_ASSIGN_OR_RETURN(
        const auto seeds,
        pair_secrets<2>(sk_, *keys[j], {kMaskLabel, kBoxLabel}, round_.round, index_, j));
    const Seed& mask_seed = seeds[0];
    const Seed& box_key = seeds[1];
    pair_seeds_.emplace_back(j, mask_seed);
    box_keys_.emplace_back(j, box_key);
    uint8_t plain[kPlainBytes];
    for (int b = 0; b < 4; ++b)
      plain[b] = static_cast<uint8_t>(static_cast<uint32_t>(index_) >> (8 * b));
    for (int b = 0; b < 4; ++b)
      plain[4 + b] = static_cast<uint8_t>(static_cast<uint32_t>(j) >> (8 * b));
    key_shares[p].serialize(plain + 8);
    self_shares[p].serialize(plain + 8 + kShareBytes);
    SealedShare s;
    s.from = index_;
    s.to = j;
    s.box.resize(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + kPlainBytes);
    randombytes_buf(s.box.data(), crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(s.box.data() + crypto_secretbox_NONCEBYTES, plain, kPlainBytes,
                          s.box.data(), box_key.data());
    sodium_memzero(plain, sizeof(plain));
    out.push_back(std::move(s));
  }
  shared_ = true;
  return out;
}

Status SecAggWorker::receive_shares(const std::vector<SealedShare>& inbox) {
  if (!shared_)
    return failed_precondition(worker_name(index_) + " received shares before sharing its own");
  held_.clear();
  for (const auto& s : inbox) {
    auto key = std::find_if(box_keys_.begin(), box_keys_.end(),
                            [&](const auto& e) { return e.first == s.from; });
    if (s.to != index_ || key == box_keys_.end()) {
      return invalid_argument(worker_name(index_) + " got a share from " + worker_name(s.from) +
                              " addressed to " + worker_name(s.to) +
                              ", which is not its neighbour's");
    }
    if (s.box.size() != crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + kPlainBytes) {
      return data_loss("sealed share from " + worker_name(s.from) + " has the wrong size");
    }
    uint8_t plain[kPlainBytes];
    if (crypto_secretbox_open_easy(plain, s.box.data() + crypto_secretbox_NONCEBYTES,
                                   s.box.size() - crypto_secretbox_NONCEBYTES, s.box.data(),
                                   key->second.data()) != 0) {
      return data_loss("sealed share from " + worker_name(s.from) + " to " + worker_name(index_) +
                       " failed authentication");
    }
    uint32_t from = 0, to = 0;
    for (int b = 0; b < 4; ++b) from |= static_cast<uint32_t>(plain[b]) << (8 * b);
    for (int b = 0; b < 4; ++b) to |= static_cast<uint32_t>(plain[4 + b]) << (8 * b);
    if (static_cast<int>(from) != s.from || static_cast<int>(to) != index_) {
      return data_loss("sealed share from " + worker_name(s.from) + " names other parties inside");
    }
    FLIGHT_ASSIGN_OR_RETURN(Share ks, Share::deserialize(plain + 8, kShareBytes));
    FLIGHT_ASSIGN_OR_RETURN(Share ss, Share::deserialize(plain + 8 + kShareBytes, kShareBytes));
    sodium_memzero(plain, sizeof(plain));
    held_.push_back({s.from, ks, ss});
  }
  return Status::ok();
}

Status SecAggWorker::mask(uint32_t* v, size_t n) const {
  if (!shared_)
    return failed_precondition(worker_name(index_) + " masked before sharing its secrets");
  std::vector<MaskTerm> terms;
  terms.reserve(held_.size() + 1);
  terms.push_back({self_seed_, MaskSign::kAdd});
  // Pairwise masks only with neighbours whose shares arrived: they shared too,
  // so the coordinator can remove the mask if either side drops later.
  for (const auto& h : held_) {
    auto it = std::find_if(pair_seeds_.begin(), pair_seeds_.end(),
                           [&](const auto& e) { return e.first == h.owner; });
    if (it == pair_seeds_.end()) return internal_error("no pair seed for a held share");
    terms.push_back({it->second, pair_sign(index_, h.owner)});
  }
  apply_masks(terms.data(), terms.size(), round_.round, v, n);
  return Status::ok();
}

StatusOr<Reveal> SecAggWorker::reveal(const std::vector<bool>& survived) const {
  if (static_cast<int>(survived.size()) != round_.num_workers) {
    return invalid_argument("reveal got a survivor list of " + std::to_string(survived.size()) +
                            " for " + std::to_string(round_.num_workers) + " workers");
  }
  Reveal r;
  r.from = index_;
  // Exactly one of the two shares per neighbour: revealing both would let the
  // coordinator unmask that neighbour's individual vector.
  for (const auto& h : held_) {
    const bool alive = survived[h.owner];
    r.shares.push_back({h.owner, alive, alive ? h.self_share : h.key_share});
  }
  return r;
}

// ---------------------------------------------------------------- coordinator

std::string SecAggCoordinator::name(int i) const {
  if (i >= 0 && static_cast<size_t>(i) < names_.size()) return "worker " + names_[i];
  return worker_name(i);
}

SecAggCoordinator::SecAggCoordinator(const SecAggRound& round)
    : round_(round),
      graph_(round.graph()),
      keys_(static_cast<size_t>(round.num_workers)),
      shared_(static_cast<size_t>(round.num_workers), false),
      inbox_(static_cast<size_t>(round.num_workers)) {}

Status SecAggCoordinator::add_public_key(int index, const PublicKey& key) {
  if (index < 0 || index >= round_.num_workers) {
    return invalid_argument("public key from " + name(index) + ", outside the round");
  }
  if (keys_[index]) return already_exists(name(index) + " advertised twice");
  keys_[index] = key;
  return Status::ok();
}

Status SecAggCoordinator::accept_shares(int from, std::vector<SealedShare> outbox) {
  if (from < 0 || from >= round_.num_workers || !keys_[from]) {
    return invalid_argument("shares from " + name(from) + ", which did not advertise a key");
  }
  if (shared_[from]) return already_exists(name(from) + " shared twice");
  for (const auto& s : outbox) {
    if (s.from != from || s.to < 0 || s.to >= round_.num_workers || !graph_.adjacent(from, s.to)) {
      return invalid_argument("share from " + name(from) + " addressed to " + name(s.to) +
                              ", not one of its neighbours");
    }
  }
  shared_[from] = true;
  for (auto& s : outbox) inbox_[s.to].push_back(std::move(s));
  return Status::ok();
}

std::vector<SealedShare> SecAggCoordinator::inbox(int to) const {
  std::vector<SealedShare> out;
  // Only from workers that shared: a share's sender is masked with `to` only then.
  for (const auto& s : inbox_[to]) {
    if (shared_[s.from]) out.push_back(s);
  }
  return out;
}

StatusOr<std::vector<MaskTerm>> SecAggCoordinator::corrections(
    const std::vector<bool>& survived, const std::vector<Reveal>& reveals) const {
  const int nw = round_.num_workers;
  if (static_cast<int>(survived.size()) != nw) {
    return invalid_argument("unmask got a survivor list of " + std::to_string(survived.size()) +
                            " for " + std::to_string(nw) + " workers");
  }
  for (int i = 0; i < nw; ++i) {
    if (survived[i] && !shared_[i]) {
      return invalid_argument(name(i) + " is listed as a survivor but never shared its secrets");
    }
  }
  // Collect shares per (owner, kind). x is the revealer's position among the
  // owner's neighbours + 1, as the owner assigned them.
  std::map<std::pair<int, bool>, std::vector<Share>> got;
  for (const auto& r : reveals) {
    if (r.from < 0 || r.from >= nw || !survived[r.from]) continue;  // only survivors speak
    for (const auto& rs : r.shares) {
      if (rs.owner < 0 || rs.owner >= nw || !graph_.adjacent(rs.owner, r.from)) {
        return invalid_argument("reveal from " + name(r.from) + " holds a share of " +
                                name(rs.owner) + ", not its neighbour");
      }
      if (rs.self_mask != static_cast<bool>(survived[rs.owner])) {
        return invalid_argument("reveal from " + name(r.from) +
                                " holds the wrong kind of share of " + name(rs.owner));
      }
      const auto& nb = graph_.neighbours(rs.owner);
      const uint32_t x =
          static_cast<uint32_t>(std::lower_bound(nb.begin(), nb.end(), r.from) - nb.begin()) + 1;
      if (rs.share.x != x) {
        return invalid_argument("reveal from " + name(r.from) +
                                " holds share x = " + std::to_string(rs.share.x) + " of " +
                                name(rs.owner) + ", expected " + std::to_string(x));
      }
      got[{rs.owner, rs.self_mask}].push_back(rs.share);
    }
  }
  auto rebuild = [&](int owner, bool self) -> StatusOr<Seed> {
    auto it = got.find({owner, self});
    const size_t have = it == got.end() ? 0 : it->second.size();
    if (static_cast<int>(have) < round_.threshold) {
      return failed_precondition(
          "secure aggregation cannot unmask: " + name(owner) + (self ? " survived" : " dropped") +
          " and only " + std::to_string(have) + " of its neighbours revealed a share (threshold " +
          std::to_string(round_.threshold) + " of " + std::to_string(round_.neighbours) + ")");
    }
    auto s = shamir_reconstruct(it->second, round_.threshold);
    if (!s.is_ok()) return s.status().with_context("rebuilding " + name(owner) + "'s secret");
    return s;
  };
  std::vector<MaskTerm> terms;
  for (int i = 0; i < nw; ++i) {
    if (survived[i]) {
      FLIGHT_ASSIGN_OR_RETURN(Seed b, rebuild(i, true));
      terms.push_back({b, MaskSign::kSubtract});
      continue;
    }
    if (!shared_[i]) continue;  // never masked with anyone
    // Dropped after sharing: its surviving neighbours added pairwise masks with it.
    std::vector<int> alive;
    for (int j : graph_.neighbours(i)) {
      if (survived[j]) alive.push_back(j);
    }
    if (alive.empty()) continue;
    FLIGHT_ASSIGN_OR_RETURN(Seed sk, rebuild(i, false));
    for (int j : alive) {
      FLIGHT_ASSIGN_OR_RETURN(const auto seed,
                              pair_secrets<1>(sk, *keys_[j], {kMaskLabel}, round_.round, i, j));
      terms.push_back({seed[0], opposite(pair_sign(j, i))});
    }
  }
  return terms;
}

Status SecAggCoordinator::unmask(uint32_t* sum, size_t n, const std::vector<bool>& survived,
                                 const std::vector<Reveal>& reveals) const {
  // All corrections are derived before any is applied: a failure leaves `sum` untouched.
  FLIGHT_ASSIGN_OR_RETURN(auto terms, corrections(survived, reveals));
  apply_masks(terms.data(), terms.size(), round_.round, sum, n);
  return Status::ok();
}

}  // namespace flight::privacy
