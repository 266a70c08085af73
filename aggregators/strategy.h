// Strategies: who trains each round and how their models are combined.
//
// A Strategy is chosen by name (`make_strategy`, registry below) from
// StrategyOptions, which arrive as JSON (the engine converts YAML to JSON):
//
//   strategy: {name: fedadam, participation: 0.1, min_workers: 2,
//              params: {server_lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 0.001}}
//
// Conventions the engine relies on
// --------------------------------
// * Workers return their locally trained MODEL (not a delta) and a sample
//   count. A worker's update carries weight `worker_weight(n_samples)`
//   (n_samples for fedavg and most strategies, 1.0 for fedsgd).
// * An aggregator folds the updates of its children with an Aggregation
//   (`begin()`, `accumulate(update, weight)` as children arrive, `finalize()`),
//   and passes upward a partial aggregate `Weighted{weighted mean, total
//   weight}`. Its parent accumulates that partial with its weight, so for the
//   linear strategies (fedavg, fedsgd, fedprox, fedavgm, fedadam, fedyogi,
//   fedadagrad, fedasync, fedbuff) a hierarchical fold equals the flat fold over
//   the same workers up to float rounding ("hierarchical equivalence").
//   A linear fold holds O(model) memory: one float32 accumulator (float64 for
//   float64 tensors), whatever the number of children.
// * Robust strategies (median, trimmed_mean, krum, multi_krum) need all
//   updates at once: `needs_all_updates()` is true and their Aggregation
//   buffers the updates (shallow ParamSet handles; O(children x model)). Their
//   partial result upward is the robust result with weight = number of
//   updates it combined. Hierarchical robust aggregation is NOT equal to the
//   flat one (a median of medians is not the median); trees with robust
//   strategies trade exactness for robustness per subtree.
// * The coordinator turns the root's aggregate into the next global model with
//   `server_update(global, aggregate)`: the aggregate itself for fedavg;
//   server optimizers (fedavgm, fedadam, fedyogi, fedadagrad; Reddi et al.,
//   "Adaptive Federated Optimization", 2021) step along the pseudo-gradient
//   Delta = aggregate - global and keep state (momentum, m, v, step count)
//   that a checkpoint saves through state_json()/state_tensors() and restores
//   through load_state().
// * Async strategies (fedasync, fedbuff; `is_async()`) fold one update at a
//   time into the global model with `merge(global, AsyncUpdate)`; see
//   AsyncUpdate for the exact contract.
//
// Dtypes (see flight/params/param_ops.h): floating tensors (float32, float64,
// float16, bfloat16) are averaged; float32 is accumulated in float32 (the fold
// is bandwidth-bound and float32 keeps it at 12 bytes of traffic per element;
// the hierarchical-equivalence test bounds the rounding at 1e-6 relative).
// Non-floating tensors (integer buffers such as BatchNorm's
// num_batches_tracked, bool masks) are never averaged: every strategy takes
// their elementwise maximum over the updates it combines (krum/multi_krum:
// over the selected updates; server optimizers and fedasync: max of the
// global's and the aggregate's values). Max is exact and tree-independent.
//
// Errors: an empty update list, a total weight of zero, a negative or
// non-finite weight, or updates whose tensor names/shapes/dtypes differ give
// InvalidArgument/FailedPrecondition naming the cause (and the tensor).
//
// Thread safety: a Strategy's const methods may be called concurrently
// (select, worker_weight, begin, worker_hook); server_update, merge and
// load_state mutate optimizer state and must be serialised by the caller (the
// coordinator owns one Strategy). An Aggregation is not thread-safe: one per
// aggregator task.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/params/param_set.h"
#include "flight/params/train_hook.h"

namespace flight::aggregators {

struct StrategyOptions {
  // Registry name: see strategy_names().
  std::string name = "fedavg";
  // Workers selected per round: a fraction in (0, 1] of the available workers
  // (rounded up), or, when > 1, a whole count.
  double participation = 1.0;
  // Lower bound on the number selected (capped at the number available).
  int64_t min_workers = 1;
  // Strategy-specific parameters, validated by the strategy; an unknown key is
  // an error naming it. Null means {}.
  nlohmann::json params = nlohmann::json::object();

