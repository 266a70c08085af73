// ExperimentConfig: everything `flight run` needs, parsed from one YAML file in
// exactly one place (ExperimentConfig::load). Every field has a documented
// default; unknown keys are errors naming the key, its line and a "did you
// mean". Layer-owned sections (model, data, train, strategy) are validated by
// their own options structs and their errors get the section's file:line.
//
//   name: fmnist-3tier              # run name; default output dir runs/<name>
//   seed: 1                         # selection, partitioning, per-(worker,round) training seeds
//   topology: topologies/3tier.yaml # file (relative to this config; resolved to an absolute
//                                   #   path) or a generator:
//                                   #   {generate: flat, workers: 8}
//                                   #   {generate: balanced, branching: 4, height: 2}
//                                   #   {generate: by_leaves, leaves: 256, height: 4}
//                                   #   {generate: tiers, aggregators: [4], workers: 32}
//   model: {name: lenet5}           # learning::ModelSpec
//   data:                           # learning::DataSpec (with its partition)
//     dataset: fashion_mnist
//     root: /usr/share/datasets/fashion-mnist
//     partition: {method: dirichlet, alpha: 1.0}   # learning::PartitionSpec
//   train: {epochs: 1, batch_size: 32, optimizer: sgd, lr: 0.05}  # learning::TrainOptions
//   strategy: {name: fedavg, participation: 0.5}  # aggregators::StrategyOptions
//   rounds: 20
//   mode: sync                      # sync | async (async: issue 8)
//   control: local                  # local | {rest: {url: http://127.0.0.1:8765, token_file: F}}
//   data_plane:
//     connector: {kind: memory}     # default connector for every put
//     connectors: {name: {...}}     # named connectors; a topology node's `connector: name` picks
//     one
//   faults:
//     round_deadline_s: 0           # 0 = wait for every selected worker
//     min_fraction: 1.0             # results needed (of selected) to accept a round
//     on_insufficient: stop         # stop | retry
//     max_round_retries: 2
//     task_retries: 0               # re-submit a failed train task this many times
//   output: {dir: runs/<name>, checkpoint_every: 1, save_model: true}
//   eval: {every: 1, batch_size: 1024}
//   async:                          # mode: async only
//     max_updates: 100              # stop after this many merged worker updates
//     max_seconds: 0                # or this much time; 0 = no limit
//     eval_every: 10                # evaluate every N merged worker updates
//     aggregator_buffer: 4          # aggregators forward every K child updates
//   clock: real                     # real | virtual (simulated device time; reproducible async)
//   virtual_sample_rate: 1000       # virtual clock: samples/s of a speed-1 device
//   heterogeneity: {speed_sigma: 0, dropout: 0}   # lognormal speed spread; result loss prob.
//   fold: {window: 0}               # sync: updates each aggregating node resolves ahead of its
//                                   #   ordered fold, and train results outstanding at once;
//                                   #   0 = auto: 512 MiB / model size, in [8, 1024]
//   threads: 2                      # local invoker threads (virtual workers run on these)
//   debug: false                    # true: no training, data moves (every worker fetches the
//                                   #   model and puts its own perturbed copy, every aggregator
//                                   #   fetches each child's update); dispatch: no training and
//                                   #   no data (workers hand back the global model's Ref)
//   deploy: {...}                   # host processes and launchers: parsed by flight/deploy
//                                   # (deploy::DeployOptions); the engine only carries it
//   compression: {encoding: int8}   # workers' updates and partial sums on the wire: raw |
//                                   #   fp16 | bf16 | int8 (+ block_size: 256, stochastic_rounding)
//                                   #   | topk (+ topk_fraction: 0.01): workers send top-k deltas
//                                   #   with error feedback (error_feedback.h); sync mode,
//                                   #   FedAvg-family strategies, no privacy.dp;
//                                   #   aggregator_fraction: 0 (> 0: partials top-k'd too)
//   privacy:
//     dp: {clip_norm: 1.0, noise_multiplier: 1.0, placement: coordinator, adaptive: false,
//          delta: 1.0e-5, epsilon_budget: 0}   # client-level DP (dp_hooks.h); absent = off.
//                                   #   sync FedAvg-family strategies only
//     secure_aggregation: {neighbours: 0, threshold: 0.5, fractional_bits: 20}
//                                   # SecAgg+ masking (secure_options.h); absent = off.
//                                   #   sync FedAvg-family strategies, no topk
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/options.h"
#include "flight/base/status.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "flight/learning/trainer.h"
#include "flight/privacy/dp.h"
#include "flight/privacy/secagg.h"
#include "transport/update_encoding.h"

