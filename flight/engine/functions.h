// The FaaS functions that make up a round — `train` (on workers), `aggregate`
// (on aggregators) and `evaluate` — registered by name in a faas
// FunctionRegistry, so the embedded invoker and the `flight endpoint` binary
// run exactly the same code.
//
// Weights never travel in args or results: only transport::Ref JSON does.
//
//   train     args   {job, round, node, worker_index, model: Ref, put: {connector, scope}}
//             result {update: Ref, owned: bool, n_samples, weight, loss, accuracy,
//                     train_seconds, bytes_fetched, bytes_put}
//   aggregate args   {job, round, node, children: [{node, update: Ref, owned, weight, count,
//                     base?: Ref, base_owned?}], put: {connector, scope}}
//             result {update: Ref, owned: true, weight, count, base?: Ref, bytes_fetched,
//                     bytes_put} — `base` (async: the models the updates started from) is
//                     folded with the same weights when the children carry one
//   evaluate  args   {job, model: Ref, batch_size, begin?, end?}
//             result {loss, accuracy, n}
//
// `job` (Job::to_json) names the model, data, partition, training options and
// strategy; each process parses it once and caches the datasets, partitions and
// per-thread models it implies, so a task costs its own work plus microseconds.
// Args may carry `job_id` (job_id(job)) next to `job`, or instead of it when
// the job was registered in the running process (register_job: the embedded
// invoker), so a task's args stay a few hundred bytes and no task re-hashes
// the job.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/status.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "flight/learning/trainer.h"

namespace flight::faas {
class FunctionRegistry;
}
namespace flight::transport {
class Store;
}

namespace flight::engine {

struct Job {
  learning::ModelSpec model;
  learning::DataSpec data;  // with data.partition
  learning::TrainOptions train;
  aggregators::StrategyOptions strategy;
  uint64_t seed = 0;
  int64_t n_workers = 0;  // partitions are computed for this many workers
  bool debug = false;     // no training: train returns the global model's Ref

  nlohmann::json to_json() const;
  static StatusOr<Job> from_json(const nlohmann::json& j);
};

// Registers train, aggregate and evaluate (replacing earlier registrations).
void register_functions(faas::FunctionRegistry& registry);

// Prepares a process that runs tasks (the embedded run, `flight endpoint`):
// one intra-op torch thread per task thread — so concurrent tasks do not
// oversubscribe the cores and results do not depend on the thread count —
// and the engine's functions in faas::default_functions().
void configure_task_process();

// The thread part of configure_task_process(): one intra-op torch thread and
// one OpenBLAS thread per calling thread (tasks run side by side on the
// invoker's threads; BLAS threads of their own would oversubscribe the cores).
void configure_task_threads();

// The process-wide store that puts through `connector` (built once per
// distinct config). Any store resolves any Ref.
StatusOr<transport::Store*> store_for(const nlohmann::json& connector);

// A short id of `job` ("job-" + 16 hex): a hash of its canonical JSON, the
// same in every process.
std::string job_id(const nlohmann::json& job);

// Makes `job` known to this process, so tasks run here may carry only
// {job_id}; returns job_id(job). Thread-safe; registering twice is harmless.
std::string register_job(const nlohmann::json& job);

// Seed of worker `worker_index`'s training in `round`: a hash, so that
// neighbouring workers and rounds get unrelated streams.
uint64_t task_seed(uint64_t seed, int64_t worker_index, int64_t round);

}  // namespace flight::engine
