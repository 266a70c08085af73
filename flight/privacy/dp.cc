#include "flight/privacy/dp.h"

#include <cmath>

namespace flight::privacy {

StatusOr<NoisePlacement> parse_noise_placement(const std::string& name) {
  if (name == "coordinator") return NoisePlacement::kCoordinator;
  if (name == "distributed") return NoisePlacement::kDistributed;
  if (name == "local") return NoisePlacement::kLocal;
  return invalid_argument("dp.noise '" + name + "' is not one of coordinator, distributed, local");
}

const char* noise_placement_name(NoisePlacement p) {
  switch (p) {
    case NoisePlacement::kCoordinator:
      return "coordinator";
    case NoisePlacement::kDistributed:
      return "distributed";
    case NoisePlacement::kLocal:
      return "local";
  }
  return "?";
}

Status DpOptions::validate() const {
  if (!(clip_norm > 0 && std::isfinite(clip_norm)))
    return invalid_argument("dp.clip_norm must be > 0");
  if (!(noise_multiplier >= 0 && std::isfinite(noise_multiplier))) {
    return invalid_argument("dp.noise_multiplier must be >= 0");
  }
  if (!(target_quantile > 0 && target_quantile < 1)) {
    return invalid_argument("dp.target_quantile must be in (0, 1)");
  }
  if (!(clip_learning_rate > 0)) return invalid_argument("dp.clip_learning_rate must be > 0");
  if (!(count_noise_fraction > 0)) return invalid_argument("dp.count_noise_fraction must be > 0");
  if (!(delta > 0 && delta < 1)) return invalid_argument("dp.delta must be in (0, 1)");
  if (!(epsilon_budget >= 0)) return invalid_argument("dp.epsilon_budget must be >= 0 (0: none)");
  return Status::ok();
}

double l2_norm(const float* v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

double clip_l2(float* v, size_t n, double clip_norm) {
  const double norm = l2_norm(v, n);
  if (norm > clip_norm) {
    const float f = static_cast<float>(clip_norm / norm);
    for (size_t i = 0; i < n; ++i) v[i] *= f;
  }
  return norm;
}

void add_gaussian_noise(float* v, size_t n, double stddev, ChaChaRng& rng) {
  if (stddev == 0) return;
  for (size_t i = 0; i < n; ++i) v[i] += static_cast<float>(stddev * rng.gaussian());
}

double noise_stddev(const DpOptions& options, double clip_norm, int num_workers) {
  const double total = options.noise_multiplier * clip_norm;
  switch (options.placement) {
    case NoisePlacement::kCoordinator:
    case NoisePlacement::kLocal:
      return total;
    case NoisePlacement::kDistributed:
      // Independent Gaussians add variances: m * (zC / sqrt m)^2 = (zC)^2.
      return total / std::sqrt(static_cast<double>(std::max(num_workers, 1)));
  }
  return total;
}

AdaptiveClipper::AdaptiveClipper(const DpOptions& options)
    : options_(options), clip_norm_(options.clip_norm) {}

double AdaptiveClipper::count_stddev(int expected_workers) const {
  return options_.count_noise_fraction * std::max(expected_workers, 1);
}

StatusOr<double> AdaptiveClipper::update_noise_multiplier(int expected_workers) const {
  const double z = options_.noise_multiplier;
  if (z == 0) return 0.0;
  // The count sums b_i - 1/2 in {-1/2, +1/2} (sensitivity 1/2) with noise
  // sigma_b: noise multiplier 2 sigma_b. Two Gaussian queries compose like one
  // with 1/z^2 = 1/z_update^2 + 1/(2 sigma_b)^2.
  const double sigma_b = count_stddev(expected_workers);
  const double rest = 1.0 / (z * z) - 1.0 / (4.0 * sigma_b * sigma_b);
  if (rest <= 0) {
    return failed_precondition(
        "dp.noise_multiplier " + std::to_string(z) +
        " is too small to pay for adaptive clipping's count noise (needs > " +
        std::to_string(2 * sigma_b) + "); raise it or count_noise_fraction");
  }
  return 1.0 / std::sqrt(rest);
}

double AdaptiveClipper::noise_count(int unclipped, int contributors, int expected_workers,
                                    ChaChaRng& rng) const {
  return (unclipped - 0.5 * contributors) + count_stddev(expected_workers) * rng.gaussian();
}

void AdaptiveClipper::update(double noised_centered_count, int expected_workers) {
  if (expected_workers <= 0) return;
  const double b = noised_centered_count / expected_workers + 0.5;
  clip_norm_ *= std::exp(-options_.clip_learning_rate * (b - options_.target_quantile));
}

}  // namespace flight::privacy