namespace flight::engine {

// The config's enumerated settings; their YAML names are the tables below
// (read with OptionReader::choice, written back with enum_name).
enum class Mode { kSync, kAsync };
enum class Clock { kReal, kVirtual };
enum class ControlKind { kLocal, kRest };
enum class OnInsufficient { kStop, kRetry };
inline const EnumNames<Mode> kModeNames = {{"sync", Mode::kSync}, {"async", Mode::kAsync}};
inline const EnumNames<Clock> kClockNames = {{"real", Clock::kReal}, {"virtual", Clock::kVirtual}};
inline const EnumNames<ControlKind> kControlNames = {{"local", ControlKind::kLocal},
                                                     {"rest", ControlKind::kRest}};
inline const EnumNames<OnInsufficient> kOnInsufficientNames = {{"stop", OnInsufficient::kStop},
                                                               {"retry", OnInsufficient::kRetry}};
inline const char* to_string(Mode v) { return enum_name(v, kModeNames); }
inline const char* to_string(Clock v) { return enum_name(v, kClockNames); }
inline const char* to_string(ControlKind v) { return enum_name(v, kControlNames); }
inline const char* to_string(OnInsufficient v) { return enum_name(v, kOnInsufficientNames); }

struct TopologyConfig {
  std::string file;         // resolved path, or empty when generated
  nlohmann::json generate;  // generator spec, or null
  nlohmann::json to_json() const;
};

struct ControlConfig {
  ControlKind kind = ControlKind::kLocal;
  std::string url;         // rest: service URL
  std::string token_file;  // rest: file holding the bearer token
  nlohmann::json to_json() const;
};

struct DataPlaneConfig {
  nlohmann::json connector = {{"kind", "memory"}};
  nlohmann::json connectors = nlohmann::json::object();  // name -> connector config
  nlohmann::json to_json() const;
};

struct FaultsConfig {
  double round_deadline_s = 0;
  double min_fraction = 1.0;
  OnInsufficient on_insufficient = OnInsufficient::kStop;
  int64_t max_round_retries = 2;
  int64_t task_retries = 0;
  nlohmann::json to_json() const;
};

struct OutputConfig {
  std::string dir;  // default runs/<name>
  int64_t checkpoint_every = 1;
  bool save_model = true;
  nlohmann::json to_json() const;
};

struct EvalConfig {
  int64_t every = 1;
  int64_t batch_size = 1024;
  nlohmann::json to_json() const;
};

// mode: async. Workers train continuously; updates flow up the tree and are
// merged by the strategy (fedasync, fedbuff) with exact staleness.
struct AsyncConfig {
  int64_t max_updates = 100;      // stop after this many worker updates were merged
  double max_seconds = 0;         // or after this much time (wall, or virtual); 0 = no limit
  int64_t eval_every = 10;        // evaluate every N merged worker updates
  int64_t aggregator_buffer = 4;  // an aggregator forwards after this many child updates
  nlohmann::json to_json() const;
};

// Simulated device heterogeneity (sync and async).
struct HeterogeneityConfig {
  double speed_sigma = 0;  // worker speed *= lognormal(0, sigma), seeded; 0 = topology speeds
  double dropout = 0;      // probability that a worker's task result is lost
  nlohmann::json to_json() const;
};

// Sync rounds fold as children report, in canonical order (child_fold.h).
struct FoldConfig {
  int64_t window = 0;  // 0 = auto (window_for)
  nlohmann::json to_json() const;
  // The window for a model of `model_bytes` bytes: `window`, or when 0,
  // 512 MiB / model_bytes clamped to [8, 1024].
  int64_t window_for(uint64_t model_bytes) const;
};

// No-training modes (`debug:`), for measuring the framework.
enum class DebugMode {
  kOff,       // false: workers train
  kMoveData,  // true: no training, but the bytes of a real round move: every worker fetches
              //   the global model and puts its own copy, perturbed by a deterministic
              //   (worker_index + 1) x 2^-20 on every floating element; every aggregator
              //   fetches each child's update
  kDispatch,  // dispatch: no training and no data: a worker hands back the global model's
              //   Ref (not owned), so only control messages move
};
inline const EnumNames<DebugMode> kDebugNames = {
    {"off", DebugMode::kOff}, {"data", DebugMode::kMoveData}, {"dispatch", DebugMode::kDispatch}};
inline const char* to_string(DebugMode v) { return enum_name(v, kDebugNames); }
// false | true | "dispatch" (also "off", "data"); InvalidArgument otherwise.
StatusOr<DebugMode> debug_mode_from_json(const nlohmann::json& j);
nlohmann::json debug_mode_to_json(DebugMode m);

struct ExperimentConfig {
  std::string name = "experiment";
  uint64_t seed = 0;
  TopologyConfig topology;
  learning::ModelSpec model;
  learning::DataSpec data;  // includes data.partition
  learning::TrainOptions train;
  aggregators::StrategyOptions strategy;
  int64_t rounds = 10;
  Mode mode = Mode::kSync;
  ControlConfig control;
  DataPlaneConfig data_plane;
  FaultsConfig faults;
  OutputConfig output;
  EvalConfig eval;
  AsyncConfig async;
  HeterogeneityConfig heterogeneity;
  // real: time is wall time. virtual: a task takes samples / (speed × rate)
  // simulated seconds; async completions are taken in simulated-time order
  // (reproducible under any load) and makespan / idle time are simulated.
  Clock clock = Clock::kReal;
  double virtual_sample_rate = 1000;  // samples per simulated second at speed 1
  FoldConfig fold;
  int64_t threads = 2;
  DebugMode debug = DebugMode::kOff;
  // The `deploy:` section, unparsed: flight/deploy owns its schema
  // (deploy::DeployOptions::from_json); the engine never reads it.
  nlohmann::json deploy = nlohmann::json::object();
  // Where each value of the loaded file came from (JSON pointer -> line), so
  // that a layer parsing its own section (deploy) names the field's file:line.
  // No lines when the config was built from JSON in memory.
  SourceLines lines;
  transport::EncodeOptions compression;  // raw: updates travel as float32
  double aggregator_fraction = 0;        // compression.aggregator_fraction (topk; job.h)
  // privacy.dp: client-level differential privacy (dp_hooks.h); nullopt = off.
  std::optional<privacy::DpOptions> dp;
  // privacy.secure_aggregation: masked updates, aggregators add modulo 2^32
  // (secure_options.h, secure_round.h); nullopt = off.
  std::optional<privacy::SecAggOptions> secure;

