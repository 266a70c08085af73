// Secure aggregation arithmetic: Shamir, masks, fixed point, and whole
// simulated rounds (every party in one process, messages passed by value).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "flight/privacy/prg.h"
#include "flight/privacy/secagg.h"
#include "flight/privacy/shamir.h"

namespace flight::privacy {
namespace {

TEST(Shamir, AnyThresholdSubsetRebuildsTheSecret) {
  ChaChaRng rng(seed_from_u64(1));
  for (auto [t, n] : std::vector<std::pair<int, int>>{{1, 1}, {1, 4}, {3, 5}, {8, 14}, {14, 28}}) {
    Seed secret;
    rng.fill(secret.data(), secret.size());
    auto shares = shamir_split(secret, t, n, rng);
    ASSERT_TRUE(shares.is_ok()) << shares.status();
    ASSERT_EQ(static_cast<int>(shares->size()), n);
    for (int trial = 0; trial < 5; ++trial) {
      std::vector<Share> pick = *shares;
      for (int i = n - 1; i > 0; --i) std::swap(pick[i], pick[rng.below(i + 1)]);
      pick.resize(t + static_cast<int>(rng.below(n - t + 1)));
      auto back = shamir_reconstruct(pick, t);
      ASSERT_TRUE(back.is_ok()) << back.status();
      EXPECT_EQ(*back, secret) << "t=" << t << " n=" << n;
    }
  }
}

TEST(Shamir, TooFewSharesFailCleanly) {
  ChaChaRng rng(seed_from_u64(2));
  Seed secret{};
  secret[0] = 7;
  auto shares = shamir_split(secret, 4, 6, rng);
  ASSERT_TRUE(shares.is_ok());
  std::vector<Share> three(shares->begin(), shares->begin() + 3);
  auto r = shamir_reconstruct(three, 4);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("needs 4 shares, has 3"), std::string::npos);
  EXPECT_EQ(shamir_split(secret, 5, 4, rng).status().code(), StatusCode::kInvalidArgument);
}

TEST(Shamir, CorruptShareIsDetectedAndSerialisationRoundTrips) {
  ChaChaRng rng(seed_from_u64(3));
  Seed secret;
  rng.fill(secret.data(), secret.size());
  auto shares = shamir_split(secret, 3, 6, rng);
  ASSERT_TRUE(shares.is_ok());
  for (const auto& s : *shares) {
    uint8_t buf[kShareBytes];
    s.serialize(buf);
    auto back = Share::deserialize(buf, sizeof(buf));
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(back->x, s.x);
    EXPECT_EQ(back->y, s.y);
  }
  auto bad = *shares;
  bad[4].y[2] = (bad[4].y[2] + 1) % kShamirPrime;
  auto r = shamir_reconstruct(bad, 3);  // shares 3..5 are checked against 0..2
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  uint8_t buf[kShareBytes];
  (*shares)[0].serialize(buf);
  EXPECT_EQ(Share::deserialize(buf, kShareBytes - 1).status().code(), StatusCode::kDataLoss);
}

// NIST SP 800-38A, Recommendation for Block Cipher Modes of Operation (2001),
// Appendix F.5.1 CTR-AES128.Encrypt: key, initial counter, the four plaintext
// blocks and the published ciphertext blocks. The second block's counter
// (...fdff00) carries across a byte, so the counter increment is checked too.
TEST(Masks, Aes128CtrMatchesNistSp80038aF51) {
  auto hex = [](const std::string& h) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < h.size(); i += 2) {
      out.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
    }
    return out;
  };
  AesKey key;
  AesBlock counter;
  const auto k = hex("2b7e151628aed2a6abf7158809cf4f3c");
  const auto c = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  std::copy(k.begin(), k.end(), key.begin());
  std::copy(c.begin(), c.end(), counter.begin());
  const auto plain =
      hex("6bc1bee22e409f96e93d7e117393172a"
          "ae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52ef"
          "f69f2445df4f9b17ad2b417be66c3710");
  const auto cipher =
      hex("874d6191b620e3261bef6864990db6ce"
          "9806f66b7970fdff8617187bb9fffdff"
          "5ae4df3edbd5d35e5b4f09020db03eab"
          "1e031dda2fbe03d1792170a0f3009cee");
  // In one call, and in pieces that split blocks (the stream must continue).
  for (const size_t piece : {size_t{64}, size_t{7}, size_t{16}}) {
    Aes128Ctr ctr(key, counter);
    std::vector<uint8_t> ks(plain.size());
    for (size_t off = 0; off < ks.size(); off += piece) {
      ctr.keystream(ks.data() + off, std::min(piece, ks.size() - off));
    }
    for (size_t i = 0; i < plain.size(); ++i) {
      ASSERT_EQ(static_cast<uint8_t>(plain[i] ^ ks[i]), cipher[i])
          << "byte " << i << ", pieces of " << piece;
    }
  }
}

