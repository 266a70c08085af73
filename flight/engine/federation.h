// run_experiment: `flight run` as a library call. Loads the topology, builds
// the control plane (embedded LocalInvoker or RestInvoker) and the data plane
// (a Store over the configured connector), then runs rounds as DESIGN.md's
// "The round, as data flows" describes, writing rounds.csv, tasks.csv,
// summary.json, config.yaml, the final model, accuracy.svg and checkpoints
// into the output directory.
//
// Threading: the calling thread drives rounds; task completions arrive on
// invoker threads and are folded into a per-round state under its mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/engine/config.h"
#include "flight/engine/metrics.h"
#include "flight/params/param_set.h"

namespace flight::faas {
class FunctionRegistry;
}
namespace flight::topology {
class Topology;
}

namespace flight::engine {

struct RunOptions {
  std::string output_dir;  // overrides config.output.dir when not empty
  bool resume = false;     // continue from output_dir's last checkpoint
  // --resume with a config that differs from the run's config.yaml (see
  // config_differences): false = an error naming every differing key; true =
  // continue the run with the new settings (config.yaml then records them).
  bool allow_changes = false;
  // The config as the user gave it, before a deployment pointed its control
  // and data planes at the processes it started (flight/deploy sets this):
  // what config.yaml records and --resume compares. Null = the config
  // run_experiment got.
  std::optional<ExperimentConfig> config_as_given;
  bool quiet = false;  // no progress line
  // Return after this many rounds of this invocation, as if killed (tests of
  // --resume). 0 = run to the end.
  int64_t stop_after_rounds = 0;
  // Fault injection (tests, chaos trials): SIGKILL this process right after
  // it wrote its N-th checkpoint (counted in this invocation). 0 = never.
  int64_t crash_after_checkpoints = 0;
  // Functions for the embedded invoker; nullptr = faas::default_functions()
  // with the engine's train/aggregate/evaluate registered.
  faas::FunctionRegistry* functions = nullptr;
  // Called after every round (on the driving thread).
  std::function<void(const RoundRow&)> on_round;
  // Polled on the driving thread after every round (sync: after its
  // checkpoint) and before every async merge; true stops the run there as if
  // killed: sync writes the round's checkpoint (even between checkpoint_every
  // rounds), so --resume continues it; RunSummary::stopped is set. For
  // Ctrl-C from a front end that owns the signal (Python's KeyboardInterrupt).
  std::function<bool()> should_stop;
  // node -> endpoint name chosen by a deployment's placement (flight/deploy),
  // for nodes whose topology entry names no `endpoint:` (that one wins).
  std::map<std::string, std::string> placement;
};

struct RunSummary {
  std::string output_dir;
  int64_t rounds_completed = 0;
  double final_accuracy = -1, final_loss = -1;
  double best_accuracy = -1;
  double seconds = 0;
  uint64_t bytes_put = 0, bytes_fetched = 0;
  std::string model_path;
  double makespan_s = 0;       // wall time, or simulated time with async clock: virtual
  int64_t updates_merged = 0;  // async: worker updates merged
  int64_t model_versions = 0;  // async: global model versions produced
  bool stopped = false;        // ended early by should_stop or stop_after_rounds
  // Why the run ended before `rounds` with its outputs written (e.g. the
  // privacy budget); empty otherwise.
  std::string stop_reason;
  nlohmann::json privacy;  // privacy.dp: epsilon, delta, settings; null without DP
  ParamSet final_model;
  nlohmann::json to_json() const;
};

StatusOr<RunSummary> run_experiment(const ExperimentConfig& config, const RunOptions& options);

// Distinct FaaS endpoint names of the topology's workers and aggregators (a
// node without `endpoint:` is its own endpoint), sorted: what a distributed
// deployment must start `flight endpoint` for.
StatusOr<std::vector<std::string>> endpoint_names(const ExperimentConfig& config);

// The experiment's topology (its file, or its generator run), as the engine
// builds it. Include "topology/topology.h" to use the result.
StatusOr<topology::Topology> load_experiment_topology(const ExperimentConfig& config);

}  // namespace flight::engine
