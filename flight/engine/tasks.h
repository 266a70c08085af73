// The task functions of a round — `train` (on workers), `aggregate` (on
// aggregators) and `evaluate` — over the typed messages of messages.h, and
// their registration by name in a faas FunctionRegistry, so the embedded
// invoker and the `flight endpoint` binary run exactly the same code.
//
// Each process derives what a job implies (datasets, partitions, models) once
// (job_cache.h), so a task costs its own work plus microseconds.
//
// Thread safety: the functions may run concurrently on any threads.
#pragma once

#include "flight/base/status.h"
#include "flight/engine/messages.h"
#include "flight/faas/functions.h"

namespace flight::engine {

// Resolves args.model, trains the worker's partition from it and puts the
// update through args.put. Debug jobs (config.h, DebugMode) do not train:
// debug: true puts a perturbed copy of the model (the bytes of a real round);
// debug: dispatch fetches nothing and hands back args.model, not owned.
StatusOr<TrainResult> train(const TrainArgs& args, const faas::TaskContext& ctx);

// Folds the children's updates (child_fold.h), evicting owned ones once
// folded, and puts the weighted partial aggregate. With args.stream (sync
// rounds) the fold spans several tasks and runs in canonical order as the
// children arrive (fold_stream); without, args.children is the whole fold, in
// list order (the drivers sort them, so results are bit-reproducible), and
// children that carry a `base` (async) get their bases folded with the same
// weights, keeping mean(model) − mean(base) = mean(delta).
StatusOr<AggregateResult> aggregate(const AggregateArgs& args, const faas::TaskContext& ctx);

// Loss and accuracy of args.model on the test-set slice [begin, end).
StatusOr<EvaluateResult> evaluate(const EvaluateArgs& args, const faas::TaskContext& ctx);

// Registers train, aggregate, evaluate and the secure-aggregation phases
// secagg_advertise, secagg_share, secagg_reveal (secagg_worker.h), replacing
// earlier registrations.
void register_functions(faas::FunctionRegistry& registry);

}  // namespace flight::engine