TEST(Masks, AnyRangeOfAMaskCanBeAppliedOnItsOwn) {
  const Seed a = seed_from_u64(11), b = seed_from_u64(12);
  const MaskTerm terms[] = {{a, MaskSign::kAdd}, {b, MaskSign::kSubtract}};
  const size_t n = 5 * kMaskChunkWords + 3;
  std::vector<uint32_t> whole(n, 7), pieces(n, 7);
  apply_masks(terms, 2, 3, whole.data(), n);
  // Ranges starting inside an AES block and spanning chunks, as threads split it.
  const size_t cuts[] = {0, 1, 6, kMaskChunkWords + 2, 3 * kMaskChunkWords - 1, n};
  for (size_t c = 0; c + 1 < std::size(cuts); ++c) {
    apply_masks(terms, 2, 3, pieces.data() + cuts[c], cuts[c + 1] - cuts[c], cuts[c]);
  }
  EXPECT_EQ(pieces, whole);
  std::vector<uint32_t> ma(n), mb(n);
  expand_mask(a, 3, ma.data(), n);
  expand_mask(b, 3, mb.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(whole[i], 7u + ma[i] - mb[i]) << i;
}

TEST(Masks, AddThenSubtractIsIdentityAndChunksAreSeamless) {
  const Seed seed = seed_from_u64(4);
  const size_t n = 3 * kMaskChunkWords + 17;  // crosses chunk boundaries, odd tail
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  const auto orig = v;
  apply_mask(seed, 9, MaskSign::kAdd, v.data(), n);
  EXPECT_NE(v, orig);
  std::vector<uint32_t> mask(n);
  expand_mask(seed, 9, mask.data(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], orig[i] + mask[i]) << i;
  // A prefix of a longer expansion is the shorter expansion.
  std::vector<uint32_t> longer(n + 5000);
  expand_mask(seed, 9, longer.data(), longer.size());
  EXPECT_TRUE(std::equal(mask.begin(), mask.end(), longer.begin()));
  // Another stream is another mask.
  std::vector<uint32_t> other(n);
  expand_mask(seed, 10, other.data(), n);
  EXPECT_NE(other, mask);
  apply_mask(seed, 9, MaskSign::kSubtract, v.data(), n);
  EXPECT_EQ(v, orig);
}

TEST(FixedPoint, RoundTripWithinHalfAUnitAndSaturates) {
  FixedPoint fp(16);
  std::vector<float> x = {0.f, 1.f, -1.f, 0.123456f, -3.75f, 1e-7f};
  std::vector<uint32_t> enc(x.size());
  EXPECT_EQ(fp.encode(x.data(), x.size(), 2.0, enc.data()), 0u);
  std::vector<float> dec(x.size());
  fp.decode(enc.data(), enc.size(), 2.0, dec.data());
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_NEAR(dec[i], x[i], fp.error_bound(1) / 2 + 1e-7) << i;
  std::vector<float> big = {40000.f, -40000.f, NAN};
  std::vector<uint32_t> e2(3);
  EXPECT_EQ(fp.encode(big.data(), 3, 1.0, e2.data()), 3u);
  EXPECT_EQ(static_cast<int32_t>(e2[0]), INT32_MAX);
  EXPECT_EQ(static_cast<int32_t>(e2[1]), INT32_MIN);
  EXPECT_NEAR(fp.decode_scalar(fp.encode_scalar(-2.5)), -2.5, 1e-9);
}

TEST(MaskingGraph, HararyRingIsSymmetricRegularAndSeeded) {
  MaskingGraph g(100, 28, 5);
  EXPECT_EQ(g.degree(), 28);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(g.neighbours(i).size(), 28u);
    for (int j : g.neighbours(i)) {
      EXPECT_NE(i, j);
      EXPECT_TRUE(g.adjacent(j, i));
    }
  }
  MaskingGraph same(100, 28, 5), other(100, 28, 6);
  EXPECT_EQ(same.neighbours(3), g.neighbours(3));
  bool differs = false;
  for (int i = 0; i < 100; ++i) differs |= other.neighbours(i) != g.neighbours(i);
  EXPECT_TRUE(differs);
  MaskingGraph full(6, 10, 1);
  EXPECT_EQ(full.degree(), 5);
  EXPECT_EQ(full.neighbours(0), (std::vector<int>{1, 2, 3, 4, 5}));
}

