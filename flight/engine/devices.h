// SimulatedDevices: the simulated heterogeneity of a run's workers — speeds
// (the topology's `speed` times a seeded lognormal spread), the planned
// (virtual-clock) duration of a train task, dropout (a task's result lost, a
// pure function of seed, worker and task), the delay queue that holds a slow
// device's result back in real time, and per-worker statistics (workers.csv).
//
// Thread safety: const methods and count_task/add_busy/delay may be called
// concurrently; stop() from the driving thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "flight/base/status.h"
#include "flight/engine/config.h"
#include "flight/engine/delay_queue.h"
#include "topology/topology.h"

namespace flight::engine {

struct RunContext;

class SimulatedDevices {
 public:
  struct WorkerStats {
    int64_t tasks = 0, dropped = 0, failed = 0;
    double busy_s = 0;  // (simulated) compute time
  };

  // Speeds from the topology and config.heterogeneity; planned durations from
  // the partition sizes every process derives alike.
  static StatusOr<std::unique_ptr<SimulatedDevices>> create(const RunContext& ctx);

  // Every per-worker query comes in two forms: by worker id, and by worker
  // index (the worker's position in RunContext::workers, its partition) for
  // the sync driver's per-task path, which keeps no string-keyed maps.

  // Extra time factor of a simulated slow device: max_speed / speed − 1.
  double slowdown(size_t worker) const;
  double slowdown(const std::string& worker) const { return slowdown(index(worker)); }
  // Whether the worker's task number `task` loses its result.
  bool drops(size_t worker, int64_t task) const;
  bool drops(const std::string& worker, int64_t task) const { return drops(index(worker), task); }
  // Simulated duration of one train task: samples / (speed × rate).
  double planned(size_t worker) const { return planned_.at(worker); }
  double planned(const std::string& worker) const { return planned(index(worker)); }
  // Compute time a task that reported `train_seconds` cost the device: the
  // planned time on the virtual clock, the (slowed-down) real time otherwise.
  double busy(size_t worker, double train_seconds) const;
  double busy(const std::string& worker, double train_seconds) const {
    return busy(index(worker), train_seconds);
  }

  void count_task(size_t worker, double busy_s, bool dropped, bool failed);
  void count_task(const std::string& worker, double busy_s, bool dropped, bool failed) {
    count_task(index(worker), busy_s, dropped, failed);
  }
  void add_busy(const std::string& worker, double busy_s);
  // The per-worker statistics as JSON (checkpoints) and back (--resume).
  nlohmann::json stats_json() const;
  Status restore_stats(const nlohmann::json& j);
  // Runs `fn` on the delay thread after `seconds`.
  void delay(double seconds, std::function<void()> fn) { delays_->post(seconds, std::move(fn)); }
  // Drops pending delayed deliveries and joins the delay thread; called before
  // the driver whose callbacks they are goes away.
  void stop() { delays_.reset(); }

  // workers.csv: speed, tasks, dropped, failed, busy time and idle fraction of
  // `makespan_s` per worker.
  Status write_csv(const std::string& path, double makespan_s) const;

 private:
  // Statistics of one worker; `seen` once it ran a task (or was restored):
  // workers.csv and checkpoints list those only.
  struct Slot {
    WorkerStats stats;
    bool seen = false;
  };

  SimulatedDevices(const ExperimentConfig& config, const std::vector<std::string>& workers,
                   const std::unordered_map<std::string, int64_t>& index)
      : config_(config), workers_(workers), worker_index_(index) {}

  size_t index(const std::string& worker) const {
    return static_cast<size_t>(worker_index_.at(worker));
  }
  // Worker indices of the seen slots, in id order (the order of the old
  // id-keyed map, so workers.csv is unchanged). Called with stats_mu_ held.
  std::vector<size_t> seen_by_id() const;

  const ExperimentConfig& config_;
  const std::vector<std::string>& workers_;
  const std::unordered_map<std::string, int64_t>& worker_index_;
  double max_speed_ = 1.0;
  std::vector<double> speed_;    // effective speed, by worker index
  std::vector<double> planned_;  // virtual seconds per train task, by worker index
  mutable std::mutex stats_mu_;
  std::vector<Slot> stats_;  // by worker index
  std::unique_ptr<DelayQueue> delays_ = std::make_unique<DelayQueue>();
};

}  // namespace flight::engine
