// Internal to flight/engine (and `flight bench overhead`, whose bare loop
// evaluates with evaluate_sharded below): what both drivers (sync_driver.h, async_driver.h)
// work on — the topology, the control plane (invoker), the data plane (store),
// the strategy, the model and data, and the global model with the selection
// RNG. A plain struct filled once by build_run_context(); the drivers own the
// round logic, RunOutput (output.h) the files, SimulatedDevices (devices.h)
// the simulated heterogeneity.
//
// Threading: the fields are set up before any task runs and then read
// concurrently by invoker threads; only the driving thread changes `global`,
// `rng` and `first_round`.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/time.h"
#include "flight/engine/config.h"
#include "flight/engine/dp_hooks.h"
#include "flight/engine/error_feedback.h"
#include "flight/engine/federation.h"
#include "flight/engine/messages.h"
#include "flight/faas/invoker.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "topology/topology.h"
#include "transport/store.h"

namespace flight::engine {

struct RunContext {
  ExperimentConfig config;
  RunOptions options;
  std::string out_dir;

  std::unique_ptr<topology::Topology> topology;
  std::vector<std::string> workers;  // topology order; a worker's index is its partition
  std::unordered_map<std::string, int64_t> worker_index;
  std::unordered_map<std::string, int64_t> tier;  // node -> depth (root 0)
  size_t tiers = 1;

  nlohmann::json job;  // Job::to_json()
  // job_id(job). Embedded runs register the job in-process, so their tasks
  // carry only the id. REST runs put the job once in the data plane and their
  // tasks carry the id and where it is (job_at); an endpoint fetches it once.
  std::string job_id;
  nlohmann::json job_at;  // {connector, key}, or null

  std::unique_ptr<faas::Invoker> invoker;
  transport::Store* store = nullptr;  // the coordinator's (process-wide, task_process.h)
  std::unique_ptr<aggregators::Strategy> strategy;
  std::unique_ptr<learning::Model> model;
  learning::DatasetPair data;

  ParamSet global;      // the current global model
  std::mt19937_64 rng;  // worker selection
  // privacy.dp: the coordinator's side (noise, clip norm, accountant); null = off.
  std::unique_ptr<DpServer> dp;
  // compression topk: each worker's last delivered round (error_feedback.h); null = off.
  std::unique_ptr<DeltaLedger> ef;
  int64_t first_round = 1;  // > 1 after --resume
  Stopwatch clock;
  double elapsed_offset = 0;  // run time before --resume

  // Seconds since the run started (across --resume).
  double now() const { return clock.seconds() + elapsed_offset; }
  bool is_local() const { return config.control.kind == ControlKind::kLocal; }

  JobRef job_ref() const;
  // A task for `node`'s endpoint. The typed message goes as is to an
  // in-process function (LocalInvoker); an invoker that sends the task to
  // another process sends its JSON.
  template <typename Args>
  faas::TaskSpec task(const std::string& node, const char* function, Args args) const {
    faas::TaskSpec spec;
    spec.endpoint = endpoint_of(node);
    spec.function = function;
    spec.message = std::make_shared<faas::TypedMessage<Args>>(std::move(args));
    return spec;
  }
  // Removes what build_run_context() put into the data plane (job_at).
  void release_job();
  // The connector config `node` puts through (its own, a named one, or the default).
  nlohmann::json node_connector(const std::string& node) const;
  PutTarget put_target(const std::string& node, const std::string& scope) const;
  // The FaaS endpoint a node's tasks go to (a node without `endpoint:` is its own).
  std::string endpoint_of(const std::string& node) const;
  // The global model's (test loss, test accuracy), sharded over `threads` threads.
  StatusOr<std::pair<double, double>> evaluate_global();
};

// (loss, accuracy) of `params` on `test`, sharded over up to `threads` threads
// (one per 256 images at most): shard 0 on `model`, the others on models made
// from `spec`. The intra-op pool is pinned to one thread for the virtual
// workers, so this is how an evaluation keeps every core busy. Also used by
// `flight bench overhead`'s bare loop, which must evaluate as the engine does.
StatusOr<std::pair<double, double>> evaluate_sharded(learning::Model& model,
                                                     const learning::ModelSpec& spec,
                                                     const ParamSet& params,
                                                     const learning::Dataset& test, int64_t threads,
                                                     int64_t batch_size);

// A finished task's typed result: the in-process message as is, or read from
// its JSON (which may come from another process: checked field by field).
template <typename Result>
StatusOr<Result> result_of(const faas::TaskResult& r) {
  if (const Result* typed = faas::message_as<Result>(r.message)) return *typed;
  return Result::from_json(r.result);
}

// A worker task result's train_seconds, read before the result is checked (it
// sets a slow device's delay): 0 when absent or malformed.
double train_seconds_of(const faas::TaskResult& r);

StatusOr<topology::Topology> load_topology(const TopologyConfig& t);

// Loads the topology, model, data and strategy, builds the invoker and the
// store, and registers the job; leaves outputs to RunOutput.
Status build_run_context(const ExperimentConfig& config, const RunOptions& options,
                         RunContext* ctx);

}  // namespace flight::engine