// Every party of one round in one process.
struct SimRound {
  SecAggRound round;
  int d = 0;
  std::vector<SecAggWorker> workers;
  std::vector<std::vector<float>> updates;
  std::vector<double> weights;
  std::vector<std::vector<uint32_t>> masked;  // d + 1 words (weight last)
  std::unique_ptr<SecAggCoordinator> coord;

  SimRound(const SecAggOptions& o, int n, int dim, uint64_t seed) : d(dim) {
    auto r = SecAggRound::plan(o, n, /*round=*/seed, /*graph_seed=*/seed * 7 + 1);
    FLIGHT_CHECK(r.is_ok(), r.status().to_string());
    round = *r;
    coord = std::make_unique<SecAggCoordinator>(round);
    ChaChaRng rng(seed_from_u64(seed), 1);
    for (int i = 0; i < n; ++i) {
      auto w = SecAggWorker::create(round, i, seed_from_u64(seed * 100003 + i));
      FLIGHT_CHECK(w.is_ok(), w.status().to_string());
      workers.push_back(std::move(*w));
      std::vector<float> u(static_cast<size_t>(d));
      for (auto& x : u) x = static_cast<float>(rng.uniform() * 2 - 1);
      updates.push_back(std::move(u));
      weights.push_back(0.5 + rng.uniform());
    }
    for (auto& w : workers) FLIGHT_CHECK(coord->add_public_key(w.index(), w.public_key()).is_ok());
    for (auto& w : workers) {
      auto out = w.share_secrets(coord->public_keys());
      FLIGHT_CHECK(out.is_ok(), out.status().to_string());
      FLIGHT_CHECK(coord->accept_shares(w.index(), std::move(*out)).is_ok());
    }
    FixedPoint fp(round.fractional_bits);
    for (auto& w : workers) {
      FLIGHT_CHECK(w.receive_shares(coord->inbox(w.index())).is_ok());
      std::vector<uint32_t> v(static_cast<size_t>(d) + 1);
      fp.encode(updates[w.index()].data(), d, weights[w.index()], v.data());
      v[d] = fp.encode_scalar(weights[w.index()]);
      FLIGHT_CHECK(w.mask(v.data(), v.size()).is_ok());
      masked.push_back(std::move(v));
    }
  }

  std::vector<uint32_t> sum_of(const std::vector<int>& who) const {
    std::vector<uint32_t> s(static_cast<size_t>(d) + 1, 0);
    for (int i : who) add_mod32(s.data(), masked[i].data(), s.size());
    return s;
  }

  // Survivors = all but `dropped`; reveals from survivors not in `silent`.
  Status finish(const std::set<int>& dropped, const std::set<int>& silent, std::vector<float>* avg,
                std::vector<double>* plain, double* bound) {
    const int n = round.num_workers;
    std::vector<bool> survived(static_cast<size_t>(n), true);
    std::vector<int> alive;
    for (int i = 0; i < n; ++i) {
      if (dropped.count(i))
        survived[i] = false;
      else
        alive.push_back(i);
    }
    std::vector<Reveal> reveals;
    for (int i : alive) {
      if (silent.count(i)) continue;
      auto r = workers[i].reveal(survived);
      FLIGHT_RETURN_IF_ERROR(r.status());
      reveals.push_back(std::move(*r));
    }
    auto total = sum_of(alive);
    FLIGHT_RETURN_IF_ERROR(coord->unmask(total.data(), total.size(), survived, reveals));
    FixedPoint fp(round.fractional_bits);
    const double w = fp.decode_scalar(total[d]);
    avg->assign(static_cast<size_t>(d), 0.f);
    fp.decode(total.data(), d, w, avg->data());
    plain->assign(static_cast<size_t>(d), 0.0);
    double wsum = 0, amax = 0;
    for (int i : alive) {
      wsum += weights[i];
      for (int k = 0; k < d; ++k) (*plain)[k] += weights[i] * updates[i][k];
    }
    for (auto& p : *plain) {
      p /= wsum;
      amax = std::max(amax, std::fabs(p));
    }
    // Numerator and weight each carry <= |alive| half-unit roundings.
    const double e = fp.error_bound(alive.size());
    *bound = (e + amax * e) / (wsum - e) + 1e-6 * amax;  // + float32 output rounding
    return Status::ok();
  }
};

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double bound) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t k = 0; k < got.size(); ++k) worst = std::max(worst, std::fabs(got[k] - want[k]));
  EXPECT_LE(worst, bound);
  EXPECT_GT(bound, 0);
  EXPECT_LT(bound, 1e-4);  // the bound itself is tight enough to mean something
}

