// Secure aggregation arithmetic, SecAgg+-style (Bell et al., CCS 2020), for a
// semi-honest coordinator and aggregators.
//
// What each party does (the engine drives the rounds and moves the messages):
//   1. advertise  every selected worker makes an X25519 key pair for the round
//                 (SecAggWorker::create) and sends public_key() to the coordinator.
//   2. share      each worker gets the advertised keys, derives a pairwise seed
//                 with each of its k neighbours in the MaskingGraph (X25519 +
//                 BLAKE2b) and seals, for each neighbour, a Shamir share (t of k)
//                 of its secret key and of its self-mask seed (share_secrets).
//                 The coordinator routes the sealed shares (SecAggCoordinator).
//   3. mask       each worker opens its inbox, encodes its weighted update in
//                 fixed point (FixedPoint::encode, weight appended as the last
//                 word) and adds, modulo 2^32, its self mask and ±the pairwise
//                 masks (mask). Aggregators only add masked vectors (add_mod32);
//                 a subtree's sum still carries every member's self mask, so it
//                 is uniformly distributed to the aggregator.
//   4. unmask     the coordinator names the survivors (whose masked vectors are in
//                 the total); each surviving worker reveals its shares: the
//                 self-mask share of every surviving neighbour, the key share of
//                 every dropped one (reveal). The coordinator rebuilds those
//                 secrets and removes what is left of the masks (unmask), then
//                 decodes the fixed-point total.
// A worker that drops after step 3 costs one Shamir reconstruction; a round
// fails cleanly (FailedPrecondition naming the worker) when fewer than t of a
// needed worker's neighbours reveal.
//
// Thread safety: SecAggWorker and SecAggCoordinator are not synchronised; the
// free functions are reentrant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flight/base/status.h"
#include "flight/privacy/prg.h"
#include "flight/privacy/shamir.h"

namespace flight::privacy {

using PublicKey = std::array<uint8_t, 32>;

struct SecAggOptions {
  // Neighbours per worker in the masking graph. 0 (default): automatic,
  // min(n - 1, 2 * ceil(2 * log2 n)) — 28 for 100 workers, which survives 10 %
  // dropout with overwhelming probability. Rounded up to even below n - 1.
  int neighbours = 0;
  // Shamir threshold as a fraction of the neighbours: t = max(1, ceil(threshold
  // * k)). Default 0.5. Lower tolerates more dropouts; t - 1 colluding
  // neighbours of a worker learn nothing about its secrets.
  double threshold = 0.5;
  // Fixed-point fractional bits: a value v is sent as round(v * 2^bits). The
  // decoded total must stay within +-2^(31 - bits). Default 20: +-2048 with a
  // resolution of 1e-6 (the engine encodes weight-normalised update deltas,
  // whose total is a weighted mean of deltas).
  int fractional_bits = 20;

  Status validate() const;
};

// Fixed-point encoding of floats into uint32 modulo 2^32 (two's complement).
class FixedPoint {
 public:
  explicit FixedPoint(int fractional_bits)
      : scale_(static_cast<double>(uint64_t{1} << fractional_bits)) {}

  double scale() const { return scale_; }
  // out[i] = round(x[i] * weight * scale) mod 2^32. Values beyond the int32
  // range saturate; returns how many did.
  size_t encode(const float* x, size_t n, double weight, uint32_t* out) const;
  uint32_t encode_scalar(double v) const;
  // out[i] = int32(sum[i]) / scale / divisor.
  void decode(const uint32_t* sum, size_t n, double divisor, float* out) const;
  double decode_scalar(uint32_t v) const;
  // Largest error of a decoded total of `terms` encoded values (before the
  // division): each rounding is at most half a unit.
  double error_bound(size_t terms) const { return 0.5 * static_cast<double>(terms) / scale_; }

 private:
  double scale_;
};

// acc[i] += x[i] (mod 2^32): all an aggregator does with masked vectors.
void add_mod32(uint32_t* acc, const uint32_t* x, size_t n);

// Pearson chi-square of the byte frequencies of v[0, n) against uniform (255
// degrees of freedom; p = 0.001 critical value 330.5): how a masked vector
// is tested for looking uniform to whoever holds it.
double byte_chi_square(const uint32_t* v, size_t n);

// The masking graph: a Harary graph H(k, n) over a seeded permutation of the
// workers (each linked to its k/2 nearest on both sides of a ring), as in
// SecAgg+. k >= n - 1 gives the complete graph.
class MaskingGraph {
 public:
  MaskingGraph(int n, int k, uint64_t seed);

  int size() const { return static_cast<int>(adj_.size()); }
  int degree() const { return k_; }
  const std::vector<int>& neighbours(int i) const { return adj_[static_cast<size_t>(i)]; }
  bool adjacent(int i, int j) const;

