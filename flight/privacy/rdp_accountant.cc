#include "flight/privacy/rdp_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace flight::privacy {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double m = std::max(a, b);
  return m + std::log1p(std::exp(std::min(a, b) - m));
}

// log(exp(a) - exp(b)) for a >= b; rounding can make b a hair above a.
double log_sub(double a, double b) {
  if (b == -kInf) return a;
  if (b >= a) return -kInf;
  return a + std::log1p(-std::exp(b - a));
}

// log(erfc(x)) without underflow for large x (erfc(27) < DBL_MIN): the
// asymptotic expansion erfc(x) ~ exp(-x^2) / (x sqrt(pi)) (1 - 1/(2x^2) + 3/(4x^4) - ...).
double log_erfc(double x) {
  if (x < 25) return std::log(std::erfc(x));
  const double x2 = x * x;
  const double series = 1 - 1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 * x2 * x2);
  return -x2 - std::log(x) - 0.5 * std::log(M_PI) + std::log(series);
}

// log A_alpha for integer alpha: the binomial expansion of
// E_{z~mu0}[((1-q) + q mu1(z)/mu0(z))^alpha], each term closed form.
double log_a_int(double q, double sigma, int alpha) {
  double log_a = -kInf;
  for (int i = 0; i <= alpha; ++i) {
    const double log_binom =
        std::lgamma(alpha + 1.0) - std::lgamma(i + 1.0) - std::lgamma(alpha - i + 1.0);
    const double term = log_binom + i * std::log(q) + (alpha - i) * std::log1p(-q) +
                        (static_cast<double>(i) * i - i) / (2 * sigma * sigma);
    log_a = log_add(log_a, term);
  }
  return log_a;
}

// log A_alpha for fractional alpha (Mironov et al. 2019, Section 3.3): split
// the integral at z0 where the two mixture components cross and expand each
// half in a convergent generalised-binomial series.
double log_a_frac(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  double log_abs_coef = 0;  // log |binom(alpha, i)|, i = 0
  bool coef_positive = true;
  for (int i = 0; i < 100000; ++i) {
    if (i > 0) {
      // binom(alpha, i) = binom(alpha, i - 1) * (alpha - i + 1) / i
      const double f = (alpha - i + 1) / i;
      if (f == 0) break;  // cannot happen for fractional alpha; guards the log
      log_abs_coef += std::log(std::fabs(f));
      if (f < 0) coef_positive = !coef_positive;
    }
    const double j = alpha - i;
    const double log_t0 = log_abs_coef + i * std::log(q) + j * std::log1p(-q);
    const double log_t1 = log_abs_coef + j * std::log(q) + i * std::log1p(-q);
    const double log_e0 = std::log(0.5) + log_erfc((i - z0) / (M_SQRT2 * sigma));
    const double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (M_SQRT2 * sigma));
    const double log_s0 = log_t0 + (static_cast<double>(i) * i - i) / (2 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    if (coef_positive) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    if (std::max(log_s0, log_s1) < -30) break;
  }
  return log_add(log_a0, log_a1);
}

}  // namespace

double rdp_subsampled_gaussian(double q, double noise_multiplier, double order) {
  if (q <= 0) return 0;
  if (noise_multiplier <= 0 || std::isinf(order)) return kInf;
  if (q >= 1) return order / (2 * noise_multiplier * noise_multiplier);
  const double log_a = (order == std::floor(order) && order < 1e6)
                           ? log_a_int(q, noise_multiplier, static_cast<int>(order))
                           : log_a_frac(q, noise_multiplier, order);
  return log_a / (order - 1);
}

double epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp,
                        double delta, double* best_order) {
  double best = kInf, best_a = orders.empty() ? 0 : orders.front();
  for (size_t k = 0; k < orders.size() && k < rdp.size(); ++k) {
    const double a = orders[k], r = rdp[k];
    double eps;
    if (delta * delta + std::expm1(-r) > 0) {
      eps = 0;  // delta >= sqrt(1 - exp(-KL)) already covers it
    } else if (a > 1.01) {
      eps = r + std::log1p(-1 / a) - std::log(delta * a) / (a - 1);
    } else {
      eps = kInf;  // the conversion is numerically unstable this close to 1
    }
    if (eps < best) {
      best = eps;
      best_a = a;
    }
  }
  if (best_order) *best_order = best_a;
  return std::max(best, 0.0);
}

std::vector<double> RdpAccountant::default_orders() {
  std::vector<double> o;
  for (int x = 1; x < 100; ++x) o.push_back(1 + x / 10.0);
  for (int a = 11; a < 64; ++a) o.push_back(a);
  for (double a : {128.0, 256.0, 512.0}) o.push_back(a);
  return o;
}

RdpAccountant::RdpAccountant(std::vector<double> orders)
    : orders_(std::move(orders)), rdp_(orders_.size(), 0.0) {}

Status RdpAccountant::compose(double q, double noise_multiplier, int steps) {
  if (!(q >= 0 && q <= 1))
    return invalid_argument("sampling rate must be in [0, 1], got " + std::to_string(q));
  if (!(noise_multiplier >= 0)) {
    return invalid_argument("noise multiplier must be >= 0, got " +
                            std::to_string(noise_multiplier));
  }
  if (steps < 0) return invalid_argument("steps must be >= 0");
  if (steps == 0) return Status::ok();  // inf * 0 would be NaN
  for (size_t k = 0; k < orders_.size(); ++k) {
    if (!(orders_[k] > 1)) return invalid_argument("RDP orders must be > 1");
    rdp_[k] += steps * rdp_subsampled_gaussian(q, noise_multiplier, orders_[k]);
  }
  return Status::ok();
}

double RdpAccountant::epsilon(double delta, double* best_order) const {
  return epsilon_from_rdp(orders_, rdp_, delta, best_order);
}

}  // namespace flight::privacy