// How many of i's neighbours are in `alive` and not silent.
int revealing_neighbours(const SimRound& r, int i, const std::set<int>& dropped,
                         const std::set<int>& silent) {
  int c = 0;
  const MaskingGraph g = r.round.graph();
  for (int j : g.neighbours(i)) c += !dropped.count(j) && !silent.count(j);
  return c;
}

TEST(SecAgg, UnmaskedTotalEqualsPlainWeightedAverage) {
  SimRound r(SecAggOptions{}, 20, 5000, 11);
  std::vector<float> avg;
  std::vector<double> plain;
  double bound = 0;
  ASSERT_TRUE(r.finish({}, {}, &avg, &plain, &bound).is_ok());
  expect_close(avg, plain, bound);
}

std::set<int> random_subset(int n, int count, uint64_t seed) {
  ChaChaRng rng(seed_from_u64(seed), 2);
  std::vector<int> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  for (int i = n - 1; i > 0; --i) std::swap(all[i], all[rng.below(i + 1)]);
  return std::set<int>(all.begin(), all.begin() + count);
}

void dropout_round(const SecAggOptions& o, int n, double fraction, uint64_t seed) {
  SimRound r(o, n, 2000, seed);
  const auto dropped = random_subset(n, static_cast<int>(std::lround(fraction * n)), seed);
  // Precondition of recovery: every worker (survivor or not) keeps >= t
  // revealing neighbours. Asserted, not assumed, so the test says why.
  for (int i = 0; i < n; ++i) {
    ASSERT_GE(revealing_neighbours(r, i, dropped, {}), r.round.threshold) << "worker " << i;
  }
  std::vector<float> avg;
  std::vector<double> plain;
  double bound = 0;
  Status s = r.finish(dropped, {}, &avg, &plain, &bound);
  ASSERT_TRUE(s.is_ok()) << s;
  expect_close(avg, plain, bound);
}

TEST(SecAgg, TenPercentDroppedAfterMaskingRecovers) {
  dropout_round(SecAggOptions{}, 100, 0.10, 21);  // automatic k = 28, t = 14
}

TEST(SecAgg, ThirtyPercentDroppedAfterMaskingRecovers) {
  // With 30 % dropout a threshold of k/2 leaves little margin (a survivor
  // keeps Binomial(28, 0.7) neighbours); a third of the neighbours is the
  // setting SecAgg+ users pick for such rates.
  SecAggOptions o;
  o.threshold = 1.0 / 3;
  dropout_round(o, 100, 0.30, 22);
}

TEST(SecAgg, BelowThresholdFailsCleanly) {
  SecAggOptions o;
  o.neighbours = 6;  // t = 3
  SimRound r(o, 30, 100, 31);
  ASSERT_EQ(r.round.threshold, 3);
  // Drop worker 0 and all but two of its neighbours: nobody can rebuild its key.
  const MaskingGraph g = r.round.graph();
  const auto& nb = g.neighbours(0);
  std::set<int> dropped = {0};
  for (size_t p = 2; p < nb.size(); ++p) dropped.insert(nb[p]);
  std::vector<float> avg;
  std::vector<double> plain;
  double bound;
  Status s = r.finish(dropped, {}, &avg, &plain, &bound);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("worker 0 dropped"), std::string::npos) << s;
  EXPECT_NE(s.message().find("threshold 3 of 6"), std::string::npos) << s;
}

