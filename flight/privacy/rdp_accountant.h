// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (Mironov,
// Talwar & Zhang, "Rényi Differential Privacy of the Sampled Gaussian
// Mechanism", 2019), the mechanism of client-level DP-FedAvg: each round
// samples workers with probability q and adds Gaussian noise with multiplier z
// to the sum of their clipped updates.
//
// RDP at each order adds up over rounds; epsilon at a given delta is the best
// over the orders of the conversion of Canonne, Kamath & Steinke (2020,
// Prop. 12): eps = rdp + log(1 - 1/a) - (log delta + log a) / (a - 1).
// Rounds that select a fixed number m of N workers are accounted with q = m / N
// (the usual approximation; Poisson sampling is what the bound covers).
//
// Thread safety: not synchronised.
#pragma once

#include <vector>

#include "flight/base/status.h"

namespace flight::privacy {

// RDP of one step of the subsampled Gaussian at `order` (> 1, may be
// fractional or +inf): log(A_order) / (order - 1).
double rdp_subsampled_gaussian(double q, double noise_multiplier, double order);

// Smallest epsilon over `orders` for the accumulated `rdp`, and the order that
// gave it (optional).
double epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp,
                        double delta, double* best_order = nullptr);

class RdpAccountant {
 public:
  // 1.1, 1.2, ..., 10.9, 11, 12, ..., 63, 128, 256, 512.
  static std::vector<double> default_orders();

  explicit RdpAccountant(std::vector<double> orders = default_orders());

  // Adds `steps` rounds with sampling rate q in [0, 1] and noise multiplier
  // z >= 0 (z = 0: epsilon becomes infinite).
  Status compose(double q, double noise_multiplier, int steps = 1);
  double epsilon(double delta, double* best_order = nullptr) const;

  const std::vector<double>& orders() const { return orders_; }
  const std::vector<double>& rdp() const { return rdp_; }

 private:
  std::vector<double> orders_;
  std::vector<double> rdp_;
};

}  // namespace flight::privacy
