// SyncDriver: mode: sync. Each round the strategy selects workers, the global
// model is put once, every selected worker gets a `train` task, and each
// finished child is reported to its parent. Aggregating nodes fold as their
// children report, in canonical order (sorted node ids; child_fold.h): an
// embedded aggregator gets streaming `aggregate` tasks (messages.h,
// FoldStream; one in flight per aggregator, each bringing the children that
// arrived since the last); over REST, where the tasks of one endpoint name
// may run in several processes, one task once every child reported (folded
// in the same order). The coordinator folds on the driving thread, then
// applies the strategy's server step. So results are bit-identical whatever the arrival
// order, and a node holds O(fold window x model), not O(children x model).
//
// Flow control (control: local): train tasks are submitted depth-first in
// canonical order, and at most `fold.window` train results are outstanding
// (submitted and not yet folded by the parent, failed or dropped): with the
// embedded data plane every update lives in this process until folded, so
// this bounds the round's memory whatever the number of workers. Over REST
// the updates live in the connectors' servers and every task is submitted at
// once.
//
// A round deadline closes the round for stragglers (and workers not yet
// submitted); failures and simulated dropout count against
// faults.min_fraction (stop, or retry the round).
//
// Threading: run() drives rounds on the calling thread, which also submits
// train tasks as credits return and runs the coordinator's fold; task
// completions arrive on invoker threads (and the delay thread for slow
// devices) and are folded into the round's state under its mutex. Follow-up
// submissions are made after the mutex is released.
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
#include "flight/engine/node_table.h"
#include "flight/faas/invoker.h"

namespace flight::engine {

struct RunContext;
class SimulatedDevices;
class RunOutput;

class SyncDriver {
 public:
  SyncDriver(RunContext& ctx, SimulatedDevices& devices, RunOutput& output);
  ~SyncDriver();

  StatusOr<RunSummary> run();

 private:
  using Node = NodeTable::Index;  // a node as its dense index (node_table.h)
  struct RoundState;
  using RoundPtr = std::shared_ptr<RoundState>;
  using Later = std::vector<std::function<void()>>;  // work to run once the lock is released

  StatusOr<RoundRow> run_round(int64_t round);
  Status run_attempt(int64_t round, const RoundPtr& rs);
  void select(int64_t round, RoundState& rs);
  void drive(int64_t round, const RoundPtr& rs);
  void submit_trains(int64_t round, const RoundPtr& rs, size_t first, size_t n);
  void fold_at_root(int64_t round, RoundState& rs, std::vector<ChildUpdate> mail,
                    const std::vector<int64_t>& skips);
  void close_at_deadline(int64_t round, const RoundPtr& rs, std::unique_lock<std::mutex>* lock);
  void fill_row(const RoundState& rs, RoundRow* row) const;
  std::string insufficient(int64_t round, const RoundState& rs, int64_t needed) const;
  Status finish_root(int64_t round, RoundState& rs);
  Status start_secure(int64_t round, const RoundPtr& rs);

  // A task for `node`'s endpoint, tagged with the node (TaskSpec::tag), so
  // its result needs no lookup by task id.
  template <typename Args>
  faas::TaskSpec spec(Node node, const char* function, Args args) const;
  faas::TaskSpec train_spec(const RoundState& rs, int64_t round, Node worker) const;
  void maybe_launch(const RoundPtr& rs, int64_t round, Node node, Later* after);
  void submit_task(const RoundPtr& rs, int64_t round, faas::TaskSpec spec);

  void on_task_done(const RoundPtr& rs, int64_t round, const faas::TaskResult& result);
  void handle_result(const RoundPtr& rs, int64_t round, Node node, const faas::TaskResult& result,
                     Later* after);
  struct Parsed;
  bool worker_gate(const RoundPtr& rs, int64_t round, Node node, const Parsed& result, TaskRow& row,
                   Later* after);
  bool worker_dropped(const RoundPtr& rs, int64_t round, Node node, const Parsed& result,
                      TaskRow& row, Later* after);
  std::optional<ChildUpdate> take_update(RoundState& rs, Node node, const Parsed& result,
                                         TaskRow* row) const;
  bool aggregate_progress(const RoundPtr& rs, int64_t round, Node node, const Parsed& result,
                          TaskRow& row, Later* after);
  void report(const RoundPtr& rs, int64_t round, Node parent, Node child,
              std::optional<ChildUpdate> update, const std::string& failure, Later* after);
  void credit(RoundState& rs, size_t n) const;
  void settle(RoundState& rs, Node node, size_t upto) const;
  TaskRow task_row(RoundState& rs, int64_t round, Node node, const Parsed& result) const;
  static void parse(const faas::TaskResult& raw, bool is_worker, Parsed* out);
  void evict_update(const TrainResult& r);
  void progress(const RoundRow& row) const;

  RunContext& ctx_;
  SimulatedDevices& devices_;
  RunOutput& output_;
  const NodeTable nodes_;
  std::vector<std::string> endpoints_;  // by node: RunContext::endpoint_of, resolved once
  // By node: the connector it puts through (RunContext::node_connector),
  // one shared config per distinct setting, so a task's put target copies a
  // pointer.
  std::vector<transport::ConnectorConfig> put_connectors_;
  double virtual_time_ = 0;  // clock: virtual — simulated time so far
};

}  // namespace flight::engine