TEST(SecAgg, SurvivorWhoseNeighboursStaySilentFailsCleanly) {
  SecAggOptions o;
  o.neighbours = 6;
  SimRound r(o, 30, 100, 32);
  const MaskingGraph g = r.round.graph();
  const auto& nb = g.neighbours(5);
  std::set<int> silent(nb.begin(), nb.begin() + 4);  // 2 of 6 reveal, t = 3
  ASSERT_LT(revealing_neighbours(r, 5, {}, silent), r.round.threshold);
  std::vector<float> avg;
  std::vector<double> plain;
  double bound;
  Status s = r.finish({}, silent, &avg, &plain, &bound);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("survived"), std::string::npos) << s;
}

TEST(SecAgg, FlatAndThreeTierSumsGiveTheSameModel) {
  SimRound r(SecAggOptions{}, 24, 1000, 41);
  std::vector<int> all(24);
  std::iota(all.begin(), all.end(), 0);
  const auto flat = r.sum_of(all);
  // Tier 2: six aggregators of four workers; tier 1: two of three; root adds.
  std::vector<std::vector<uint32_t>> leaves;
  for (int a = 0; a < 6; ++a) leaves.push_back(r.sum_of({a, a + 6, a + 12, a + 18}));
  std::vector<uint32_t> tree(flat.size(), 0);
  for (int m = 0; m < 2; ++m) {
    std::vector<uint32_t> mid(flat.size(), 0);
    for (int a = m; a < 6; a += 2) add_mod32(mid.data(), leaves[a].data(), mid.size());
    add_mod32(tree.data(), mid.data(), tree.size());
  }
  EXPECT_EQ(tree, flat);  // modular addition: any tree, bit-identical total
}

double byte_chi_square(const std::vector<uint32_t>& v) {
  return privacy::byte_chi_square(v.data(), v.size());
}

TEST(SecAgg, AnAggregatorsViewOfASubtreeSumLooksUniform) {
  SimRound r(SecAggOptions{}, 40, 65536, 51);
  const std::vector<int> subtree = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  // Critical value of chi-square(255) at p = 0.001 (Wilson–Hilferty): 330.5.
  constexpr double kCritical = 330.5;
  const double masked = byte_chi_square(r.sum_of(subtree));
  EXPECT_LT(masked, kCritical);
  EXPECT_LT(byte_chi_square(r.masked[3]), kCritical);  // one worker's vector
  // The same subtree unmasked is far from uniform: the test has power.
  FixedPoint fp(r.round.fractional_bits);
  std::vector<uint32_t> plain(r.d + 1, 0);
  for (int i : subtree) {
    std::vector<uint32_t> e(r.d + 1);
    fp.encode(r.updates[i].data(), r.d, r.weights[i], e.data());
    add_mod32(plain.data(), e.data(), plain.size());
  }
  EXPECT_GT(byte_chi_square(plain), 10 * kCritical);
}

TEST(SecAgg, TamperedOrMisroutedSharesAreRejected) {
  SecAggOptions o;
  o.neighbours = 4;
  auto round = SecAggRound::plan(o, 10, 1, 2);
  ASSERT_TRUE(round.is_ok());
  SecAggCoordinator coord(*round);
  std::vector<SecAggWorker> ws;
  for (int i = 0; i < 10; ++i) {
    ws.push_back(std::move(*SecAggWorker::create(*round, i, seed_from_u64(900 + i))));
    ASSERT_TRUE(coord.add_public_key(i, ws[i].public_key()).is_ok());
  }
  EXPECT_EQ(coord.add_public_key(3, ws[3].public_key()).code(), StatusCode::kAlreadyExists);
  std::vector<std::vector<SealedShare>> out;
  for (auto& w : ws) out.push_back(std::move(*w.share_secrets(coord.public_keys())));
  const int to = out[0][0].to;
  auto box = out[0][0];
  box.box[30] ^= 1;
  EXPECT_EQ(ws[to].receive_shares({box}).code(), StatusCode::kDataLoss);
  auto wrong = out[0][0];
  wrong.to = out[0][1].to;
  EXPECT_EQ(ws[wrong.to].receive_shares({wrong}).code(), StatusCode::kDataLoss);
  // A share addressed outside the sender's neighbourhood never gets routed.
  auto stray = out[1];
  const MaskingGraph g = round->graph();
  const auto& nb = g.neighbours(1);
  int outsider = 0;
  while (outsider == 1 || std::binary_search(nb.begin(), nb.end(), outsider)) ++outsider;
  stray[0].to = outsider;
  EXPECT_EQ(coord.accept_shares(1, stray).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SecAggRound::plan(o, 1, 1, 2).status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace flight::privacy
