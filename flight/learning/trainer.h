// Local training and evaluation: what a worker does for one `train` task and
// what the coordinator does to score a global model.
//
// Threads: train() and evaluate() never change global torch settings. The
// engine sets intra-op parallelism (at::set_num_threads) once for the process
// so that virtual workers running side by side do not oversubscribe the
// cores; with one intra-op thread, train() is deterministic for a given seed.
//
// Thread safety: concurrent calls are fine with distinct Model objects (the
// Dataset is shared read-only); a Model is used by one call at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "flight/params/param_set.h"
#include "flight/params/train_hook.h"

namespace flight::learning {

// `train:` options of a task. JSON keys are the member names.
struct TrainOptions {
  int64_t epochs = 1;             // passes over the worker's indices (>= 1)
  int64_t batch_size = 32;        // (>= 1); the last batch of an epoch may be smaller
  std::string optimizer = "sgd";  // sgd | adam
  double lr = 0.01;               // (> 0)
  double momentum = 0;            // sgd only, [0, 1)
  double weight_decay = 0;        // L2, sgd and adam (>= 0)
  int64_t max_steps = 0;          // cap on optimizer steps over all epochs; 0 = no cap

  [[nodiscard]] static StatusOr<TrainOptions> from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  [[nodiscard]] Status validate() const;
};

// Asks a running train() to stop early (a cancelled task, a passed deadline):
// polled before every batch, so it must be cheap (an atomic load, a clock
// read). Empty: never stops. Learning's own type, so the trainer depends on
// no control plane: the engine wraps its task context in one.
using StopCheck = std::function<bool()>;

struct TrainResult {
  // Trained state (parameters + buffers), an independent copy; empty when
  // `stopped` (a stopped task's model is discarded, so it is not copied).
  ParamSet state;
  int64_t n_samples = 0;  // size of the worker's partition (the FedAvg weight)
  double loss = 0;        // mean training loss over processed samples (without the hook's penalty)
  double accuracy = 0;    // training accuracy over processed samples, in [0, 1]
  double seconds = 0;     // wall time of the task
  int64_t steps = 0;      // optimizer steps taken
  int64_t samples_processed = 0;  // samples seen over all epochs (<= epochs × n_samples)
  bool stopped = false;           // the StopCheck said stop before the last batch
  int64_t planned_steps = 0;      // steps the options called for (epochs × batches, capped)
};

// Loads `global` into `model` (an empty `global` keeps the model's current
// state), then trains on data[indices]: each epoch shuffles the indices with a
// generator seeded from (seed, epoch) — the engine derives `seed` from
// (worker, round) — and takes batches with index_select from the shared
// dataset (no per-worker copy). Fresh optimizer state per call. When `hook` is
// set, hook->begin(global) runs once and hook->penalty(model.trainable()) is
// added to every step's loss (with its gradient). Empty `indices` is not an
// error: the result is the loaded state with n_samples = 0 and no steps.
// Errors: invalid options, an index out of range (named), incompatible
// `global` (tensor named), or a torch error from the model's forward.
// `stop` is polled before every batch; once it returns true no further batch
// runs and the result comes back with stopped = true, the steps taken so far
// and no state (not an error: the caller says why it stopped).
[[nodiscard]] StatusOr<TrainResult> train(Model& model, const ParamSet& global, const Dataset& data,
                                          const std::vector<int64_t>& indices,
                                          const TrainOptions& options, uint64_t seed,
                                          TrainHook* hook, const StopCheck& stop = {});

struct EvalResult {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // in [0, 1]
  int64_t n = 0;        // samples evaluated
};

// Loads `params` into `model` (an empty ParamSet keeps the current state) and
// evaluates it on the whole of `data` in eval mode without autograd, in
// contiguous batches of `batch_size` (large batches: this is bandwidth, not
// latency). Leaves the model in eval mode. Errors: batch_size < 1, empty
// data, incompatible params, torch errors from forward.
[[nodiscard]] StatusOr<EvalResult> evaluate(Model& model, const ParamSet& params,
                                            const Dataset& data, int64_t batch_size = 1024);

}  // namespace flight::learning