  Status validate() const;
  // Keys: name, participation, min_workers, params (all optional); a bare
  // string is shorthand for {name: <string>}. Unknown keys are an error
  // naming the key, with "did you mean".
  static StatusOr<StrategyOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

// A (partial) aggregate: the weighted mean of the models folded so far and the
// total weight behind it.
struct Weighted {
  ParamSet params;
  double weight = 0;
};

// Name, dtype and shape of one tensor.
struct TensorMeta {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> sizes;
};

// An update a fold reads where it lies instead of as a ParamSet: the engine
// hands a child's encoded bytes (raw or compressed: fp16, bf16, int8, top-k,
// sparse) behind this interface, and a linear fold dequantises them while it
// accumulates, with no decoded float copy per child. The bytes were verified
// (checksum, structure) before the fold sees them. Strategies never learn how
// the bytes travelled or were encoded. Immutable; any thread.
class EncodedUpdate {
 public:
  virtual ~EncodedUpdate() = default;
  // Names, dtypes (logical: float32 for compressed tensors) and shapes, in order.
  virtual const std::vector<TensorMeta>& layout() const = 0;
  // acc += w * update (assign: acc = w * update), tensor by tensor, into
  // contiguous accumulators of accumulator_dtype; bit-identical to decode()
  // followed by param_ops' add_scaled_ / assign_scaled_ (see transport's
  // accumulate_encoded for the one -0.0 exception). Changes nothing on error.
  [[nodiscard]] virtual Status add_to(ParamSet& acc, double w, bool assign) const = 0;
  // True when add_batch_to folds a batch in one pass over acc and changes
  // nothing on error; a fold then offers it runs of updates.
  virtual bool folds_batches() const { return false; }
  // acc += w[j] * batch[j] for j in order (assign: acc = w[0] * batch[0] +
  // ...), called on batch[0]; bit-identical to add_to one update at a time,
  // but k updates cost one read and write of acc instead of k. Only when
  // folds_batches(). The default calls add_to for each (on an error the
  // updates before the bad one stay added).
  [[nodiscard]] virtual Status add_batch_to(ParamSet& acc,
                                            const std::vector<const EncodedUpdate*>& batch,
                                            const std::vector<double>& w, bool assign) const;
  // The update as a ParamSet (a float32 copy of compressed tensors).
  [[nodiscard]] virtual StatusOr<ParamSet> decode() const = 0;
};

// One fold. Linear strategies keep O(model) memory; robust ones buffer.
// Not thread-safe: one per aggregator task.
class Aggregation {
 public:
  virtual ~Aggregation() = default;

  // Folds one update (a worker's model or a child's partial mean) with its
  // weight (finite, >= 0). The first update fixes names, dtypes and shapes;
  // later ones must match (InvalidArgument naming the tensor otherwise). A
  // rejected update leaves the fold unchanged. Robust aggregations keep a
  // reference to `update`'s tensors: the caller must not mutate them until
  // finalize() returns.
  [[nodiscard]] virtual Status accumulate(const ParamSet& update, double weight) = 0;

  // True when accumulate_encoded() folds in place (the weighted mean, which
  // every linear strategy uses); false: it decodes, then accumulate()s.
  virtual bool folds_encoded() const { return false; }
  // Folds an update given as encoded bytes; the same contract as accumulate().
  // The default decodes it (robust aggregations keep the decoded tensors).
  [[nodiscard]] virtual Status accumulate_encoded(const EncodedUpdate& update, double weight);
  // Folds several, in order: the same result as accumulate_encoded one by
  // one. On an error, count() tells whether any of them were folded (the
  // default folds one by one and stops at the bad one; the weighted mean
  // checks all first and folds none).
  [[nodiscard]] virtual Status accumulate_encoded_batch(
      const std::vector<const EncodedUpdate*>& updates, const std::vector<double>& weights);

  // Updates accumulated so far.
  virtual size_t count() const = 0;

