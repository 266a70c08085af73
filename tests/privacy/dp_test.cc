// Differential privacy: clipping, noise, adaptive clipping, and the RDP
// accountant against published values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "flight/privacy/dp.h"
#include "flight/privacy/prg.h"
#include "flight/privacy/rdp_accountant.h"

namespace flight::privacy {
namespace {

TEST(Dp, ClipL2ScalesOnlyLongVectors) {
  std::vector<float> v = {3.f, 4.f};  // norm 5
  EXPECT_DOUBLE_EQ(clip_l2(v.data(), v.size(), 1.0), 5.0);
  EXPECT_NEAR(l2_norm(v.data(), v.size()), 1.0, 1e-6);
  EXPECT_NEAR(v[0], 0.6f, 1e-6);
  std::vector<float> w = {0.3f, 0.4f};
  clip_l2(w.data(), w.size(), 1.0);
  EXPECT_EQ(w, (std::vector<float>{0.3f, 0.4f}));
}

TEST(Dp, GaussianNoiseHasTheRequestedMoments) {
  ChaChaRng rng(seed_from_u64(7));
  const size_t n = 400000;
  std::vector<float> v(n, 0.f);
  add_gaussian_noise(v.data(), n, 2.0, rng);
  double mean = 0, var = 0;
  for (float x : v) mean += x;
  mean /= n;
  for (float x : v) var += (x - mean) * (x - mean);
  var /= n - 1;
  // Standard errors: mean 2/sqrt(n) = 0.0032, variance 4*sqrt(2/n) = 0.009.
  EXPECT_NEAR(mean, 0.0, 0.016);
  EXPECT_NEAR(var, 4.0, 0.045);
}

TEST(Dp, DistributedNoiseAddsUpToTheCentralNoise) {
  DpOptions o;
  o.clip_norm = 0.5;
  o.noise_multiplier = 1.2;
  o.placement = NoisePlacement::kDistributed;
  const int m = 25;
  const double per_worker = noise_stddev(o, o.clip_norm, m);
  EXPECT_NEAR(per_worker, 1.2 * 0.5 / 5, 1e-12);
  // Sum of m workers' noise, sampled: its variance is (zC)^2.
  const size_t n = 40000;
  std::vector<float> sum(n, 0.f);
  for (int w = 0; w < m; ++w) {
    ChaChaRng rng(seed_from_u64(100 + w));
    add_gaussian_noise(sum.data(), n, per_worker, rng);
  }
  double var = 0;
  for (float x : sum) var += static_cast<double>(x) * x;
  var /= n;
  EXPECT_NEAR(var, 0.36, 0.36 * 0.05);  // 3.5 standard errors
  o.placement = NoisePlacement::kCoordinator;
  EXPECT_NEAR(noise_stddev(o, o.clip_norm, m), 0.6, 1e-12);
  EXPECT_EQ(parse_noise_placement("sideways").status().code(), StatusCode::kInvalidArgument);
}

TEST(Dp, AdaptiveClippingTracksTheTargetQuantile) {
  DpOptions o;
  o.adaptive = true;
  o.clip_norm = 0.1;
  o.target_quantile = 0.5;
  o.noise_multiplier = 1.0;
  AdaptiveClipper clipper(o);
  ChaChaRng rng(seed_from_u64(8));
  const int m = 100;
  // Update norms uniform on [0, 10]: the median is 5.
  for (int round = 0; round < 300; ++round) {
    int unclipped = 0;
    for (int i = 0; i < m; ++i) unclipped += rng.uniform() * 10 <= clipper.clip_norm();
    clipper.update(clipper.noise_count(unclipped, m, m, rng), m);
  }
  EXPECT_NEAR(clipper.clip_norm(), 5.0, 1.0);
  // z = 1 with count noise sigma_b = 5: z_update = (1 - 1/100)^(-1/2).
  auto z = clipper.update_noise_multiplier(m);
  ASSERT_TRUE(z.is_ok());
  EXPECT_NEAR(*z, 1 / std::sqrt(1 - 0.01), 1e-12);
  o.noise_multiplier = 20;  // >= 2 sigma_b = 10: the count would need all the budget
  EXPECT_EQ(AdaptiveClipper(o).update_noise_multiplier(m).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(Dp, OptionsValidate) {
  DpOptions o;
  EXPECT_TRUE(o.validate().is_ok());
  o.clip_norm = 0;
  EXPECT_EQ(o.validate().code(), StatusCode::kInvalidArgument);
  o = DpOptions{};
  o.delta = 1;
  EXPECT_NE(o.validate().message().find("dp.delta"), std::string::npos);
}

// Published values: TensorFlow Privacy, github.com/tensorflow/privacy,
// tensorflow_privacy/privacy/analysis/rdp_accountant_test.py:
//   test_compute_rdp_sequence  q = 0.01, noise multiplier 2.5, 50 steps, orders
//                              1.5, 2.5, 5, 50, 100 -> 0.00065, 0.001085,
//                              0.00218075, 0.023846, 167.416307
//   test_compute_rdp_scalar    q = 0.1, noise multiplier 2, 10 steps, order 5 -> 0.07737
// (google/differential-privacy's dp_accounting, which superseded it, lists
// 6.7058e-4 at order 1.5; direct numerical integration of A_alpha, the
// quantity both define, gives 6.5007e-4, TF Privacy's value.)
TEST(RdpAccountant, MatchesPublishedSubsampledGaussianRdp) {
  const std::vector<double> orders = {1.5, 2.5, 5, 50, 100};
  const std::vector<double> published = {0.00065, 0.001085, 0.00218075, 0.023846, 167.416307};
  RdpAccountant acc(orders);
  ASSERT_TRUE(acc.compose(0.01, 2.5, 50).is_ok());
  for (size_t k = 0; k < orders.size(); ++k) {
    EXPECT_NEAR(acc.rdp()[k], published[k], 0.01 * published[k]) << "order " << orders[k];
  }
  EXPECT_NEAR(10 * rdp_subsampled_gaussian(0.1, 2, 5), 0.07737, 0.01 * 0.07737);
  EXPECT_TRUE(
      std::isinf(rdp_subsampled_gaussian(0.01, 2.5, std::numeric_limits<double>::infinity())));
}

// Same file, test_get_privacy_spent_check_target_delta: RDP 1.1 at orders
// 2..32 and delta 1e-5 give epsilon 1.32783806176 at order 32 (the improved
// RDP -> (eps, delta) conversion TF Privacy uses).
TEST(RdpAccountant, MatchesPublishedConversionToEpsilon) {
  std::vector<double> orders, rdp;
  for (int a = 2; a <= 32; ++a) {
    orders.push_back(a);
    rdp.push_back(1.1);
  }
  double best = 0;
  const double eps = epsilon_from_rdp(orders, rdp, 1e-5, &best);
  EXPECT_NEAR(eps, 1.32783806176, 0.01 * 1.32783806176);
  EXPECT_EQ(best, 32);
}

// Same test, second part: the unsampled Gaussian with noise multiplier
// 4.530877117 is (1, 1e-6)-DP over orders 1..100 in steps of 0.001.
TEST(RdpAccountant, MatchesPublishedGaussianEpsilon) {
  std::vector<double> orders, rdp;
  for (int i = 1000; i < 100000; ++i) {
    orders.push_back(0.001 * i);
    rdp.push_back(rdp_subsampled_gaussian(1.0, 4.530877117, orders.back()));
  }
  EXPECT_NEAR(epsilon_from_rdp(orders, rdp, 1e-6), 1.0, 0.01);
}

TEST(RdpAccountant, EpsilonGrowsWithRoundsAndShrinksWithNoise) {
  RdpAccountant a, b, c;
  ASSERT_TRUE(a.compose(0.1, 1.0, 10).is_ok());
  ASSERT_TRUE(b.compose(0.1, 1.0, 100).is_ok());
  ASSERT_TRUE(c.compose(0.1, 2.0, 100).is_ok());
  const double ea = a.epsilon(1e-5), eb = b.epsilon(1e-5), ec = c.epsilon(1e-5);
  EXPECT_GT(ea, 0);
  EXPECT_LT(ea, eb);
  EXPECT_LT(ec, eb);
  // Composition is additive: ten calls of one step equal one call of ten.
  RdpAccountant d;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(d.compose(0.1, 1.0).is_ok());
  for (size_t k = 0; k < d.rdp().size(); ++k)
    EXPECT_NEAR(d.rdp()[k], a.rdp()[k], 1e-9 * (1 + a.rdp()[k]));
  RdpAccountant none;
  ASSERT_TRUE(none.compose(0.1, 0.0).is_ok());
  EXPECT_TRUE(std::isinf(none.epsilon(1e-5)));
  EXPECT_EQ(none.compose(1.5, 1.0).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flight::privacy