 private:
  int k_;
  std::vector<std::vector<int>> adj_;  // sorted
};

// The public parameters of one secure round; every party gets the same copy.
struct SecAggRound {
  uint64_t round = 0;  // separates keys and keystreams of different rounds
  int num_workers = 0;
  int neighbours = 0;  // k (resolved)
  int threshold = 0;   // t (resolved)
  int fractional_bits = 16;
  uint64_t graph_seed = 0;

  // Resolves the options for n selected workers. n < 2: FailedPrecondition.
  static StatusOr<SecAggRound> plan(const SecAggOptions& options, int num_workers, uint64_t round,
                                    uint64_t graph_seed);
  // Built on each call (returned by value): keep the result in a variable
  // before taking references to its neighbour lists.
  MaskingGraph graph() const { return MaskingGraph(num_workers, neighbours, graph_seed); }
};

// Shares of `from`'s secrets for `to`, sealed (XSalsa20-Poly1305) under their
// pairwise key; the coordinator that routes it cannot read it.
struct SealedShare {
  int from = -1;
  int to = -1;
  std::vector<uint8_t> box;
};

struct RevealedShare {
  int owner = -1;          // whose secret this is a share of
  bool self_mask = false;  // true: share of owner's self-mask seed; false: of its key
  Share share;
};

struct Reveal {
  int from = -1;
  std::vector<RevealedShare> shares;
};

class SecAggWorker {
 public:
  // `secret` seeds the worker's key pair, self-mask seed and Shamir
  // coefficients: random_seed() in production, fixed values in tests.
  static StatusOr<SecAggWorker> create(const SecAggRound& round, int index, const Seed& secret);

  int index() const { return index_; }
  const PublicKey& public_key() const { return pk_; }

  // Step 2. keys[j]: worker j's advertised key, nullopt if j never advertised.
  // Returns one sealed share per advertised neighbour.
  StatusOr<std::vector<SealedShare>> share_secrets(
      const std::vector<std::optional<PublicKey>>& keys);
  // Step 3. The shares routed to this worker; masks involve exactly the
  // neighbours they came from.
  Status receive_shares(const std::vector<SealedShare>& inbox);
  // Step 3. v += self mask + sum of pairwise masks (mod 2^32). n must be the
  // same for every worker of the round.
  Status mask(uint32_t* v, size_t n) const;
  // Step 4. survived[j]: j's masked vector is in the total.
  StatusOr<Reveal> reveal(const std::vector<bool>& survived) const;

 private:
  SecAggWorker() = default;

  SecAggRound round_;
  int index_ = -1;
  std::vector<int> neighbours_;
  Seed sk_{};
  PublicKey pk_{};
  Seed self_seed_{};
  Seed coeff_seed_{};
  bool shared_ = false;
  std::vector<std::pair<int, Seed>> pair_seeds_;  // neighbour -> mask seed (advertised ones)
  std::vector<std::pair<int, Seed>> box_keys_;    // neighbour -> sealing key
  struct Held {
    int owner;
    Share key_share;
    Share self_share;
  };
  std::vector<Held> held_;  // opened inbox
};

class SecAggCoordinator {
 public:
  explicit SecAggCoordinator(const SecAggRound& round);

  // Names for the workers 0..n-1 in error messages (the engine's node ids);
  // "worker <index>" otherwise.
  void set_names(std::vector<std::string> names) { names_ = std::move(names); }

  // Step 1.
  Status add_public_key(int index, const PublicKey& key);
  const std::vector<std::optional<PublicKey>>& public_keys() const { return keys_; }
  // Step 2: one worker's outbox; records that it shared.
  Status accept_shares(int from, std::vector<SealedShare> outbox);
  // The sealed shares addressed to `to`. Call only once step 2 is closed (no
  // more accept_shares): a worker masks with exactly the senders in its inbox,
  // and unmask assumes every worker that shared is in its neighbours' inboxes.
  std::vector<SealedShare> inbox(int to) const;
  // Step 4. `sum` is the mod-2^32 total of the survivors' masked vectors.
  // Removes the self masks of the survivors and the pairwise masks they share
  // with workers that shared but dropped, in one pass over `sum`. Too few
  // revealed shares for some worker: FailedPrecondition naming it and the
  // counts, and `sum` is left untouched.
  Status unmask(uint32_t* sum, size_t n, const std::vector<bool>& survived,
                const std::vector<Reveal>& reveals) const;
  // unmask() in two steps, for callers that spread the pass over threads:
  // the masks to apply (stream round().round) to the total, or the same errors.
  StatusOr<std::vector<MaskTerm>> corrections(const std::vector<bool>& survived,
                                              const std::vector<Reveal>& reveals) const;
  const SecAggRound& round() const { return round_; }

 private:
  SecAggRound round_;
  MaskingGraph graph_;
  std::vector<std::optional<PublicKey>> keys_;
  std::vector<bool> shared_;
  std::vector<std::vector<SealedShare>> inbox_;
  std::vector<std::string> names_;

  std::string name(int i) const;
};

}  // namespace flight::privacy
