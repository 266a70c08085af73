// Client-level differential privacy in the engine (DP-FedAvg, McMahan et al.
// 2018), over the arithmetic of flight/privacy (dp.h, rdp_accountant.h).
//
//   privacy:
//     dp:
//       clip_norm: 1.0           # C: L2 bound of a worker's update delta (trained - global); > 0
//       noise_multiplier: 1.0    # z: Gaussian noise z*C on the sum of the clipped deltas; 0 = none
//       placement: coordinator   # coordinator | distributed | local (privacy::NoisePlacement)
//       adaptive: false          # true, or {target_quantile: 0.5, learning_rate: 0.2,
//                                #   count_noise_fraction: 0.05}: C tracks a quantile of the
//                                #   update norms (Andrew et al. 2021)
//       delta: 1.0e-5            # epsilon is reported at this delta
//       epsilon_budget: 0        # stop before the round that would exceed it; 0 = no budget
//       seeded_noise: true       # noise from the run seed (reproducible); false: OS CSPRNG
//
// Worker side (apply_worker_dp, called by the train task): the trained model
// becomes global + clip(trained - global) (+ the worker's noise for local and
// distributed placement), so strategies still fold models; its weight becomes 1
// (uniform weighting: with sample-count weights one worker's influence on the
// average, hence the noise needed, would depend on everybody's data).
//
// Coordinator side (DpServer, driven by the sync driver): each round's task
// part (the current C and the worker noise), the coordinator's noise on the
// average, the adaptive clip-norm step, and the RDP accountant (one step per
// round, q = selected / workers). Averages use the fixed denominator m (the
// workers selected), as McMahan et al.: avg = (sum of clipped deltas + noise) / m.
//
// Thread safety: apply_worker_dp is reentrant; DpServer is used by the driving
// thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/options.h"
#include "flight/base/status.h"
#include "flight/engine/messages.h"
#include "flight/params/param_set.h"
#include "flight/privacy/dp.h"
#include "flight/privacy/rdp_accountant.h"

namespace flight::engine {

inline const EnumNames<privacy::NoisePlacement> kNoisePlacementNames = {
    {"coordinator", privacy::NoisePlacement::kCoordinator},
    {"distributed", privacy::NoisePlacement::kDistributed},
    {"local", privacy::NoisePlacement::kLocal}};

// The `privacy.dp` section (the reader is at `dp`), with its documented
// defaults; errors name the field and its line.
Status read_dp_options(OptionReader& r, privacy::DpOptions* o);
nlohmann::json dp_options_to_json(const privacy::DpOptions& o);

// Worker side: turns `update` (the trained model) into global + clip(update -
// global), plus N(0, noise_stddev^2) per element when the task asks for noise
// (seeded from run_seed, the worker and the round unless dp.seeded is false).
// Returns whether the delta was within the clip norm. Non-floating tensors are
// left as trained. float32 tensors only for the noise (InvalidArgument otherwise).
StatusOr<bool> privatize_update(const DpTask& dp, uint64_t run_seed, int64_t worker_index,
                                int64_t round, const ParamSet& global, ParamSet* update);

// The train task's hook: privatize_update on `update`, then the result's
// weight becomes 1 and dp_unclipped is set.
Status apply_worker_dp(const TrainArgs& args, uint64_t run_seed, const ParamSet& global,
                       ParamSet* update, TrainResult* out);

class DpServer {
 public:
  // n_workers: the workers a round selects from; cohort: how many it selects.
  // FailedPrecondition when adaptive clipping's count noise cannot be paid
  // out of noise_multiplier for this cohort.
  static StatusOr<std::unique_ptr<DpServer>> create(const privacy::DpOptions& options,
                                                    int64_t n_workers, int64_t cohort,
                                                    uint64_t seed);

  // What each selected worker of a round of `cohort` workers is told.
  DpTask task(int64_t cohort) const;
  // Why a round of `cohort` workers would take epsilon past the budget, or "".
  std::string over_budget(int64_t round, int64_t cohort) const;
  // After the root fold: `aggregate` (the uniform mean of `aggregate->weight`
  // contributors' privatized models) becomes global + (sum of deltas + the
  // coordinator's noise) / cohort; the clip norm takes its adaptive step from
  // `unclipped` of `reports` workers' bits (noised); the accountant composes
  // the round.
  Status finish_round(int64_t round, const ParamSet& global, int64_t cohort, int64_t reports,
                      int64_t unclipped, aggregators::Weighted* aggregate);

  double epsilon() const { return accountant_.epsilon(options_.delta); }
  double clip_norm() const { return clipper_.clip_norm(); }
  int64_t rounds() const { return static_cast<int64_t>(steps_.size()); }
  // For summary.json: epsilon, delta, rounds accounted, the settings and final C.
  nlohmann::json summary() const;
  // Checkpoint state: the composed steps (q, z) and the clip norm.
  nlohmann::json state() const;
  Status load_state(const nlohmann::json& j);

 private:
  DpServer(const privacy::DpOptions& options, int64_t n_workers, uint64_t seed);

  // Noise multiplier of the update sum (what adaptive clipping leaves of z).
  double sum_multiplier(int64_t cohort) const;
  // (q, z) of one round for the accountant when `contributors` of `cohort`
  // workers' updates made it into the sum.
  std::pair<double, double> step(int64_t cohort, double contributors) const;

  privacy::DpOptions options_;
  int64_t n_workers_;
  uint64_t seed_;
  privacy::AdaptiveClipper clipper_;
  privacy::RdpAccountant accountant_;
  std::vector<std::pair<double, double>> steps_;  // composed (q, z), one per round
};

}  // namespace flight::engine
