// Secure aggregation, the worker's and the aggregator's side (the
// coordinator's is secure_round.h; the arithmetic is flight/privacy/secagg.h).
//
// A worker's round: `secagg_advertise` makes its X25519 key pair for the round
// from the OS CSPRNG (privacy::random_seed; never from the run seed, which
// the coordinator knows) and answers the public key and its weight;
// `secagg_share` seals Shamir shares of its secrets for its neighbours; its
// `train` task (TrainArgs::secure) opens the shares its neighbours sealed for
// it, encodes its weighted update delta in fixed point and masks it
// (mask_update); `secagg_reveal` gives the coordinator the shares that remove
// exactly the masks left in the total. The secrets live between these tasks
// in a per-process table keyed by (job, round plan, worker index), erased
// after the reveal (and when a later round of the same job advertises in the
// process: a worker that dropped is never asked to reveal). So all four tasks
// of a worker must run in the process that advertised: when several
// `flight endpoint` processes serve one endpoint name, a task that lands on
// another one fails ("no secure-aggregation secret ... in this process") and
// the worker counts as dropped — before masking it is left out of the
// round, after masking its masks are removed through its neighbours' shares.
//
// The masked vector: one int32 tensor `secagg` of n + 2 words (n = the
// model's floating elements, in ParamSet order): round(delta_i * w * s * 2^b)
// for the trained-minus-global delta, the worker's weight w and s = 1 / (the
// selected workers' total weight), then round(w * s * 2^b) and the worker's
// DP clip bit (0 without DP), all plus masks modulo 2^32. Weights are
// normalised so that the total is a weighted mean of deltas, which keeps it
// in the fixed-point range whatever the number of workers.
//
// Thread safety: every function may run concurrently.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>

#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/engine/messages.h"
#include "flight/faas/functions.h"
#include "flight/params/param_set.h"
#include "flight/privacy/secagg.h"

namespace flight::engine {

struct JobRuntime;

// The masked vector's tensor name and its words after the model's elements
// (weight, clip bit).
inline constexpr const char* kMaskedTensor = "secagg";
inline constexpr size_t kMaskedExtraWords = 2;

privacy::SecAggRound to_round(const SecAggPlan& plan);
SecAggPlan to_plan(const privacy::SecAggRound& round);

// Floating elements of `model` (the masked vector has this many + 2 words);
// InvalidArgument for floating tensors that are not float32.
StatusOr<size_t> masked_words(const ParamSet& model);

// The aggregators' fold of masked vectors: adds them modulo 2^32 (the weight
// passed in is summed alongside, as a count); never reads them as numbers.
std::unique_ptr<aggregators::Aggregation> masked_sum();

// The train task's part: `trained` (after DP, if any) becomes the worker's
// masked vector; `weight` is its update's weight (1 under DP). `unclipped`:
// DP's clip bit, which travels masked too.
StatusOr<ParamSet> mask_update(const TrainArgs& args, const JobRuntime& rt, const ParamSet& global,
                               const ParamSet& trained, double weight,
                               std::optional<bool> unclipped);

StatusOr<SecAggAdvertiseResult> secagg_advertise(const SecAggAdvertiseArgs& args,
                                                 const faas::TaskContext& ctx);
StatusOr<SecAggShareResult> secagg_share(const SecAggShareArgs& args, const faas::TaskContext& ctx);
StatusOr<SecAggRevealResult> secagg_reveal(const SecAggRevealArgs& args,
                                           const faas::TaskContext& ctx);

// Secrets held by this process (tests: a reveal erases its worker's).
size_t secagg_secrets_held();

}  // namespace flight::engine
