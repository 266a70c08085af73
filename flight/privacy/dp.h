// Client-level differential privacy for federated averaging (DP-FedAvg,
// McMahan et al., ICLR 2018): each worker's update is clipped to L2 norm C,
// and Gaussian noise of standard deviation z * C is added to the sum of the
// clipped updates — once at the coordinator, or split across the m workers
// (each adds z * C / sqrt(m), so with secure aggregation no party ever sees an
// un-noised sum). Local DP adds z * C at every worker instead.
// Adaptive clipping follows Andrew et al. (NeurIPS 2021): C tracks a target
// quantile of the update norms from a noised count of unclipped updates.
//
// Thread safety: functions are reentrant; AdaptiveClipper is not synchronised.
#pragma once

#include <cstddef>
#include <string>

#include "flight/base/status.h"
#include "flight/privacy/prg.h"

namespace flight::privacy {

enum class NoisePlacement {
  kCoordinator,  // the coordinator adds z * C to the sum (trusts the coordinator)
  kDistributed,  // each of m workers adds z * C / sqrt(m) (with secure aggregation)
  kLocal,        // each worker adds z * C to its own update (local DP)
};

// "coordinator" | "distributed" | "local"; anything else: InvalidArgument
// listing the choices.
StatusOr<NoisePlacement> parse_noise_placement(const std::string& name);
const char* noise_placement_name(NoisePlacement p);

struct DpOptions {
  double clip_norm = 1.0;         // C (initial C with adaptive clipping); > 0
  double noise_multiplier = 1.0;  // z; >= 0 (0: clipping only, no privacy)
  NoisePlacement placement = NoisePlacement::kCoordinator;
  // Adaptive clipping (off by default).
  bool adaptive = false;
  double target_quantile = 0.5;     // fraction of updates meant to be unclipped, in (0, 1)
  double clip_learning_rate = 0.2;  // eta in C <- C * exp(-eta * (b - quantile)); > 0
  // Noise multiplier of the unclipped count, as a multiple of the expected
  // number of workers per round (Andrew et al. suggest m / 20: 0.05). > 0.
  double count_noise_fraction = 0.05;
  double delta = 1e-5;        // delta at which epsilon is reported, in (0, 1)
  double epsilon_budget = 0;  // stop the run once epsilon exceeds it; 0: no budget
  // Noise drawn from ChaCha20 seeded by the run seed, worker and round, so a
  // rerun gives the same model (simulations); anyone who knows the seed can
  // subtract the noise. false: seeds from the OS CSPRNG (not reproducible).
  bool seeded_noise = true;

  Status validate() const;
};

// Scales v so that its L2 norm is at most clip_norm; returns the norm before.
double clip_l2(float* v, size_t n, double clip_norm);
double l2_norm(const float* v, size_t n);

// v[i] += stddev * N(0, 1), drawn from `rng`.
void add_gaussian_noise(float* v, size_t n, double stddev, ChaChaRng& rng);

// Standard deviation of the Gaussian noise one party adds for `options`, when
// m workers contribute: z * C at the coordinator, z * C / sqrt(m) per worker
// for distributed noise, z * C per worker for local DP.
double noise_stddev(const DpOptions& options, double clip_norm, int num_workers);

// Adaptive clipping state (Andrew et al. 2021, Algorithm 1, geometric update).
class AdaptiveClipper {
 public:
  explicit AdaptiveClipper(const DpOptions& options);

  double clip_norm() const { return clip_norm_; }
  // Restores a saved clip norm (checkpoints); > 0.
  void set_clip_norm(double c) { clip_norm_ = c; }
  // The noise multiplier left for the update sum when the count uses part of
  // the privacy budget: (z^-2 - (2 sigma_b)^-2)^(-1/2) for count noise
  // multiplier sigma_b. FailedPrecondition when z is too small to afford the count.
  StatusOr<double> update_noise_multiplier(int expected_workers) const;
  // Noise standard deviation for the unclipped count.
  double count_stddev(int expected_workers) const;
  // The noised centred count: sum over the contributors of ([norm <= C] - 1/2)
  // plus N(0, count_stddev^2). Centring halves the count's sensitivity.
  double noise_count(int unclipped, int contributors, int expected_workers, ChaChaRng& rng) const;
  // One round: b = noised_centered_count / m + 1/2 estimates the unclipped
  // fraction; C <- C * exp(-eta * (b - target_quantile)).
  void update(double noised_centered_count, int expected_workers);

 private:
  DpOptions options_;
  double clip_norm_;
};

}  // namespace flight::privacy