  // The combined result. FailedPrecondition when nothing was accumulated (or on
  // a second call); InvalidArgument when the total weight is zero (linear) or
  // the strategy's own preconditions fail (e.g. krum needs n > 2f + 2).
  virtual StatusOr<Weighted> finalize() = 0;
};

// One update for an async merge.
//
// Hierarchical async trees: an aggregator tier may pre-fold several updates
// before they reach the coordinator. For fedbuff, fold the models and the
// bases with the same weights (two linear folds) and merge
// {mean model, mean base, total weight, max staleness}: the weighted mean of
// the deltas is mean(model) - mean(base), so this equals merging the updates
// one by one into a buffer (when the staleness factors are equal). fedasync
// mixes whatever model it is given.
struct AsyncUpdate {
  // The worker's locally trained model (always required).
  ParamSet model;
  // The global model the worker started from. Required by fedbuff, whose
  // update is the delta model - base (Nguyen et al. 2022); ignored by fedasync,
  // which mixes models directly (Xie et al. 2019). Empty when not supplied.
  ParamSet base;
  // worker_weight(n_samples); fedbuff weights its buffered deltas by it,
  // fedasync ignores it.
  double weight = 1.0;
  // Global versions applied since `base` was sent to the worker (>= 0).
  int64_t staleness = 0;
};

struct MergeResult {
  // The (possibly unchanged) global model. May share storage with the input
  // global when nothing was applied.
  ParamSet model;
  // True when the global model changed (the engine bumps its version).
  bool applied = false;
  // Updates waiting in the buffer after this merge (fedbuff; 0 otherwise).
  size_t buffered = 0;
};

class Strategy {
 public:
  explicit Strategy(StrategyOptions options) : options_(std::move(options)) {}
  virtual ~Strategy() = default;
  Strategy(const Strategy&) = delete;
  Strategy& operator=(const Strategy&) = delete;

  const std::string& name() const { return options_.name; }
  const StrategyOptions& options() const { return options_; }
  // The strategy's parameters with every default filled in (for run summaries).
  virtual nlohmann::json params_json() const { return nlohmann::json::object(); }

  // Indices of the workers that train this round: sorted, distinct, in
  // [0, n_workers), at least 1 (and at least min_workers) when n_workers > 0;
  // empty when n_workers == 0. Uses only `rng` for randomness (seed it for
  // reproducible runs); `round` is available to strategies whose choice
  // depends on it.
  virtual std::vector<size_t> select(size_t n_workers, int64_t round, std::mt19937_64& rng) const;

  // The weight a worker's update carries in the fold.
  virtual double worker_weight(int64_t n_samples) const { return static_cast<double>(n_samples); }

  // True for strategies whose Aggregation buffers every update (robust ones).
  virtual bool needs_all_updates() const { return false; }

  // True for fedasync/fedbuff: the engine drives them through merge().
  virtual bool is_async() const { return false; }

  // A fresh fold. The default is the weighted mean.
  virtual std::unique_ptr<Aggregation> begin() const;

  // The next global model from the current one and the root's aggregate.
  // Mutates server-optimizer state. The default returns aggregate.params
  // (sharing storage) after checking it matches `global`.
  virtual StatusOr<ParamSet> server_update(const ParamSet& global, const Weighted& aggregate);

  // A hook shaping local training, or nullptr (the default). FedProx returns
  // one adding mu/2 ||w - w_global||^2 built with autograd on the live
  // parameters, so it contributes the real gradient mu (w - w_global).
  virtual std::unique_ptr<TrainHook> worker_hook() const { return nullptr; }

  // Async: folds one update into the global model. FailedPrecondition for
  // synchronous strategies.
  virtual StatusOr<MergeResult> merge(const ParamSet& global, const AsyncUpdate& update);

  // Checkpoint of server-side state: JSON scalars (step counts, buffer sizes,
  // the strategy name) plus tensors (momentum, m, v, fedbuff's buffer).
  // load_state() accepts exactly what these produce (InvalidArgument otherwise)
  // and restores the strategy to the saved state.
  virtual nlohmann::json state_json() const;
  virtual ParamSet state_tensors() const { return ParamSet(); }
  [[nodiscard]] virtual Status load_state(const nlohmann::json& state, const ParamSet& tensors);

 protected:
  StrategyOptions options_;
};

// Creates a strategy by options.name after validating the options and the
// strategy's params. NotFound with "did you mean" for unknown names;
// InvalidArgument naming the key for unknown or ill-typed params.
StatusOr<std::unique_ptr<Strategy>> make_strategy(const StrategyOptions& options);

// Registered names, sorted: fedadagrad fedadam fedasync fedavg fedavgm fedbuff
// fedprox fedsgd fedyogi krum median multi_krum trimmed_mean.
std::vector<std::string> strategy_names();

}  // namespace flight::aggregators
