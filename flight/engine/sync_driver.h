// SyncDriver: mode: sync. Each round the strategy selects workers, the global
// model is put once, every selected worker gets a `train` task, each finished
// child is reported to its parent, an aggregator whose children have all
// reported gets an `aggregate` task over them (canonical order), and the
// coordinator folds its children and applies the strategy's server step. A
// round deadline closes the round for stragglers; failures and simulated
// dropout count against faults.min_fraction (stop, or retry the round).
//
// Threading: run() drives rounds on the calling thread; task completions
// arrive on invoker threads (and the delay thread for slow devices) and are
// folded into the round's state under its mutex. Follow-up submissions are
// made after the mutex is released.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "flight/base/status.h"
#include "flight/engine/federation.h"
#include "flight/engine/messages.h"
#include "flight/engine/metrics.h"
#include "flight/faas/invoker.h"

namespace flight::engine {

struct RunContext;
class SimulatedDevices;
class RunOutput;

class SyncDriver {
 public:
  SyncDriver(RunContext& ctx, SimulatedDevices& devices, RunOutput& output)
      : ctx_(ctx), devices_(devices), output_(output) {}

  StatusOr<RunSummary> run();

 private:
  struct RoundState;
  using RoundPtr = std::shared_ptr<RoundState>;
  using Later = std::vector<std::function<void()>>;  // work to run once the lock is released

  StatusOr<RoundRow> run_round(int64_t round);
  Status run_attempt(int64_t round, const RoundPtr& rs, std::vector<std::string>* selected);
  void select(int64_t round, const RoundPtr& rs, std::vector<std::string>* selected);
  void submit_trains(int64_t round, const RoundPtr& rs, const std::vector<std::string>& selected);
  void wait_for_root(int64_t round, const RoundPtr& rs);
  void close_at_deadline(int64_t round, const RoundPtr& rs, std::unique_lock<std::mutex>* lock);
  void fill_row(const RoundState& rs, size_t selected, RoundRow* row) const;
  std::string insufficient(int64_t round, const RoundState& rs, size_t selected,
                           int64_t needed) const;
  Status fold_root(int64_t round, const RoundState& rs, RoundRow* row);

  faas::TaskSpec train_spec(const RoundPtr& rs, int64_t round, const std::string& worker) const;
  void launch_aggregate(const RoundPtr& rs, int64_t round, const std::string& node,
                        std::vector<ChildUpdate> children);
  void submit_task(const RoundPtr& rs, int64_t round, const std::string& node, faas::TaskSpec spec);
  void take_early(const RoundPtr& rs, int64_t round, Later* after);

  void on_task_done(const RoundPtr& rs, int64_t round, const faas::TaskResult& result);
  void handle_result(const RoundPtr& rs, int64_t round, const std::string& node,
                     const faas::TaskResult& result, Later* after);
  struct Parsed;
  bool worker_gate(const RoundPtr& rs, int64_t round, const std::string& node, const Parsed& result,
                   TaskRow& row, Later* after);
  bool worker_dropped(const RoundPtr& rs, int64_t round, const std::string& node,
                      const Parsed& result, TaskRow& row, Later* after);
  std::optional<ChildUpdate> take_update(RoundState& rs, const std::string& node,
                                         const Parsed& result, TaskRow* row) const;
  void report(const RoundPtr& rs, int64_t round, const std::string& parent,
              std::optional<ChildUpdate> update, const std::string& failure, Later* after);
  TaskRow task_row(RoundState& rs, int64_t round, const std::string& node,
                   const faas::TaskResult& result) const;
  static Parsed parse(const faas::TaskResult& raw, bool is_worker);
  void evict_update(const TrainResult& r);
  void progress(const RoundRow& row) const;

  RunContext& ctx_;
  SimulatedDevices& devices_;
  RunOutput& output_;
  double virtual_time_ = 0;  // clock: virtual — simulated time so far
};

}  // namespace flight::engine
