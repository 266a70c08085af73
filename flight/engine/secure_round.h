// SecureRound: the coordinator's side of one secure-aggregation round of the
// sync driver (privacy.secure_aggregation; secure_options.h, the worker's
// side in secagg_worker.h, the arithmetic in flight/privacy/secagg.h).
//
//   start()    plans the round for the selected workers (SecAgg+ masking
//              graph, threshold) and runs two task phases on their endpoints:
//              secagg_advertise (each worker's public key and weight) and
//              secagg_share (sealed Shamir shares, routed here, opaque to the
//              coordinator). A worker that fails either is left out of the
//              round before training (left_out()).
//   train_part() what each train task carries: the plan, the worker's index,
//              1 / total weight, the shares its neighbours sealed for it.
//              Aggregators then fold with masked_sum(): add modulo 2^32 only.
//   finish()   once the root's fold is complete: the survivors (workers whose
//              masked vectors are in the total) answer secagg_reveal; the
//              coordinator removes the masks, checks the weight word and
//              decodes global + sum / (survivors' weight) — the weighted mean
//              the strategy's server step takes, as a plain fold's finalize()
//              gives it. Too few shares for some worker: FailedPrecondition
//              naming it (the driver treats it as an insufficient round:
//              retried or stopped by faults.on_insufficient).
//
// Who learns what: aggregators see only masked vectors and sums that still
// carry every member's self mask (uniform to them); the coordinator learns
// the workers' weights (as in a plain round) and the survivors' total, never
// an individual or subtree sum, unless t of a worker's neighbours collude
// with it.
//
// Thread safety: used by the driving thread; train_part() may be called from
// any thread once start() returned.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/engine/messages.h"
#include "flight/params/param_set.h"
#include "flight/privacy/secagg.h"

namespace flight::engine {

struct RunContext;

class SecureRound {
 public:
  // `selected`: the round's workers (their order fixes their indices).
  // FailedPrecondition when fewer than 2 are selected.
  static StatusOr<std::unique_ptr<SecureRound>> start(const RunContext& ctx, int64_t round,
                                                      int64_t attempt,
                                                      const std::vector<std::string>& selected);

  // Workers that did not complete advertise + share, with why: not trained.
  const std::vector<std::pair<std::string, std::string>>& left_out() const { return left_out_; }
  SecAggTrain train_part(const std::string& worker) const;

  // Workers whose masked vector reached the root: `delivered` holds every node
  // whose update its parent folded; a worker survives when it and every
  // aggregator above it delivered.
  std::vector<std::string> survivors(const std::unordered_set<std::string>& delivered) const;

  // `masked`: the root's fold (masked_sum) of the survivors' vectors.
  // Returns the weighted mean model and the survivors' weight; *unclipped gets
  // the sum of their DP clip bits.
  StatusOr<aggregators::Weighted> finish(const ParamSet& global, aggregators::Weighted masked,
                                         const std::vector<std::string>& survivors,
                                         int64_t* unclipped);

  const privacy::SecAggRound& plan() const { return round_; }

 private:
  explicit SecureRound(const RunContext& ctx) : ctx_(ctx) {}

  const RunContext& ctx_;
  privacy::SecAggRound round_;
  SecAggPlan plan_;
  std::unique_ptr<privacy::SecAggCoordinator> coordinator_;
  std::vector<std::string> workers_;  // index -> node
  std::unordered_map<std::string, int> index_;
  std::vector<double> weights_;  // advertised
  std::vector<bool> shared_;
  double total_weight_ = 0;  // of the workers that shared
  std::vector<std::pair<std::string, std::string>> left_out_;
};

}  // namespace flight::engine