  // Loads `path`, applies `overrides` ("train.lr=0.1", "rounds=5": dotted keys,
  // YAML scalar values) and validates. Errors name file, line and key.
  static StatusOr<ExperimentConfig> load(const std::string& path,
                                         const std::vector<std::string>& overrides = {});
  // As load, from JSON already in memory (e.g. a resolved config.yaml).
  static StatusOr<ExperimentConfig> from_json(const nlohmann::json& j,
                                              const std::string& source = "<config>",
                                              const std::string& base_dir = ".");

  Status validate() const;
  // The resolved config: every field, defaults filled in, file paths
  // absolute; loads back to the same config from any directory.
  nlohmann::json to_json() const;
};

// The config a run directory records (RUN_DIR/config.yaml, written by every
// run) with `overrides` applied: what `flight run --resume RUN_DIR` continues.
StatusOr<ExperimentConfig> load_run_config(const std::string& run_dir,
                                           const std::vector<std::string>& overrides = {});

// Every setting in which `now` differs from `was`, one "key: OLD -> NEW" per
// differing leaf (dotted keys, sorted, values as JSON), ignoring output.dir.
// Empty when a resume with `now` continues the run `was` describes.
std::vector<std::string> config_differences(const ExperimentConfig& was,
                                            const ExperimentConfig& now);

}  // namespace flight::engine
