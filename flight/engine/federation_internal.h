// Internal to flight/engine: the Federation driver class shared by the sync
// round loop (federation.cc) and the async loop (async.cc). Not installed; not
// part of the engine's API (federation.h is).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregators/strategy.h"
#include "flight/base/time.h"
#include "flight/engine/config.h"
#include "flight/engine/delay_queue.h"
#include "flight/engine/federation.h"
#include "flight/engine/metrics.h"
#include "flight/faas/invoker.h"
#include "flight/learning/dataset.h"
#include "flight/learning/model.h"
#include "topology/topology.h"
#include "transport/store.h"

namespace flight::engine::detail {

using nlohmann::json;
using topology::NodeKind;
using topology::Topology;

// What a finished child (worker or aggregator) hands its parent.
struct ChildUpdate {
  std::string node;
  json update;  // Ref JSON
  bool owned = true;
  double weight = 0;
  int64_t count = 0;  // workers folded into it
};

// Per-node bookkeeping of one round, for the coordinator and aggregators.
struct NodeState {
  size_t pending = 0;  // children that have not reported
  std::vector<ChildUpdate> updates;
  std::vector<std::string> failures;
  bool launched = false;
};

struct RoundState {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, NodeState> nodes;      // aggregators and the root
  std::unordered_map<std::string, std::string> task_node;  // task id -> node
  std::unordered_map<std::string, faas::TaskResult> early;  // results before their id was known
  std::unordered_set<std::string> waiting_workers;          // train tasks not yet reported
  std::unordered_map<std::string, int64_t> attempts;        // worker -> train attempts
  bool root_done = false;
  bool closed = false;  // deadline passed: late worker results are dropped
  int64_t stragglers = 0, failed = 0;
  std::vector<std::string> failures;  // every failed task, e.g. worker w3: why
  double train_loss_sum = 0, train_weight_sum = 0, train_seconds_max = 0, busy = 0;
  uint64_t bytes_put = 0, bytes_fetched = 0;
  std::vector<uint64_t> bytes_up_by_tier;
  std::vector<TaskRow> rows;
  json model_ref;  // this round's global model
  double virtual_span = 0;  // clock: virtual — the slowest returned worker's task
};

StatusOr<Topology> load_topology(const TopologyConfig& t);

class Federation {
 public:
  Federation(ExperimentConfig config, RunOptions options)
      : config_(std::move(config)), options_(std::move(options)) {}

  // Dispatches on config.mode.
  StatusOr<RunSummary> run();

 private:
  StatusOr<RunSummary> run_sync();
  StatusOr<RunSummary> run_async();  // async.cc
  Status setup();
  // Extra time factor of a simulated slow device: max_speed / speed - 1.
  double slowdown(const std::string& worker) const;
  // Whether `worker`'s task number `task` loses its result (simulated
  // availability); a pure function of (seed, worker, task).
  bool drops(const std::string& worker, int64_t task) const;
  void count_worker_task(const std::string& worker, double busy_s, bool dropped, bool failed);
  Status write_workers_csv(double makespan_s);
  Status resume_from_checkpoint();
  StatusOr<RoundRow> run_round(int64_t round);
  Status run_round_attempt(int64_t round, const std::shared_ptr<RoundState>& rs,
                           std::vector<std::string>* selected);
  void on_task_done(const std::shared_ptr<RoundState>& rs, int64_t round,
                    const faas::TaskResult& result);
  void handle_result(const std::shared_ptr<RoundState>& rs, int64_t round,
                     const std::string& node, const faas::TaskResult& result,
                     std::vector<std::function<void()>>* after);
  void report(const std::shared_ptr<RoundState>& rs, int64_t round, const std::string& parent,
              std::optional<ChildUpdate> update, const std::string& failure,
              std::vector<std::function<void()>>* after);
  void launch_aggregate(const std::shared_ptr<RoundState>& rs, int64_t round,
                        const std::string& node, std::vector<ChildUpdate> children);
  faas::TaskSpec train_spec(const std::shared_ptr<RoundState>& rs, int64_t round,
                            const std::string& worker) const;
  void submit_task(const std::shared_ptr<RoundState>& rs, int64_t round, const std::string& node,
                   faas::TaskSpec spec);
  json put_args(const std::string& node, int64_t round) const;
  json node_connector(const std::string& node) const;
  std::string endpoint_of(const std::string& node) const;
  StatusOr<std::pair<double, double>> evaluate_global();
  Status write_checkpoint(int64_t round);
  Status write_outputs(RunSummary* summary);
  void progress(const RoundRow& row);
  double now() const { return clock_.seconds() + elapsed_offset_; }

  ExperimentConfig config_;
  RunOptions options_;
  std::string out_dir_;
  std::unique_ptr<Topology> topology_;
  std::vector<std::string> workers_;
  std::unordered_map<std::string, int64_t> worker_index_;
  std::unordered_map<std::string, int64_t> tier_;
  size_t tiers_ = 1;
  json job_;
  // job_id(job_). Embedded runs register the job in-process, so their tasks
  // carry only this id; REST tasks carry both (see job_args()).
  std::string job_id_;
  json job_args() const;  // {job_id} or {job_id, job}: the start of every task's args
  std::unique_ptr<faas::Invoker> invoker_;
  transport::Store* store_ = nullptr;
  std::unique_ptr<aggregators::Strategy> strategy_;
  std::unique_ptr<learning::Model> model_;
  learning::DatasetPair data_;
  ParamSet global_;
  std::mt19937_64 rng_;
  int64_t first_round_ = 1;
  Stopwatch clock_;
  double elapsed_offset_ = 0;
  std::vector<RoundRow> rows_;
  CsvLog rounds_csv_, tasks_csv_;
  double max_speed_ = 1.0;
  std::unordered_map<std::string, double> speed_;  // effective speed per worker
  // Simulated duration of one train task per worker: samples / (speed × rate).
  std::unordered_map<std::string, double> planned_;
  double virtual_time_ = 0;  // sync, clock: virtual — simulated time so far
  struct WorkerStats {
    int64_t tasks = 0, dropped = 0, failed = 0;
    double busy_s = 0;  // (simulated) compute time
  };
  std::mutex worker_stats_mu_;
  std::map<std::string, WorkerStats> worker_stats_;
  // Last member: destroyed first, so no delayed delivery outlives the rest.
  std::unique_ptr<DelayQueue> delays_;
};

}  // namespace flight::engine::detail
