// Internal to flight/engine: what both drivers (sync_driver.h, async_driver.h)
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
  // carry only the id; REST tasks carry the job too.
  std::string job_id;

  std::unique_ptr<faas::Invoker> invoker;
  transport::Store* store = nullptr;  // the coordinator's (process-wide, task_process.h)
  std::unique_ptr<aggregators::Strategy> strategy;
  std::unique_ptr<learning::Model> model;
  learning::DatasetPair data;

  ParamSet global;          // the current global model
  std::mt19937_64 rng;      // worker selection
  int64_t first_round = 1;  // > 1 after --resume
  Stopwatch clock;
  double elapsed_offset = 0;  // run time before --resume

  // Seconds since the run started (across --resume).
  double now() const { return clock.seconds() + elapsed_offset; }
  bool is_local() const { return config.control.kind == ControlKind::kLocal; }

  JobRef job_ref() const;
  // The connector config `node` puts through (its own, a named one, or the default).
  nlohmann::json node_connector(const std::string& node) const;
  PutTarget put_target(const std::string& node, const std::string& scope) const;
  // The FaaS endpoint a node's tasks go to (a node without `endpoint:` is its own).
  std::string endpoint_of(const std::string& node) const;
  // The global model's (test loss, test accuracy), sharded over `threads` threads.
  StatusOr<std::pair<double, double>> evaluate_global();
};

StatusOr<topology::Topology> load_topology(const TopologyConfig& t);

// Loads the topology, model, data and strategy, builds the invoker and the
// store, and registers the job; leaves outputs to RunOutput.
Status build_run_context(const ExperimentConfig& config, const RunOptions& options,
                         RunContext* ctx);

}  // namespace flight::engine
